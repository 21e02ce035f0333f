"""Readers for raw detector data. This package never imports torch.

:func:`open_reader` picks the reader for a :class:`~graphevent.config.data.ReaderConfig`
and checks that the file matches the config before anything is read.
"""

from graphevent.io.base import EventChunk, Reader, open_reader

__all__ = ["EventChunk", "Reader", "open_reader"]
