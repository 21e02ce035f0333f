"""The data config: how raw files are read and how events become graphs.

One YAML file per dataset layout lives in ``graphevent/configs/data/``; ``graphevent preprocess
--config`` loads it into :class:`DataConfig`. Every field is documented here and in the
example configs' comments.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from graphevent.errors import ConfigError

#: Largest ``graph.k``: neighbour lists take 4 * k bytes per node (1,024 is 4 kB per node).
K_MAX = 1024

ReaderFormat = Literal["ml4sci_hdf5", "e2e_parquet", "root_image", "root_hits", "particles"]


@dataclass(frozen=True)
class ReaderConfig:
    """Where the arrays are in the input files.

    Args:
        format: file layout; ``ml4sci_hdf5`` (image datasets in HDF5), ``e2e_parquet``
            (one row group per event, nested-list images), ``root_image`` (fixed-size image
            branches in a TTree), ``root_hits`` (jagged eta/phi/value branches per channel),
            ``particles`` (energyflow layout (N, M, 4): pt, rapidity, phi, pid; .npz or HDF5).
        image_key: image array / column / branch (ml4sci_hdf5, e2e_parquet, root_image with
            one multi-channel branch). ``root_image`` with one branch per channel uses
            ``channel_keys`` instead.
        layout: axis order of one event's image: ``channels_last`` (H, W, C) or
            ``channels_first`` (C, H, W).
        channel_keys: root_image: one (H, W) branch per channel; root_hits: one value branch
            per channel (same order as ``channels``).
        eta_key, phi_key: root_hits: jagged branches of hit positions; if ``channel_eta_keys``
            are given, each channel has its own positions instead.
        label_key: per-event integer labels (ignored when ``label`` or ``file_labels`` is set).
        label: fixed class index for every event of the file(s) (one file per class layout);
            overrides ``label_key``.
        file_labels: one file per class, several classes in one run: maps a file-name glob
            pattern (e.g. ``"SinglePhoton*"``) to the class index of every event of the
            matching files; overrides ``label`` and ``label_key``. A file that matches no
            pattern is an error.
        target_keys: per-event regression targets (e.g. ``[m0, pt]``); may be empty.
        tree: TTree name for ROOT inputs.
        particles_key: array name for the particles format (``X`` in energyflow .npz files).
    """

    format: ReaderFormat
    image_key: str | None = None
    layout: Literal["channels_last", "channels_first"] = "channels_last"
    channel_keys: list[str] = field(default_factory=list)
    eta_key: str | None = None
    phi_key: str | None = None
    channel_eta_keys: list[str] = field(default_factory=list)
    channel_phi_keys: list[str] = field(default_factory=list)
    label_key: str | None = "y"
    label: int | None = None
    file_labels: dict[str, int] = field(default_factory=dict)
    target_keys: list[str] = field(default_factory=list)
    tree: str = "Events"
    particles_key: str = "X"

    def validate(self, where: str) -> None:
        if self.label_key is None and self.label is None and not self.file_labels:
            raise ConfigError(
                f"{where}: set label_key (labels in the file), label or file_labels (one file per class)"
            )
        if self.format in ("ml4sci_hdf5", "e2e_parquet") and not self.image_key:
            raise ConfigError(f"{where}.image_key: required for format {self.format!r}")
        if self.format == "root_image" and not (self.image_key or self.channel_keys):
            raise ConfigError(f"{where}: format 'root_image' needs image_key or channel_keys")
        if self.format == "root_hits":
            if not self.channel_keys:
                raise ConfigError(f"{where}.channel_keys: required for format 'root_hits'")
            if not ((self.eta_key and self.phi_key) or (self.channel_eta_keys and self.channel_phi_keys)):
                raise ConfigError(f"{where}: format 'root_hits' needs eta_key/phi_key or channel_eta_keys/channel_phi_keys")


@dataclass(frozen=True)
class ChannelConfig:
    """One detector channel (image channel or hit collection).

    Args:
        name: short name used in tables and plots (e.g. ``tracks``, ``ecal``, ``hcal``).
        threshold: a pixel is a node only if its raw value is > threshold (zero suppression).
        scale: node feature = transform(value * scale).
        transform: ``none`` or ``log1p`` (compresses the energy spectrum's long tail).
        upsample: this channel's image repeats each coarse cell over upsample x upsample
            pixels (CMS HCAL towers span 5x5 ECAL crystals). With ``graph.collapse_upsampled``
            each non-empty cell becomes one node at its centre carrying the cell's energy.
        signed: the channel carries signed values (impact parameters d0/dz, hit time): a
            pixel is occupied if ``|value| > threshold`` and negative values are kept.
    """

    name: str
    threshold: float = 0.0
    scale: float = 1.0
    transform: Literal["none", "log1p"] = "none"
    upsample: int = 1
    signed: bool = False

    def validate(self, where: str) -> None:
        if self.scale <= 0:
            raise ConfigError(f"{where}.scale: invalid value {self.scale}; expected > 0")
        if self.signed and self.transform == "log1p":
            raise ConfigError(f"{where}.transform: 'log1p' is undefined for negative values; a signed channel needs transform: none")
        if self.upsample < 1:
            raise ConfigError(f"{where}.upsample: invalid value {self.upsample}; expected an integer >= 1")


@dataclass(frozen=True)
class ImageConfig:
    """Geometry of image inputs.

    Args:
        height, width: pixels per event image (checked against the file).
        pixel_size: (eta, phi) size of one pixel; positions are in these physical units,
            centred on the image (CMS ECAL crystals: 0.0174 x 0.0174).
    """

    height: int = 125
    width: int = 125
    pixel_size: tuple[float, float] = (0.0174, 0.0174)


@dataclass(frozen=True)
class GraphConfig:
    """How points become graphs.

    Args:
        node_mode: ``union``: one node per occupied pixel, all channels as features;
            ``per_channel``: one node per (pixel, channel), features = one-hot channel + value.
        collapse_upsampled: one node per occupied coarse cell for channels with upsample > 1
            (union mode keeps it as a separate node set with its own feature column).
        k: neighbours per node in (eta, phi); an event with <= k nodes connects to all others.
        knn_backend: ``auto`` = ``scipy``: exact, ties between equidistant nodes go to the
            lower node index; image nodes by integer brute force per event on the pixel
            lattice, points (hits, particles) by one cKDTree per chunk. ``torch`` (batched
            cdist + topk), ``torch_cluster`` (if installed).
        max_nodes: keep at most this many nodes per event (highest total value first); 0 = all.
    """

    node_mode: Literal["union", "per_channel"] = "union"
    collapse_upsampled: bool = True
    k: int = 16
    knn_backend: Literal["auto", "scipy", "torch", "torch_cluster"] = "auto"
    max_nodes: int = 0

    def validate(self, where: str) -> None:
        if not 1 <= self.k <= K_MAX:  # checked before any (P, k) neighbour array is allocated
            raise ConfigError(f"{where}.k: invalid value {self.k}; expected an integer in 1..{K_MAX}")
        if self.max_nodes < 0:
            raise ConfigError(f"{where}.max_nodes: invalid value {self.max_nodes}; expected >= 0 (0 keeps all)")


@dataclass(frozen=True)
class SplitConfig:
    """Train/val/test assignment by hashing the event id (source file name + index) with a seed."""

    train: float = 0.8
    val: float = 0.1
    test: float = 0.1
    seed: int = 0

    def validate(self, where: str) -> None:
        fr = (self.train, self.val, self.test)
        if any(f < 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-6:
            raise ConfigError(f"{where}: fractions train/val/test = {fr} must be >= 0 and sum to 1")


@dataclass(frozen=True)
class DataConfig:
    """Everything ``graphevent preprocess`` needs to turn files into a graph dataset."""

    reader: ReaderConfig
    classes: list[str]
    channels: list[ChannelConfig]
    image: ImageConfig = field(default_factory=ImageConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    bad_values: Literal["fail", "zero"] = "fail"
    empty_events: Literal["skip", "keep"] = "skip"
    chunk_size: int = 1024
    name: str = "dataset"

    def validate(self, where: str) -> None:
        if len(self.classes) < 2:
            raise ConfigError(f"{where}.classes: expected at least 2 class names, found {self.classes}")
        if not self.channels:
            raise ConfigError(f"{where}.channels: expected at least one channel")
        if self.chunk_size < 1:
            raise ConfigError(f"{where}.chunk_size: invalid value {self.chunk_size}; expected >= 1")
        if self.reader.label is not None and not 0 <= self.reader.label < len(self.classes):
            raise ConfigError(
                f"{where}.reader.label: invalid value {self.reader.label}; expected 0..{len(self.classes) - 1} "
                f"(classes {self.classes})"
            )
        for pattern, index in self.reader.file_labels.items():
            if not 0 <= index < len(self.classes):
                raise ConfigError(
                    f"{where}.reader.file_labels.{pattern}: invalid value {index}; expected 0..{len(self.classes) - 1} "
                    f"(classes {self.classes})"
                )
        if self.reader.format == "particles" and self.graph.node_mode != "union":
            raise ConfigError(f"{where}.graph.node_mode: particles format supports only 'union'")


def load_data_config(path, overrides: list[str] | None = None) -> DataConfig:
    """Load ``graphevent/configs/data/*.yaml`` (or a shipped name) into a validated :class:`DataConfig`."""
    from graphevent.config.base import apply_overrides, from_dict, load_yaml, name_override
    from graphevent.config.shipped import resolve_config_path

    path = resolve_config_path(path, "data")  # a file, or a shipped name (ml4sci_qg_hdf5)
    raw = load_yaml(path)
    if overrides:
        raw = apply_overrides(raw, overrides)
    try:
        return from_dict(DataConfig, raw, where=str(path))
    except ConfigError as exc:
        raise name_override(exc, str(path), overrides) from None
