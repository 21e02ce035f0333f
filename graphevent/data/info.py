"""What a model needs to know about a dataset, read from its ``manifest.json``."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from graphevent.config.data import DEFAULT_K
from graphevent.data.splits import SPLITS
from graphevent.errors import DataError

#: ``manifest.json`` layout version written by ``graphevent preprocess`` (2: shards carry the dataset id).
FORMAT_VERSION = 2
#: Keys every manifest must hold, with their JSON types (what opening or inspecting a dataset reads).
_REQUIRED = {"format_version": int, "dataset_id": str, "n_events": int, "splits": dict, "classes": list,
             "class_counts": dict, "node_features": list, "node_mode": str, "k": int, "nodes_per_event": dict,
             "edges_per_event": float, "skipped": dict, "inputs": list, "shards": list}
_SHARD_KEYS = {"path": str, "split": str, "sha256": str, "events": int}
_JSON_TYPE = {int: "an integer", float: "a number", str: "a string", dict: "an object", list: "a list"}


@dataclass(frozen=True)
class DatasetInfo:
    """Input sizes and label/target meaning of a preprocessed dataset.

    Args:
        node_features: names of the columns of ``x``.
        classes: class names; ``y`` indexes this list.
        targets: regression target names; ``targets`` columns.
        target_stats: per target ``{"mean": .., "std": ..}`` on the train split (models
            regress standardised targets and report physical units).
        feature_stats: per node feature ``{"mean": .., "std": ..}`` on the train split.
        k: neighbours per node used for ``edge_index``.
        pixel_size: (eta, phi) pixel size for image datasets, ``None`` for point inputs.
        image_shape: (C, H, W) of the source images, ``None`` for point inputs.
        feature_transforms: per node feature, ``log1p`` or ``none``: how the stored value was
            made from the physical one (empty when the manifest does not say).
        feature_signed: per node feature, whether it carries signed values (impact
            parameters, times) rather than energies or momenta (empty when unknown).
        periods: per position axis (eta, phi), its period where it wraps (phi on a full
            detector) and 0 where it does not; ``None`` when nothing wraps (jet crops).
            From the data config's ``geometry:`` section; every model distance and shift
            wraps with it (:func:`graphevent.utils.geometry.wrap_deltas`).
    """

    node_features: list[str]
    classes: list[str]
    targets: list[str] = field(default_factory=list)
    target_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    feature_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    k: int = DEFAULT_K
    num_edge_features: int = 3
    pixel_size: tuple[float, float] | None = None
    image_shape: tuple[int, int, int] | None = None
    feature_transforms: list[str] = field(default_factory=list)
    feature_signed: list[bool] = field(default_factory=list)
    periods: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.periods is not None:  # a tuple of floats, also when rebuilt from JSON lists (TorchScript types it)
            object.__setattr__(self, "periods", (float(self.periods[0]), float(self.periods[1])))

    @property
    def num_node_features(self) -> int:
        return len(self.node_features)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any]) -> "DatasetInfo":
        image = manifest.get("image")
        return cls(
            node_features=list(manifest["node_features"]),
            classes=list(manifest["classes"]),
            targets=list(manifest.get("targets", [])),
            target_stats=dict(manifest.get("target_stats", {})),
            feature_stats=dict(manifest.get("feature_stats", {})),
            k=int(manifest.get("k", DEFAULT_K)),
            pixel_size=tuple(image["pixel_size"]) if image else None,
            image_shape=tuple(image["shape"]) if image else None,
            periods=_periods(manifest),
            **_channel_fields(manifest),
        )

    @classmethod
    def from_dir(cls, root: str | Path) -> "DatasetInfo":
        if not (Path(root) / "manifest.json").is_file():
            raise DataError(f"{root}: not a graphevent dataset (no manifest.json); run `graphevent preprocess` first")
        return cls.from_manifest(load_manifest(root))


def _periods(manifest: dict[str, Any]) -> tuple[float, float] | None:
    """The manifest's ``periods`` ([eta, phi], 0 where an axis does not wrap; absent: none wraps)."""
    periods = manifest.get("periods")
    if not periods:
        return None
    return (float(periods[0]), float(periods[1]))


def _channel_fields(manifest: dict[str, Any]) -> dict[str, list]:
    """``feature_transforms`` / ``feature_signed`` from the manifest's ``config.channels``
    (by node feature name; empty lists when a feature has no channel entry)."""
    channels = {c.get("name"): c for c in (manifest.get("config") or {}).get("channels", []) if isinstance(c, dict)}
    names = list(manifest.get("node_features", []))
    if not names or any(n not in channels for n in names):
        return {"feature_transforms": [], "feature_signed": []}
    return {
        "feature_transforms": [str(channels[n].get("transform", "none")) for n in names],
        "feature_signed": [bool(channels[n].get("signed", False)) for n in names],
    }


def load_manifest(root: str | Path) -> dict:
    """Read ``manifest.json`` of a dataset directory, with clear errors."""
    root = Path(root)
    if not root.exists():
        raise DataError(f"{root}: dataset directory not found")
    path = root / "manifest.json"
    if not path.is_file():
        partial = (root / ".preprocess-state.json").exists()
        hint = "an unfinished preprocess run; rerun the same command to finish it" if partial else "run `graphevent preprocess` first"
        raise DataError(f"{root}: not a complete graphevent dataset (no manifest.json): {hint}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt manifest ({exc.msg} at line {exc.lineno})") from None
    check_manifest(manifest, root, path)
    return manifest


def check_manifest(manifest: Any, root: Path, where: Path) -> None:
    """Check the keys a dataset is opened with and confine every shard path to ``root``.

    Raises:
        DataError: naming the manifest, the key and the value, e.g.
            ``ds/manifest.json: shards[0].path is '../x.h5': resolves outside the dataset directory ...``.
    """
    if not isinstance(manifest, dict):
        raise DataError(f"{where}: expected a JSON object (as `graphevent preprocess` writes), found a {type(manifest).__name__}")
    for key, kind in _REQUIRED.items():
        _check_type(manifest, key, kind, where, key)
    if manifest["format_version"] != FORMAT_VERSION:
        raise DataError(
            f"{where}: format_version is {manifest['format_version']}; expected {FORMAT_VERSION} "
            "(written by another graphevent version): rerun `graphevent preprocess`"
        )
    for i, shard in enumerate(manifest["shards"]):
        if not isinstance(shard, dict):
            raise DataError(f"{where}: shards[{i}] is {shard!r}; expected an object with keys {', '.join(_SHARD_KEYS)}")
        for key, kind in _SHARD_KEYS.items():
            _check_type(shard, key, kind, where, f"shards[{i}].{key}")
        if shard["split"] not in SPLITS:
            raise DataError(f"{where}: shards[{i}].split is {shard['split']!r}; expected one of {', '.join(SPLITS)}")
        shard_path(root, shard["path"], f"{where}: shards[{i}].path")


def _check_type(obj: dict, key: str, kind: type, where: Path, name: str) -> None:
    if key not in obj:
        raise DataError(f"{where}: missing key {name!r}; not a complete manifest written by `graphevent preprocess`")
    value = obj[key]
    if not isinstance(value, (int, float) if kind is float else kind) or isinstance(value, bool):
        raise DataError(f"{where}: {name} is {value!r}; expected {_JSON_TYPE[kind]}")


def shard_path(root: str | Path, rel: str, where: str) -> Path:
    """``root / rel`` for a shard path read from a manifest, refusing one that leaves ``root``.

    ``rel`` must be relative, and resolve (``..`` and symlinks followed, as ``realpath``
    does) to a file inside the dataset directory.
    """
    if not rel or PurePosixPath(rel).is_absolute() or PureWindowsPath(rel).is_absolute() or PureWindowsPath(rel).drive:
        raise DataError(f"{where} is {rel!r}; expected a path relative to the dataset directory {root}")
    real_root = os.path.realpath(root)
    try:
        real = os.path.realpath(os.path.join(real_root, rel))
    except ValueError:  # e.g. a NUL character
        raise DataError(f"{where} is {rel!r}; expected a path relative to the dataset directory {root}") from None
    if os.path.commonpath([real_root, real]) != real_root:
        raise DataError(
            f"{where} is {rel!r}: resolves to {real}, outside the dataset directory {real_root}; "
            "expected a path inside it"
        )
    return Path(root) / rel
