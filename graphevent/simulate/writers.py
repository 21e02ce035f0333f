"""Writers for simulated jets in the layouts of the public datasets.

* :class:`ML4SCIHDF5Writer`: the ML4SCI quark-gluon HDF5 file: ``X_jets`` (N, 125, 125, 3)
  float32 channels-last, ``y``, ``m0``, ``pt`` (N,) float32; ``y`` 0 = quark, 1 = gluon.
  Whole events (``graphevent simulate events``) use the same layout with (N, 170, 360, 3)
  images and their own targets (``targets=("m_gg", "ht")``).
* :class:`E2EParquetWriter`: the CMS end-to-end parquet files: one row group per event,
  ``X_jets`` nested lists (3, 125, 125) channels-first, ``y``, ``m0``, ``pt`` (float64,
  what pyarrow writes for Python floats).
* :class:`EnergyFlowNpzWriter`: the energyflow ``QG_jets.npz`` particle layout: ``X``
  (N, M, 4) float64 (pt, rapidity, phi, pid), zero-padded to the largest multiplicity
  M, and ``y`` (N,) float64 with energyflow's convention 1 = quark, 0 = gluon; with
  metadata, ``graphevent_simulate`` (a 0-d string array of JSON) too.

Every writer writes to the path it is given; :func:`graphevent.simulate.generate_qg`
gives them temporary names and renames the files once all of them are complete. Events
are written in blocks, so nothing holds all images in memory.
"""

from __future__ import annotations

import abc
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np


class ImageWriter(abc.ABC):
    """Writes ``n_events`` images with labels and targets, block by block, in order.

    Args:
        path: file to create.
        n_events: total number of events (the file is complete after that many).
        metadata: provenance (generator settings, seeds, versions), stored as JSON.
        targets: names of the per-event regression targets, in the order :meth:`write`
            takes them (the jets' ``m0``, ``pt`` by default).
    """

    def __init__(self, path: str | Path, n_events: int, metadata: dict[str, Any], targets: tuple[str, ...] = ("m0", "pt")) -> None:
        self.path = Path(path)
        self.n_events = n_events
        self.metadata = metadata
        self.targets = tuple(targets)
        self.written = 0

    @abc.abstractmethod
    def write(self, images: np.ndarray, y: np.ndarray, *targets: np.ndarray) -> None:
        """Append a block: ``images`` (n, H, W, C) float32 channels-last, ``y`` and each target (n,)."""

    def _check_targets(self, targets: tuple[np.ndarray, ...]) -> None:
        if len(targets) != len(self.targets):
            raise ValueError(f"{len(targets)} target arrays given; expected {len(self.targets)} ({', '.join(self.targets)})")

    @abc.abstractmethod
    def close(self) -> None:
        """Flush and close the file."""

    def __enter__(self) -> "ImageWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class ML4SCIHDF5Writer(ImageWriter):
    """ML4SCI HDF5 layout, gzip-compressed with the shuffle filter, one chunk per event.

    The metadata goes into the file attribute ``graphevent_simulate`` (JSON); readers of
    the public files ignore it.

    Args:
        compression_level: gzip level (0-9); the images are ~99% zeros: about 2.6 kB per
            event at level 9 (2.9 kB at 6) instead of 187.5 kB, and compressing costs
            ~10 ms per event, negligible next to generating it.
    """

    def __init__(
        self, path: str | Path, n_events: int, metadata: dict[str, Any], compression_level: int = 9, targets: tuple[str, ...] = ("m0", "pt")
    ) -> None:
        import h5py

        super().__init__(path, n_events, metadata, targets)
        self._file = h5py.File(self.path, "w")
        self._file.attrs["graphevent_simulate"] = json.dumps(metadata)
        opts = {"compression": "gzip", "compression_opts": compression_level, "shuffle": True}
        self._images = None
        self._opts = opts
        self._scalars = {
            key: self._file.create_dataset(key, shape=(n_events,), dtype=np.float32, **opts) for key in ("y", *self.targets)
        }

    def write(self, images: np.ndarray, y: np.ndarray, *targets: np.ndarray) -> None:
        self._check_targets(targets)
        n = len(images)
        if self._images is None:
            shape = (self.n_events, *images.shape[1:])
            self._images = self._file.create_dataset(
                "X_jets", shape=shape, dtype=np.float32, chunks=(1, *images.shape[1:]), **self._opts
            )
        sl = slice(self.written, self.written + n)
        self._images[sl] = images.astype(np.float32, copy=False)
        for key, values in zip(("y", *self.targets), (y, *targets)):
            self._scalars[key][sl] = np.asarray(values, dtype=np.float32)
        self.written += n

    def close(self) -> None:
        if self._file:
            self._file.close()


class E2EParquetWriter(ImageWriter):
    """E2E parquet layout: one row group per event, ``X_jets`` as (C, H, W) nested lists.

    The metadata goes into the schema metadata under ``graphevent_simulate``.
    """

    def __init__(self, path: str | Path, n_events: int, metadata: dict[str, Any], targets: tuple[str, ...] = ("m0", "pt")) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        super().__init__(path, n_events, metadata, targets)
        self._pa = pa
        self._schema = pa.schema(
            [("X_jets", pa.list_(pa.list_(pa.list_(pa.float64())))), ("y", pa.float64())]
            + [(key, pa.float64()) for key in self.targets],
            metadata={"graphevent_simulate": json.dumps(metadata)},
        )
        self._writer = pq.ParquetWriter(self.path, self._schema, compression="snappy")

    def _nested(self, image_chw: np.ndarray):
        pa = self._pa
        c, h, w = image_chw.shape
        values = pa.array(image_chw.astype(np.float64).ravel())
        rows = pa.ListArray.from_arrays(pa.array(np.arange(0, c * h * w + 1, w, dtype=np.int32)), values)
        planes = pa.ListArray.from_arrays(pa.array(np.arange(0, c * h + 1, h, dtype=np.int32)), rows)
        return pa.ListArray.from_arrays(pa.array(np.array([0, c], dtype=np.int32)), planes)

    def write(self, images: np.ndarray, y: np.ndarray, *targets: np.ndarray) -> None:
        self._check_targets(targets)
        pa = self._pa
        for k in range(len(images)):
            table = pa.Table.from_arrays(
                [self._nested(np.transpose(images[k], (2, 0, 1))), pa.array([float(y[k])])]
                + [pa.array([float(values[k])]) for values in targets],
                schema=self._schema,
            )
            self._writer.write_table(table, row_group_size=1)
        self.written += len(images)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            self._writer = None


class EnergyFlowNpzWriter:
    """Particle-level jets in the energyflow ``.npz`` layout, padded when closed.

    Jets are kept ragged in memory (about 2 kB per jet), then ``X`` is
    streamed into the zip archive block by block, so the padded float64 array (M times
    larger) never exists in memory at once.
    """

    def __init__(self, path: str | Path, metadata: dict[str, Any] | None = None) -> None:
        self.path = Path(path)
        self.metadata = metadata
        self._jets: list[np.ndarray] = []
        self._labels: list[float] = []

    def __len__(self) -> int:
        return len(self._jets)

    def write(self, constituents: list[np.ndarray], quark: np.ndarray) -> None:
        """Append jets: ``constituents`` (m_i, 4) arrays, ``quark`` (n,) bool (energyflow y = 1 for quark)."""
        self._jets.extend(np.asarray(c, dtype=np.float64) for c in constituents)
        self._labels.extend(np.where(np.asarray(quark, dtype=bool), 1.0, 0.0).tolist())

    def close(self, block: int = 1024) -> None:
        n = len(self._jets)
        m = max((len(j) for j in self._jets), default=0)
        with zipfile.ZipFile(self.path, "w", compression=zipfile.ZIP_DEFLATED, allowZip64=True) as archive:
            with archive.open("X.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array_header_2_0(
                    fh, {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float64)), "fortran_order": False, "shape": (n, m, 4)}
                )
                for start in range(0, n, block):
                    jets = self._jets[start : start + block]
                    padded = np.zeros((len(jets), m, 4), dtype=np.float64)
                    for k, jet in enumerate(jets):
                        padded[k, : len(jet)] = jet
                    fh.write(padded.tobytes())
            with archive.open("y.npy", "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, np.asarray(self._labels, dtype=np.float64))
            if self.metadata is not None:  # provenance, and the signature --overwrite looks for
                with archive.open("graphevent_simulate.npy", "w") as fh:
                    np.lib.format.write_array(fh, np.asarray(json.dumps(self.metadata)))
