"""The reader registry: one entry per input-file format (no torch, no file libraries here).

Each :class:`ReaderType` names the class that reads the format (imported only when a file is
opened, so ``h5py``, ``pyarrow`` and ``uproot`` load only for the format in use), whether it
yields images or points, and the :class:`~graphevent.config.data.ReaderConfig` keys it reads.
``ReaderConfig.format``, the raw-data manifest, :func:`graphevent.io.base.open_reader` and
preprocessing all read this table; adding a format adds an entry here and its reader file.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from graphevent.config.registry import Registry


@dataclass(frozen=True)
class ReaderType:
    """One input format.

    Args:
        name: the ``reader.format`` value (``ml4sci_hdf5``).
        reader: ``module:Class`` under ``graphevent.io`` (``hdf5:HDF5ImageReader``).
        yields: ``images`` (fixed-size (H, W, C) arrays) or ``points`` (hits, particles).
        keys: the ``ReaderConfig`` keys this format reads (besides labels and targets).
    """

    name: str
    reader: str
    yields: Literal["images", "points"]
    keys: tuple[str, ...] = ()


READERS: Registry[ReaderType] = Registry("reader format")


#: add a ReaderType (a name registered twice is an error)
register_reader_type = READERS.add


def get_reader_type(name: str, where: str = "reader.format") -> ReaderType:
    """The registered entry ``name``; an unknown name is a ConfigError listing the known ones."""
    return READERS.lookup(name, where)


register_reader_type(ReaderType("ml4sci_hdf5", "hdf5:HDF5ImageReader", "images", ("image_key", "layout")))
register_reader_type(ReaderType("e2e_parquet", "parquet:ParquetImageReader", "images", ("image_key", "layout")))
register_reader_type(ReaderType("root_image", "root:RootReader", "images", ("image_key", "layout", "channel_keys", "tree")))
register_reader_type(ReaderType(
    "root_hits", "root:RootReader", "points",
    ("channel_keys", "eta_key", "phi_key", "channel_eta_keys", "channel_phi_keys", "tree"),
))
register_reader_type(ReaderType("particles", "particles:ParticleReader", "points", ("particles_key",)))
