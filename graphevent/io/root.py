"""Events from a ROOT TTree, read with uproot (no ROOT installation needed).

Two layouts:

- ``root_image``: fixed-size image branches, either one multi-channel branch
  (``image_key``, e.g. ``float[125][125][3]``) or one ``(H, W)`` branch per channel
  (``channel_keys``). Events come out in image form.
- ``root_hits``: variable-length hit branches. Either every hit has all channels
  (``channel_keys`` value branches sharing ``eta_key``/``phi_key``), or each channel is its
  own hit collection (``channel_keys`` with ``channel_eta_keys``/``channel_phi_keys``), in
  which case a hit has its value in its channel's column and zeros elsewhere. Events come
  out in point form with (eta, phi) relative to the event's energy-weighted centroid
  (weights: the sum of the hit's channel values, clipped at 0), phi wrapped to (-pi, pi].

Labels and targets are scalar branches. Only ``[start, stop)`` entries are read per call
(``tree.arrays(entry_start=..., entry_stop=...)``).
"""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any, Mapping

import awkward as ak
import numpy as np
import uproot

from graphevent.errors import ConfigError, DataError
from graphevent.io._common import (
    centre_points,
    check_range,
    expected_image_text,
    image_event_shape,
    missing_key,
    per_event_column,
    to_channels_first,
    unreadable,
)
from graphevent.io.base import EventChunk, Reader

if TYPE_CHECKING:
    from graphevent.config.data import DataConfig

_READ_ERRORS = (OSError, ValueError, EOFError, uproot.deserialization.DeserializationError)
_NUMERIC = "fiub"


class RootReader(Reader):
    """Serve events from a TTree; :class:`RootImageReader` (``root_image``) gives image form,
    :class:`RootHitsReader` (``root_hits``) point form.

    Args:
        path: the ``.root`` file.
        cfg: data config; uses ``reader.tree``, ``reader.image_key`` or ``reader.channel_keys``,
            ``reader.eta_key``/``phi_key`` or ``channel_eta_keys``/``channel_phi_keys``,
            ``reader.label_key`` (or ``label`` / ``file_labels``), ``reader.target_keys``.

    Shapes:
        root_image -> ``images`` ``(n, C, H, W)`` float32;
        root_hits -> ``values`` ``(P, C)``, ``eta``/``phi`` ``(P,)``, ``counts`` ``(n,)``
    """

    read_errors = (*Reader.read_errors, uproot.deserialization.DeserializationError)

    def __init__(self, path: str | Path, cfg: "DataConfig", labels_required: bool = True) -> None:
        super().__init__(path, cfg, labels_required)
        with open(self.path, "rb") as fh:
            magic = fh.read(4)
        if magic != b"root":
            raise unreadable(self.path, "ROOT", f"not a ROOT file (starts with {magic!r}, expected b'root')")
        try:
            self._file = uproot.open(self.path)
        except _READ_ERRORS as exc:
            raise unreadable(self.path, "ROOT", exc) from None
        size, end = self.path.stat().st_size, int(self._file.file.fEND)
        if size < end:  # uproot may still read some baskets; ROOT itself rejects such files
            self.close()
            raise unreadable(self.path, "ROOT", f"file is truncated: {size} bytes, the ROOT header says {end}")
        try:
            self._open()
        except _READ_ERRORS as exc:
            self.close()
            raise unreadable(self.path, "ROOT", exc) from None
        except BaseException:
            self.close()
            raise

    @classmethod
    def describe(cls, path: Path, manifest: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        """Branches of the manifest's ``tree`` (default ``Events``): ``(entries, *fixed inner
        shape)`` (jagged branches: ``(entries,)``) and the number type."""
        with uproot.open(path) as f:
            t = f[manifest.get("tree") or "Events"]
            out = {}
            for key in t.keys():
                interp = t[key].interpretation
                inner = tuple(getattr(interp, "inner_shape", ()) or ())
                dtype = getattr(interp, "to_dtype", None) or getattr(getattr(interp, "content", None), "to_dtype", None)
                out[key] = ((int(t.num_entries), *inner), str(dtype.base) if dtype is not None else t[key].typename)
            return out

    # ---- validation -------------------------------------------------------------------
    def _branch(self, key: str):
        if key not in self._branches:
            raise missing_key(self.path, key, self._branches, what="branches")
        return self._tree[key]

    def _fixed_branch(self, key: str, inner: tuple[int, ...], expected: str):
        branch = self._branch(key)
        interp = branch.interpretation
        shape = getattr(interp, "inner_shape", None)
        if not isinstance(interp, uproot.interpretation.numerical.AsDtype) or interp.to_dtype.base.kind not in _NUMERIC:
            raise DataError(f"{self.path.name}: key {key!r} has type {branch.typename}; expected {expected}")
        if tuple(shape) != inner:
            found = (self.n_events,) + tuple(shape)
            raise DataError(f"{self.path.name}: key {key!r} has shape {found}; expected {expected}")
        return branch

    def _jagged_branch(self, key: str):
        branch = self._branch(key)
        interp = branch.interpretation
        content = getattr(interp, "content", None)
        if not isinstance(interp, uproot.interpretation.jagged.AsJagged) or not isinstance(
            content, uproot.interpretation.numerical.AsDtype
        ) or content.to_dtype.base.kind not in _NUMERIC:
            raise DataError(
                f"{self.path.name}: key {key!r} has type {branch.typename}; expected a variable-length "
                "number branch (one value per hit)"
            )
        return branch

    def _per_event(self, key: str) -> np.ndarray:
        branch = self._branch(key)
        interp = branch.interpretation
        if not isinstance(interp, uproot.interpretation.numerical.AsDtype) or interp.to_dtype.base.kind not in _NUMERIC:
            raise DataError(f"{self.path.name}: key {key!r} has type {branch.typename}; expected one number per event")
        per_event_column(self.path, key, (self.n_events,) + tuple(interp.inner_shape), self.n_events)
        return np.asarray(branch.array(library="np")).reshape(self.n_events)

    def _open(self) -> None:
        r = self.cfg.reader
        classes = self._file.classnames(cycle=False)
        if r.tree not in classes:
            raise missing_key(self.path, r.tree, classes, what="objects")
        if classes[r.tree] != "TTree":
            raise DataError(f"{self.path.name}: key {r.tree!r} is a {classes[r.tree]}; expected a TTree")
        self._tree = self._file[r.tree]
        self._branches = set(self._tree.keys())
        self.n_events = int(self._tree.num_entries)
        self._check_branches()
        self.load_labels_and_targets(self._per_event)

    @abc.abstractmethod
    def _check_branches(self) -> None:
        """Check the event branches of the format (labels and targets are checked after)."""

    def _check_count(self, field: str, keys: list[str], n_channels: int) -> None:
        if len(keys) != n_channels:
            raise ConfigError(
                f"reader.{field}: {len(keys)} branches {keys} for {n_channels} channels "
                f"{[ch.name for ch in self.cfg.channels]}; expected one per channel"
            )

    # ---- reading ----------------------------------------------------------------------
    def read(self, start: int, stop: int) -> EventChunk:
        check_range(self.n_events, start, stop)
        try:
            chunk = self._read_events(start, stop)
        except _READ_ERRORS as exc:
            raise unreadable(self.path, "ROOT", f"events {start}..{stop - 1}: {exc}") from None
        return chunk

    def _base(self, start: int, stop: int, **kw) -> EventChunk:
        return EventChunk(
            labels=self._labels[start:stop].copy(),
            targets=self._targets[start:stop].copy(),
            index=np.arange(start, stop, dtype=np.int64),
            **kw,
        )

    @abc.abstractmethod
    def _read_events(self, start: int, stop: int) -> EventChunk:
        """Events ``[start, stop)`` (a checked range) in the format's form."""

    def close(self) -> None:
        f = getattr(self, "_file", None)
        if f is not None:
            f.close()


class RootImageReader(RootReader):
    """``root_image``: one multi-channel image branch (``image_key``) or one ``(H, W)`` branch
    per channel (``channel_keys``) -> ``images`` ``(n, C, H, W)`` float32."""

    def _check_branches(self) -> None:
        cfg, r = self.cfg, self.cfg.reader
        if r.image_key:
            self._fixed_branch(r.image_key, image_event_shape(cfg), expected_image_text(cfg))
        else:
            self._check_count("channel_keys", r.channel_keys, len(cfg.channels))
            hw = (cfg.image.height, cfg.image.width)
            for key, ch in zip(r.channel_keys, cfg.channels):
                self._fixed_branch(key, hw, f"(N, {hw[0]}, {hw[1]}) (channel {ch.name})")

    def _read_events(self, start: int, stop: int) -> EventChunk:
        r = self.cfg.reader
        keys = [r.image_key] if r.image_key else list(r.channel_keys)
        arrays = self._tree.arrays(keys, entry_start=start, entry_stop=stop, library="np")
        if r.image_key:
            images = to_channels_first(arrays[r.image_key], r.layout)
        else:
            images = np.ascontiguousarray(np.stack([arrays[k] for k in keys], axis=1), dtype=np.float32)
        return self._base(start, stop, images=images)


class RootHitsReader(RootReader):
    """``root_hits``: jagged value branches per channel with shared (``eta_key``/``phi_key``)
    or per-channel (``channel_eta_keys``/``channel_phi_keys``) positions -> ``values``
    ``(P, C)``, ``eta``/``phi`` ``(P,)`` centred, ``counts`` ``(n,)``."""

    def _check_branches(self) -> None:
        r, n_ch = self.cfg.reader, len(self.cfg.channels)
        self._check_count("channel_keys", r.channel_keys, n_ch)
        if r.channel_eta_keys or r.channel_phi_keys:
            self._check_count("channel_eta_keys", r.channel_eta_keys, n_ch)
            self._check_count("channel_phi_keys", r.channel_phi_keys, n_ch)
            keys = [*r.channel_keys, *r.channel_eta_keys, *r.channel_phi_keys]
        else:
            keys = [*r.channel_keys, r.eta_key, r.phi_key]
        for key in keys:
            self._jagged_branch(key)

    def _flat(self, arrays, key: str) -> tuple[np.ndarray, np.ndarray]:
        column = arrays[key]
        return ak.to_numpy(ak.flatten(column)), ak.to_numpy(ak.num(column)).astype(np.int64)

    def _same_counts(self, counts: np.ndarray, ref: np.ndarray, key: str, ref_key: str, start: int) -> None:
        bad = np.flatnonzero(counts != ref)
        if bad.size:
            i = int(bad[0])
            raise DataError(
                f"{self.path.name}: event {start + i}: key {key!r} has {counts[i]} hits but {ref_key!r} has "
                f"{ref[i]}; expected one value per hit"
            )

    def _read_events(self, start: int, stop: int) -> EventChunk:
        r, n = self.cfg.reader, stop - start
        n_ch = len(self.cfg.channels)
        per_channel = bool(r.channel_eta_keys)
        if per_channel:
            keys = [*r.channel_keys, *r.channel_eta_keys, *r.channel_phi_keys]
        else:
            keys = [*r.channel_keys, r.eta_key, r.phi_key]
        arrays = self._tree.arrays(keys, entry_start=start, entry_stop=stop, library="ak")
        if not per_channel:
            eta, counts = self._flat(arrays, r.eta_key)
            phi, phi_counts = self._flat(arrays, r.phi_key)
            self._same_counts(phi_counts, counts, r.phi_key, r.eta_key, start)
            values = np.zeros((len(eta), n_ch), np.float32)
            for c, key in enumerate(r.channel_keys):
                v, vc = self._flat(arrays, key)
                self._same_counts(vc, counts, key, r.eta_key, start)
                values[:, c] = v
        else:
            etas, phis, vals, events, chans = [], [], [], [], []
            counts = np.zeros(n, np.int64)
            for c in range(n_ch):
                v, vc = self._flat(arrays, r.channel_keys[c])
                e, ec = self._flat(arrays, r.channel_eta_keys[c])
                p, pc = self._flat(arrays, r.channel_phi_keys[c])
                self._same_counts(ec, vc, r.channel_eta_keys[c], r.channel_keys[c], start)
                self._same_counts(pc, vc, r.channel_phi_keys[c], r.channel_keys[c], start)
                etas.append(e), phis.append(p), vals.append(v)
                events.append(np.repeat(np.arange(n), vc))
                chans.append(np.full(len(v), c))
                counts += vc
            order = np.argsort(np.concatenate(events), kind="stable")  # event by event, channel order kept
            eta = np.concatenate(etas)[order]
            phi = np.concatenate(phis)[order]
            values = np.zeros((len(eta), n_ch), np.float32)
            values[np.arange(len(eta)), np.concatenate(chans)[order]] = np.concatenate(vals)[order]
        eta_rel, phi_rel = centre_points(eta, phi, values.sum(axis=1), counts)
        return self._base(start, stop, values=values, eta=eta_rel, phi=phi_rel, counts=counts)
