"""Particle-level jets in the energyflow layout: ``X`` ``(N, M, 4)`` = (pt, rapidity, phi, pid).

Jets are zero-padded to M particles; padding rows (pt == 0) are dropped. Events come out
in point form: one point per particle at (rapidity, phi) relative to the pt-weighted jet
axis (phi wrapped to (-pi, pi]), with one value column per configured channel. Channel
names select the value (the data config's ``channels`` list, in order):

- ``pt``: the particle's transverse momentum (GeV);
- ``charge``: electric charge from the PDG id (-1, 0, +1), e.g. to tell charged hadrons
  from photons and neutral hadrons. Unknown PDG ids are an error, never silently 0.

Files: ``.npz`` (the energyflow/Zenodo files: members ``X.npy``, ``y.npy``) or HDF5 with
datasets of the same names. ``.npz`` members are streamed row range by row range from the
zip (stored or deflated) and never unpickled; HDF5 datasets are sliced.
"""

from __future__ import annotations

import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import h5py
import numpy as np

from graphevent.errors import ConfigError, DataError
from graphevent.io._common import centre_points, check_range, missing_key, per_event_column, unreadable
from graphevent.io.base import EventChunk, Reader
from graphevent.io.hdf5 import describe_hdf5

if TYPE_CHECKING:
    from graphevent.config.data import DataConfig

_ZIP_MAGIC = (b"PK\x03\x04", b"PK\x05\x06")
_HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"
_FORMAT = "npz or HDF5 particles"
_FEATURES = {"pt": 0, "rapidity": 1, "phi": 2, "pid": 3}
CHANNELS = ("pt", "charge")

# |PDG id| -> charge of the particle (the antiparticle has the opposite sign). Long-lived
# final-state particles that appear in generator-level jets.
_CHARGE = {
    11: -1, 12: 0, 13: -1, 14: 0, 16: 0, 22: 0, 111: 0, 130: 0, 211: 1, 310: 0, 321: 1,
    2112: 0, 2212: 1, 3112: -1, 3122: 0, 3222: 1, 3312: -1, 3322: 0, 3334: -1,
}
_CHARGE_IDS = np.array(sorted(_CHARGE), dtype=np.int64)
_CHARGE_VALUES = np.array([_CHARGE[k] for k in sorted(_CHARGE)], dtype=np.float32)


def pid_to_charge(pid: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Electric charge of each PDG id, and a mask of the ids that are known.

    Shapes:
        pid: (P,) -> charge (P,) float32 (0 where unknown), known (P,) bool
    """
    pid = np.rint(np.asarray(pid)).astype(np.int64)
    apid = np.abs(pid)
    pos = np.clip(np.searchsorted(_CHARGE_IDS, apid), 0, len(_CHARGE_IDS) - 1)
    known = _CHARGE_IDS[pos] == apid
    return np.where(known, np.sign(pid) * _CHARGE_VALUES[pos], 0.0).astype(np.float32), known


def read_npy_header(fh, member: str) -> tuple[tuple[int, ...], bool, np.dtype]:
    """(shape, fortran_order, dtype) of an ``.npy`` stream positioned at its start."""
    version = np.lib.format.read_magic(fh)
    if version == (1, 0):
        return np.lib.format.read_array_header_1_0(fh)
    if version == (2, 0):
        return np.lib.format.read_array_header_2_0(fh)
    raise ValueError(f"member {member!r} has unsupported .npy version {version}")


class _NpyMember:
    """One ``.npy`` member of an ``.npz``: header parsed at open, rows read on demand."""

    def __init__(self, zf: zipfile.ZipFile, member: str, path: Path) -> None:
        self.path, self.key = path, member[:-4]
        self._fh = zf.open(member)
        shape, fortran, dtype = read_npy_header(self._fh, member)
        if dtype.hasobject:
            raise DataError(f"{path.name}: key {self.key!r} holds Python objects; expected a numeric array")
        if fortran and len(shape) > 1:
            raise DataError(f"{path.name}: key {self.key!r} is stored in Fortran order; expected C order")
        self.shape, self.dtype = tuple(shape), dtype
        self._offset = self._fh.tell()
        self._row_bytes = int(np.prod(shape[1:], dtype=np.int64)) * dtype.itemsize

    def __getitem__(self, rows: slice) -> np.ndarray:
        start, stop, _ = rows.indices(self.shape[0] if self.shape else 0)
        n = max(stop - start, 0)
        self._fh.seek(self._offset + start * self._row_bytes)  # forward seeks continue decompressing
        buf = self._fh.read(n * self._row_bytes)
        if len(buf) != n * self._row_bytes:
            raise DataError(
                f"{self.path.name}: cannot read as {_FORMAT}: key {self.key!r} ends early "
                f"(rows {start}..{stop - 1} need {n * self._row_bytes} bytes, found {len(buf)})"
            )
        return np.frombuffer(buf, dtype=self.dtype).reshape((n,) + self.shape[1:])

    def close(self) -> None:
        self._fh.close()


class ParticleReader(Reader):
    """Serve jets of particles in point form; validated against the data config at open.

    Args:
        path: ``.npz`` or HDF5 file with ``reader.particles_key`` ``(N, M, F>=3)`` and labels.
        cfg: data config; ``channels`` names are from ``pt``, ``charge``; uses
            ``reader.particles_key``, ``reader.label_key`` (or ``label``/``file_labels``),
            ``reader.target_keys``.

    Shapes:
        file: X ``(N, M, 4)`` (pt, rapidity, phi, pid), y ``(N,)``
        -> ``values`` ``(P, C)``, ``eta``/``phi`` ``(P,)`` (rapidity and phi relative to the
        pt-weighted axis), ``counts`` ``(n,)`` particles with pt > 0 per jet
    """

    read_errors = (*Reader.read_errors, zipfile.BadZipFile)

    def __init__(self, path: str | Path, cfg: "DataConfig", labels_required: bool = True) -> None:
        super().__init__(path, cfg, labels_required)
        for i, ch in enumerate(cfg.channels):
            if ch.name not in CHANNELS:
                raise ConfigError(
                    f"channels[{i}].name: {ch.name!r} is not a particle feature; expected one of {', '.join(CHANNELS)}"
                )
        with open(self.path, "rb") as fh:
            magic = fh.read(8)
        self._zip = self._h5 = None
        self._members: dict[str, _NpyMember] = {}
        try:
            if magic[:4] in _ZIP_MAGIC:
                self._zip = zipfile.ZipFile(self.path)
                self._names = [n[:-4] for n in self._zip.namelist() if n.endswith(".npy")]
            elif magic == _HDF5_MAGIC:
                self._h5 = h5py.File(self.path, "r")
                self._names = [k for k, v in self._h5.items() if isinstance(v, h5py.Dataset)]
            else:
                raise unreadable(self.path, _FORMAT, f"file starts with {magic[:4]!r}; expected a .npz (zip) or HDF5 file")
            self._open()
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            self.close()
            raise unreadable(self.path, _FORMAT, exc) from None
        except BaseException:
            self.close()
            raise

    @classmethod
    def describe(cls, path: Path, manifest: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        """HDF5 datasets, or the ``.npy`` members of an ``.npz`` (from their headers)."""
        with open(path, "rb") as fh:
            if fh.read(8) == _HDF5_MAGIC:
                return describe_hdf5(path)
        out = {}
        with zipfile.ZipFile(path) as zf:
            for member in zf.namelist():
                if member.endswith(".npy"):
                    with zf.open(member) as fh:
                        shape, _, dtype = read_npy_header(fh, member)
                    out[member[:-4]] = (tuple(shape), str(dtype))
        return out

    def _array(self, key: str):
        """A sliceable array with ``shape``/``dtype`` (npz member or HDF5 dataset)."""
        if key not in self._names:
            raise missing_key(self.path, key, self._names)
        if self._zip is not None:
            if key not in self._members:
                self._members[key] = _NpyMember(self._zip, key + ".npy", self.path)
            arr = self._members[key]
        else:
            arr = self._h5[key]
        if arr.dtype.kind not in "fiub":
            raise DataError(f"{self.path.name}: key {key!r} has dtype {arr.dtype}; expected numbers")
        return arr

    def _per_event(self, key: str) -> np.ndarray:
        arr = self._array(key)
        per_event_column(self.path, key, arr.shape, self.n_events)
        return np.asarray(arr[0 : self.n_events]).reshape(self.n_events)

    def _open(self) -> None:
        cfg, r = self.cfg, self.cfg.reader
        key = r.particles_key
        self._x = self._array(key)
        shape = tuple(int(s) for s in self._x.shape)
        need = 4 if any(ch.name == "charge" for ch in cfg.channels) else 3
        if len(shape) != 3 or shape[2] < need:
            features = "4) (pt, rapidity, phi, pid" if need == 4 else "3 or 4) (pt, rapidity, phi[, pid]"
            raise DataError(f"{self.path.name}: key {key!r} has shape {shape}; expected (N, M, {features} per particle)")
        self.n_events = shape[0]
        self.load_labels_and_targets(self._per_event)

    def read(self, start: int, stop: int) -> EventChunk:
        check_range(self.n_events, start, stop)
        try:
            x = np.asarray(self._x[start:stop], dtype=np.float64)
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise unreadable(self.path, _FORMAT, f"events {start}..{stop - 1}: {exc}") from None
        mask = x[:, :, 0] > 0
        counts = mask.sum(axis=1).astype(np.int64)
        parts = x[mask]  # (P, F), event by event, particle order kept
        values = np.zeros((len(parts), len(self.cfg.channels)), np.float32)
        for c, ch in enumerate(self.cfg.channels):
            if ch.name == "pt":
                values[:, c] = parts[:, 0]
            else:
                charge, known = pid_to_charge(parts[:, 3])
                if not np.all(known):
                    j = int(np.flatnonzero(~known)[0])
                    event = start + int(np.searchsorted(np.cumsum(counts), j, side="right"))
                    raise DataError(
                        f"{self.path.name}: event {event}: PDG id {parts[j, 3]:g} has no known charge; "
                        f"known |ids|: {sorted(_CHARGE)}"
                    )
                values[:, c] = charge
        eta, phi = centre_points(parts[:, 1], parts[:, 2], parts[:, 0], counts)
        return EventChunk(
            labels=self._labels[start:stop].copy(),
            targets=self._targets[start:stop].copy(),
            index=np.arange(start, stop, dtype=np.int64),
            values=values,
            eta=eta,
            phi=phi,
            counts=counts,
        )

    def close(self) -> None:
        for member in self._members.values():
            member.close()
        self._members = {}
        if self._zip is not None:
            self._zip.close()
            self._zip = None
        if self._h5 is not None and self._h5.id.valid:
            self._h5.close()
