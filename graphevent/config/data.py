"""The data config: how raw files are read and how events become graphs.

One YAML file per dataset layout lives in ``graphevent/configs/data/``; ``graphevent preprocess
--config`` loads it into :class:`DataConfig`. Every field is documented here and in the
example configs' comments.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

from graphevent.config.readers import ReaderConfig
from graphevent.errors import ConfigError

#: ``graph.k`` when a data config does not set it; models' ``k`` defaults to it too, so a model
#: left at its default rebuilds no graph.
DEFAULT_K = 16
#: Largest ``graph.k``: neighbour lists take 4 * k bytes per node (1,024 is 4 kB per node).
K_MAX = 1024
#: Position axes, in the order of a node's ``pos`` columns (``geometry.periodic`` names them).
POSITION_AXES = ("eta", "phi")

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
    k: int = DEFAULT_K
    knn_backend: Literal["auto", "scipy", "torch", "torch_cluster"] = "auto"
    max_nodes: int = 0

    def validate(self, where: str) -> None:
        if not 1 <= self.k <= K_MAX:  # checked before any (P, k) neighbour array is allocated
            raise ConfigError(f"{where}.k: invalid value {self.k}; expected an integer in 1..{K_MAX}")
        if self.max_nodes < 0:
            raise ConfigError(f"{where}.max_nodes: invalid value {self.max_nodes}; expected >= 0 (0 keeps all)")


@dataclass(frozen=True)
class GeometryConfig:
    """Which position axes wrap around (the ``geometry:`` section).

    Args:
        periodic: position axis (``eta`` or ``phi``) -> its period, for an axis where ``x`` and
            ``x + period`` are the same place: ``{phi: 6.283185307179586}`` on a full detector.
            Empty (the default): no axis wraps, as for jet-centred crops. Every distance and
            shift then wraps along it (kNN graphs, edge features, masking patches, phi
            rotations, sparse convolutions, ResNet-15's padding, the exported kNN), through
            :func:`graphevent.utils.geometry.wrap_delta`. For image inputs the period is the
            image's span along the axis (``width x pixel_size[1]`` for phi; checked to 1e-4,
            and that span is what the dataset records).
    """

    periodic: dict[str, float] = field(default_factory=dict)

    def validate(self, where: str) -> None:
        for axis, period in self.periodic.items():
            if axis not in POSITION_AXES:
                raise ConfigError(f"{where}.periodic: unknown axis {axis!r}; expected one of {', '.join(POSITION_AXES)}")
            if not period > 0:
                raise ConfigError(f"{where}.periodic.{axis}: invalid value {period}; expected a period > 0 (2 pi for phi)")


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
    """Everything ``graphevent preprocess`` needs to turn files into a graph dataset.

    ``reader`` is the section class its ``format`` registers (:mod:`graphevent.config.readers`):
    each format has its own keys.
    """

    reader: ReaderConfig
    classes: list[str]
    channels: list[ChannelConfig]
    image: ImageConfig = field(default_factory=ImageConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    geometry: GeometryConfig = field(default_factory=GeometryConfig)
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
        if self.geometry.periodic and self.graph.knn_backend == "torch_cluster":
            raise ConfigError(
                f"{where}.graph.knn_backend: 'torch_cluster' cannot wrap a periodic axis (geometry.periodic); "
                "use auto, scipy or torch"
            )
        for axis, period in self.geometry.periodic.items():
            span = self._image_span(axis)
            if span is not None and abs(period - span) > 1e-4 * span:
                i = POSITION_AXES.index(axis)
                size = (self.image.height, self.image.width)[i]
                raise ConfigError(
                    f"{where}.geometry.periodic.{axis}: {period} does not match the image's {axis} span "
                    f"{size} x pixel_size[{i}] = {span:g}; expected a period equal to that span (a full-detector image)"
                )
        self.reader.check_data(self, where)

    def _image_span(self, axis: str) -> float | None:
        """The image's extent along ``axis`` (rows x pixel eta, columns x pixel phi); ``None`` for point inputs."""
        from graphevent.config.readers import get_reader_type

        if get_reader_type(self.reader.format).yields != "images":
            return None
        i = POSITION_AXES.index(axis)
        return (self.image.height, self.image.width)[i] * float(self.image.pixel_size[i])

    @property
    def periods(self) -> tuple[float, float] | None:
        """Period of each position axis (eta, phi), 0 where it does not wrap, or ``None``
        when nothing wraps: what the dataset records (``DatasetInfo.periods``). Image inputs
        take the image's span, so wrapped pixel positions stay exactly on the lattice."""
        if not self.geometry.periodic:
            return None
        out = []
        for axis in POSITION_AXES:
            period = self.geometry.periodic.get(axis)
            span = self._image_span(axis) if period else None
            out.append(0.0 if not period else float(span if span is not None else period))
        return (out[0], out[1])

    def as_recorded(self) -> dict:
        """The config as datasets record it (and hash it for their id): without a
        ``geometry:`` section when nothing wraps, so datasets of jet crops keep their ids."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if not self.geometry.periodic:
            del out["geometry"]
        return out


def load_data_config(path, overrides: list[str] | None = None) -> DataConfig:
    """Load ``graphevent/configs/data/*.yaml`` (or a shipped name) into a validated :class:`DataConfig`."""
    from graphevent.config.base import build_with_overrides, from_dict, load_yaml
    from graphevent.config.shipped import resolve_config_path

    path = resolve_config_path(path, "data")  # a file, or a shipped name (ml4sci_qg_hdf5)
    raw = load_yaml(path)
    return build_with_overrides(lambda r: from_dict(DataConfig, r, where=str(path)), raw, overrides, str(path))
