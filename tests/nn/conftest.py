"""Fixtures of tests/nn; the helpers live in nn_helpers.py (a unique module name, so that
running several test folders together imports the right one)."""

from nn_helpers import _one_thread  # noqa: F401
