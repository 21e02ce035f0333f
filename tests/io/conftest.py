"""Fixtures for the reader tests; the file writers live in ``io_files.py``.

Test modules here are named ``test_io_*.py`` and helpers ``io_files.py`` so that their
names stay unique across the test tree (no ``__init__.py`` files: ``tests/io`` must
never shadow the standard library's ``io``).
"""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture
def text_file(tmp_path: Path):
    """Factory: a small CSV-like text file with the given name (e.g. ``fake.h5``)."""

    def make(name: str) -> Path:
        p = tmp_path / name
        p.write_text("event,label\n1,0\n2,1\n" * 50)
        return p

    return make
