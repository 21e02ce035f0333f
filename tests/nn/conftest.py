"""tests/nn: one torch thread per test; the helpers live in nn_helpers.py (a unique module
name, so that running several test folders together imports the right one)."""

import pytest


@pytest.fixture(autouse=True)
def _one_thread(one_torch_thread):
    """Every test here runs with one torch thread (tests/conftest.py)."""
