"""Fixtures of tests/train; the helpers live in train_helpers.py (a unique module name, so that
running several test folders together imports the right one)."""

import pytest

from train_helpers import pretrain_run  # noqa: F401


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread (tests/conftest.py)."""
