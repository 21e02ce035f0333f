"""Fixtures of tests/train; the helpers live in train_helpers.py (a unique module name, so that
running several test folders together imports the right one)."""

from train_helpers import _one_thread, pretrain_run  # noqa: F401
