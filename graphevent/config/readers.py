"""The reader registry: one entry per input-file format, each with its own config section.

Each :class:`ReaderType` names the class that reads the format (imported only when a file is
opened, so ``h5py``, ``pyarrow`` and ``uproot`` load only for the format in use), whether it
yields images or points, and its config section: a :class:`ReaderConfig` subclass with the
keys only that format reads, their defaults and its checks. The data config's ``reader:``
section is built as the class registered for its ``format``; a key of another format is an
error naming the format and the keys it accepts. Adding a format adds its section class and
its entry here, and its reader file under ``io/``; nothing else lists formats.

No torch and no file libraries here: loading a YAML config imports only this.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from graphevent.config.registry import Registry
from graphevent.errors import ConfigError

if TYPE_CHECKING:
    from graphevent.config.data import DataConfig

#: The reader section as datasets and runs recorded it when one class held every format's
#: keys (manifest.json ``config``, ``data_config.yaml``, a run's ``dataset.json``): all of these
#: keys, in this order, those a format does not read at these values. Dataset ids hash this
#: form, so sections are still written in it (:meth:`ReaderConfig.as_recorded`) and read back
#: from it; frozen: a new format's keys follow these, they are never added here.
RECORDED_KEYS: dict[str, Any] = {
    "format": None, "image_key": None, "layout": "channels_last", "channel_keys": [], "eta_key": None,
    "phi_key": None, "channel_eta_keys": [], "channel_phi_keys": [], "label_key": "y", "label": None,
    "file_labels": {}, "target_keys": [], "tree": "Events", "particles_key": "X",
}


@dataclass(frozen=True)
class ReaderConfig:
    """The keys every format reads: where the labels and targets are. Each format's section
    subclasses it with its own keys (``reader:`` in a data config).

    Args:
        format: file layout, a registered reader (:data:`READERS`).
        label_key: per-event integer labels (ignored when ``label`` or ``file_labels`` is set).
        label: fixed class index for every event of the file(s) (one file per class layout);
            overrides ``label_key``.
        file_labels: one file per class, several classes in one run: maps a file-name glob
            pattern (e.g. ``"SinglePhoton*"``) to the class index of every event of the
            matching files; overrides ``label`` and ``label_key``. A file that matches no
            pattern is an error.
        target_keys: per-event regression targets (e.g. ``[m0, pt]``); may be empty.
    """

    format: str
    label_key: str | None = "y"
    label: int | None = None
    file_labels: dict[str, int] = field(default_factory=dict)
    target_keys: list[str] = field(default_factory=list)

    @classmethod
    def section_for(cls, data: dict[str, Any], where: str) -> tuple[type[ReaderConfig], dict[str, Any]]:
        """The section class of ``data["format"]`` and the keys to build it from (called by
        :func:`graphevent.config.base.from_dict` before it builds a ``reader:`` section).

        A recorded section (one that holds every key of :data:`RECORDED_KEYS`) drops the keys
        its format does not read that are at their recorded values.

        Raises:
            ConfigError: unknown format (lists the registered ones), or a key its format does
                not read: ``<where>.tree: not a key of format 'ml4sci_hdf5' (a key of
                root_hits, root_image); format 'ml4sci_hdf5' accepts file_labels, format, ...``.
        """
        if "format" not in data:
            raise ConfigError(f"{where}: missing required key 'format'")
        fmt = data["format"]
        section = get_reader_type(fmt, f"{where}.format").config
        accepted = {f.name for f in dataclasses.fields(section) if f.init}
        if RECORDED_KEYS.keys() <= data.keys():
            data = {k: v for k, v in data.items() if k in accepted or k not in RECORDED_KEYS or v != RECORDED_KEYS[k]}
        for key in data:
            if key not in accepted:
                owners = sorted(n for n, r in READERS.items() if key in {f.name for f in dataclasses.fields(r.config)})
                whose = f"a key of {', '.join(owners)}" if owners else "no format reads it"
                raise ConfigError(
                    f"{where}.{key}: not a key of format {fmt!r} ({whose}); "
                    f"format {fmt!r} accepts {', '.join(sorted(accepted))}"
                )
        return section, data

    def as_recorded(self) -> dict[str, Any]:
        """The section as datasets and runs record it: :data:`RECORDED_KEYS` (this format's
        values, the others' recorded values), then this format's other keys."""
        own = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        return {**{k: own.pop(k, default) for k, default in RECORDED_KEYS.items()}, **own}

    def validate(self, where: str) -> None:
        if self.label_key is None and self.label is None and not self.file_labels:
            raise ConfigError(
                f"{where}: set label_key (labels in the file), label or file_labels (one file per class)"
            )

    def check_data(self, cfg: DataConfig, where: str) -> None:
        """Checks against the rest of the data config (``where`` names the data config)."""


@dataclass(frozen=True)
class ImageArrayConfig(ReaderConfig):
    """``ml4sci_hdf5`` (image datasets in HDF5) and ``e2e_parquet`` (one row group per event,
    nested-list images): one array / column holds every event's image.

    Args:
        image_key: the image array / column (required).
        layout: axis order of one event's image: ``channels_last`` (H, W, C) or
            ``channels_first`` (C, H, W).
    """

    image_key: str | None = None
    layout: Literal["channels_last", "channels_first"] = "channels_last"

    def validate(self, where: str) -> None:
        super().validate(where)
        if not self.image_key:
            raise ConfigError(f"{where}.image_key: required for format {self.format!r}")


@dataclass(frozen=True)
class RootImageConfig(ReaderConfig):
    """``root_image``: fixed-size image branches in a TTree.

    Args:
        tree: the TTree's name.
        image_key: one multi-channel image branch; or
        channel_keys: one (H, W) branch per channel (same order as ``channels``).
        layout: axis order of ``image_key``'s events: ``channels_last`` (H, W, C) or
            ``channels_first`` (C, H, W).
    """

    tree: str = "Events"
    image_key: str | None = None
    channel_keys: list[str] = field(default_factory=list)
    layout: Literal["channels_last", "channels_first"] = "channels_last"

    def validate(self, where: str) -> None:
        super().validate(where)
        if not (self.image_key or self.channel_keys):
            raise ConfigError(f"{where}: format 'root_image' needs image_key or channel_keys")


@dataclass(frozen=True)
class RootHitsConfig(ReaderConfig):
    """``root_hits``: jagged hit branches in a TTree, one value branch per channel.

    Args:
        tree: the TTree's name.
        channel_keys: one value branch per channel (same order as ``channels``).
        eta_key, phi_key: hit positions shared by every channel; or
        channel_eta_keys, channel_phi_keys: each channel its own hit collection.
    """

    tree: str = "Events"
    channel_keys: list[str] = field(default_factory=list)
    eta_key: str | None = None
    phi_key: str | None = None
    channel_eta_keys: list[str] = field(default_factory=list)
    channel_phi_keys: list[str] = field(default_factory=list)

    def validate(self, where: str) -> None:
        super().validate(where)
        if not self.channel_keys:
            raise ConfigError(f"{where}.channel_keys: required for format 'root_hits'")
        if not ((self.eta_key and self.phi_key) or (self.channel_eta_keys and self.channel_phi_keys)):
            raise ConfigError(f"{where}: format 'root_hits' needs eta_key/phi_key or channel_eta_keys/channel_phi_keys")


@dataclass(frozen=True)
class ParticlesConfig(ReaderConfig):
    """``particles``: energyflow layout (N, M, 4) = pt, rapidity, phi, pid; .npz or HDF5.

    Args:
        particles_key: the particle array (``X`` in energyflow .npz files).
    """

    particles_key: str = "X"

    def check_data(self, cfg: DataConfig, where: str) -> None:
        if cfg.graph.node_mode != "union":
            raise ConfigError(f"{where}.graph.node_mode: particles format supports only 'union'")


@dataclass(frozen=True)
class ReaderType:
    """One input format.

    Args:
        name: the ``reader.format`` value (``ml4sci_hdf5``).
        reader: ``module:Class`` under ``graphevent.io`` (``hdf5:HDF5ImageReader``), or the
            :class:`~graphevent.io.base.Reader` subclass itself (a reader outside the package).
        yields: ``images`` (fixed-size (H, W, C) arrays) or ``points`` (hits, particles).
        config: its ``reader:`` section, a :class:`ReaderConfig` subclass.
    """

    name: str
    reader: str | type
    yields: Literal["images", "points"]
    config: type[ReaderConfig]


READERS: Registry[ReaderType] = Registry("reader format")


#: add a ReaderType (a name registered twice is an error)
register_reader_type = READERS.add


def get_reader_type(name: str, where: str = "reader.format") -> ReaderType:
    """The registered entry ``name``; an unknown name is a ConfigError listing the known ones."""
    return READERS.lookup(name, where)


register_reader_type(ReaderType("ml4sci_hdf5", "hdf5:HDF5ImageReader", "images", ImageArrayConfig))
register_reader_type(ReaderType("e2e_parquet", "parquet:ParquetImageReader", "images", ImageArrayConfig))
register_reader_type(ReaderType("root_image", "root:RootImageReader", "images", RootImageConfig))
register_reader_type(ReaderType("root_hits", "root:RootHitsReader", "points", RootHitsConfig))
register_reader_type(ReaderType("particles", "particles:ParticleReader", "points", ParticlesConfig))
