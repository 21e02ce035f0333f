"""Check input files against a public dataset's manifest (``data_manifests/*.yaml``).

A data manifest describes files that users download themselves: their names, sizes and
checksums where known, and the arrays each holds (key, shape, dtype). ``graphevent
preprocess --manifest`` calls :func:`check_inputs` before reading anything, so a wrong,
truncated or renamed download fails in seconds with a message naming the file.

Manifest layout (YAML, loaded with ``yaml.safe_load``)::

    name: ml4sci_quark_gluon_hdf5        # identifier
    description: ...                     # free text
    source: ...                          # where to get the files (project/page names)
    format: ml4sci_hdf5                  # a registered reader format (graphevent.config.readers)
    files:                               # known files; "pattern" (glob) instead of "name" allowed
      - name: quark-gluon_data-set_n139306.hdf5
        events: 139306                   # or null (unknown)
        size: null                       # bytes, or null (unknown)
        sha256: null                     # hex digest, or null (unknown)
    keys:                                # arrays in every file; "N" = the file's events
      X_jets: {shape: [N, 125, 125, 3], dtype: null}

``null`` means "unknown, not checked"; nothing is ever guessed.
"""

from __future__ import annotations

import fnmatch
import hashlib
from pathlib import Path
from typing import Any, Mapping

from graphevent.config.readers import READERS
from graphevent.errors import ConfigError, DataError
from graphevent.io.base import reader_class

_FILE_KEYS = {"name", "pattern", "events", "size", "sha256", "notes"}
_TOP_KEYS = {"name", "description", "source", "format", "files", "keys", "tree", "labels", "channels", "notes"}


def sha256_file(path: str | Path, block_size: int = 1 << 22) -> str:
    """Hex SHA-256 of a file, read in ``block_size`` blocks (never the whole file at once)."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(block_size):
            h.update(block)
    return h.hexdigest()


def load_data_manifest(path: str | Path) -> dict[str, Any]:
    """Read and validate a data manifest; :class:`ConfigError` names the bad entry."""
    from graphevent.config.base import load_yaml

    path = Path(path)
    raw = load_yaml(path)
    where = str(path)
    unknown = sorted(set(raw) - _TOP_KEYS)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {unknown}; valid keys: {', '.join(sorted(_TOP_KEYS))}")
    for required in ("name", "format", "files"):
        if required not in raw:
            raise ConfigError(f"{where}: missing required key {required!r}")
    if not isinstance(raw["format"], str) or raw["format"] not in READERS:
        raise ConfigError(f"{where}.format: invalid value {raw['format']!r}; expected one of {', '.join(READERS)}")
    files = raw["files"]
    if not isinstance(files, list) or not files:
        raise ConfigError(f"{where}.files: expected a non-empty list of files")
    for i, entry in enumerate(files):
        w = f"{where}.files[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{w}: expected a mapping, found {entry!r}")
        bad = sorted(set(entry) - _FILE_KEYS)
        if bad:
            raise ConfigError(f"{w}: unknown keys {bad}; valid keys: {', '.join(sorted(_FILE_KEYS))}")
        if ("name" in entry) == ("pattern" in entry):
            raise ConfigError(f"{w}: give exactly one of 'name' or 'pattern'")
        for k in ("events", "size"):
            v = entry.get(k)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 0):
                raise ConfigError(f"{w}.{k}: invalid value {v!r}; expected a non-negative integer or null")
        digest = entry.get("sha256")
        if digest is not None and (not isinstance(digest, str) or len(digest) != 64
                                   or any(c not in "0123456789abcdef" for c in digest.lower())):
            raise ConfigError(f"{w}.sha256: invalid value {digest!r}; expected 64 hex digits or null")
    keys = raw.get("keys") or {}
    if not isinstance(keys, dict):
        raise ConfigError(f"{where}.keys: expected a mapping key -> {{shape, dtype}}")
    for key, spec in keys.items():
        w = f"{where}.keys.{key}"
        if not isinstance(spec, dict) or set(spec) - {"shape", "dtype", "notes"}:
            raise ConfigError(f"{w}: expected a mapping with 'shape', 'dtype' (and optional 'notes')")
        shape = spec.get("shape")
        if shape is not None and (not isinstance(shape, list) or any(
            not (d is None or d == "N" or (isinstance(d, int) and not isinstance(d, bool))) for d in shape
        )):
            raise ConfigError(f"{w}.shape: invalid value {shape!r}; expected a list of integers, 'N' or null")
    raw.setdefault("keys", {})
    return raw


def _match(path: Path, manifest: dict[str, Any]) -> dict[str, Any]:
    for entry in manifest["files"]:
        if "name" in entry and entry["name"] == path.name:
            return entry
    for entry in manifest["files"]:
        if "pattern" in entry and fnmatch.fnmatch(path.name, entry["pattern"]):
            return entry
    known = [e.get("name") or e.get("pattern") for e in manifest["files"]]
    shown = ", ".join(known[:6]) + (", ..." if len(known) > 6 else "")
    raise DataError(f"{path.name}: not a file of dataset {manifest['name']!r}; known files: {shown}")


def describe_file(path: str | Path, fmt: str, manifest: Mapping[str, Any] | None = None) -> dict[str, tuple[tuple[int, ...], str]]:
    """Arrays in an input file: ``{key: (shape, dtype)}`` read from metadata only, by the
    reader registered for ``fmt`` (its ``describe``).

    Args:
        manifest: the data manifest checking the file (ROOT readers take its ``tree``).

    Raises:
        DataError: ``<file>: cannot read as <fmt>: <reason>`` when the file is not of that format.
    """
    path = Path(path)
    cls = reader_class(fmt)
    try:
        return cls.describe(path, manifest or {})
    except cls.read_errors as exc:  # the file is not what the manifest says
        text = str(exc).strip().splitlines()
        raise DataError(f"{path.name}: cannot read as {fmt}: {text[0] if text else type(exc).__name__}") from None


def _shape_text(dims: list) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in dims) + ("," if len(dims) == 1 else "") + ")"


def _check_keys(path: Path, arrays: dict, manifest: dict[str, Any], events: int | None) -> int | None:
    """Check the file's arrays against ``manifest["keys"]``; returns the event count found."""
    name = manifest["name"]
    for key, spec in manifest["keys"].items():
        if key not in arrays:
            raise DataError(
                f"{path.name}: key {key!r} not found; expected by dataset {name!r} (keys in file: {sorted(arrays)})"
            )
        shape, dtype = arrays[key]
        want = spec.get("shape")
        if want is not None:
            if want and want[0] == "N" and shape and events is None:
                events = shape[0]  # count not in the manifest: every "N" key must agree with the first
            want_n = [events if d == "N" else d for d in want]
            if len(shape) != len(want_n) or any(w is not None and w != s for w, s in zip(want_n, shape)):
                raise DataError(
                    f"{path.name}: key {key!r} has shape {tuple(shape)}; expected {_shape_text(want_n)} (dataset {name!r})"
                )
        if spec.get("dtype") is not None and spec["dtype"] != dtype:
            raise DataError(f"{path.name}: key {key!r} has dtype {dtype}; expected {spec['dtype']} (dataset {name!r})")
    return events


def check_inputs(paths: list[str | Path], manifest: dict[str, Any], verify_sha256: bool = True) -> list[dict[str, Any]]:
    """Check each input file against ``manifest`` (from :func:`load_data_manifest`).

    Checks, in order: the file name is a known file of the dataset, its size, its keys and
    shapes (``N`` = the file's event count when known), and its SHA-256 where the manifest
    has one (skipped with ``verify_sha256=False``).

    Returns:
        one dict per file: ``path``, ``name``, ``size``, ``events`` (from the file),
        ``sha256`` (computed only when the manifest has one, else ``None``) and ``checked``
        (which checks ran).

    Raises:
        DataError: naming the file and the mismatch, e.g.
            ``qg.h5: size is 1000 bytes; expected 2000 (dataset 'x')``.
    """
    results = []
    fmt, name = manifest["format"], manifest["name"]
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise DataError(f"{path}: input file not found")
        entry = _match(path, manifest)
        checked = ["name"]
        size = path.stat().st_size
        if entry.get("size") is not None:
            if size != entry["size"]:
                raise DataError(f"{path.name}: size is {size} bytes; expected {entry['size']} (dataset {name!r})")
            checked.append("size")
        events = _check_keys(path, describe_file(path, fmt, manifest), manifest, entry.get("events"))
        if manifest["keys"]:
            checked.append("keys")
        digest = None
        if entry.get("sha256") and verify_sha256:
            digest = sha256_file(path)
            expected = entry["sha256"].lower()
            if digest != expected:
                raise DataError(f"{path.name}: sha256 is {digest}; expected {expected} (dataset {name!r})")
            checked.append("sha256")
        results.append(
            {"path": str(path), "name": path.name, "size": size, "events": events, "sha256": digest, "checked": checked}
        )
    return results
