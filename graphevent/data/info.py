"""What a model needs to know about a dataset, read from its ``manifest.json``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from graphevent.errors import DataError


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
    """

    node_features: list[str]
    classes: list[str]
    targets: list[str] = field(default_factory=list)
    target_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    feature_stats: dict[str, dict[str, float]] = field(default_factory=dict)
    k: int = 16
    num_edge_features: int = 3
    pixel_size: tuple[float, float] | None = None
    image_shape: tuple[int, int, int] | None = None
    feature_transforms: list[str] = field(default_factory=list)
    feature_signed: list[bool] = field(default_factory=list)

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
            k=int(manifest.get("k", 16)),
            pixel_size=tuple(image["pixel_size"]) if image else None,
            image_shape=tuple(image["shape"]) if image else None,
            **_channel_fields(manifest),
        )

    @classmethod
    def from_dir(cls, root: str | Path) -> "DatasetInfo":
        path = Path(root) / "manifest.json"
        if not path.is_file():
            raise DataError(f"{root}: not a graphevent dataset (no manifest.json); run `graphevent preprocess` first")
        return cls.from_manifest(json.loads(path.read_text()))


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
        return json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise DataError(f"{path}: corrupt manifest ({exc.msg} at line {exc.lineno})") from None
