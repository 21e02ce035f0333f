"""The configs shipped inside the package (``graphevent/configs/``), usable by name.

``--config particlenet`` (train) and ``--config ml4sci_qg_hdf5`` (preprocess, predict)
name ``graphevent/configs/experiments/particlenet.yaml`` and
``graphevent/configs/data/ml4sci_qg_hdf5.yaml``; a path to an existing file always wins.
"""

from __future__ import annotations

from pathlib import Path

from graphevent.errors import ConfigError

CONFIG_DIR = Path(__file__).resolve().parent.parent / "configs"
KINDS = ("data", "experiments")


def shipped_configs(kind: str) -> dict[str, Path]:
    """Name -> file of the shipped configs of ``kind`` (``data`` or ``experiments``)."""
    if kind not in KINDS:
        raise ValueError(f"kind {kind!r}: expected one of {KINDS}")
    return {p.stem: p for p in sorted((CONFIG_DIR / kind).glob("*.yaml"))}


def resolve_config_path(value: str | Path, kind: str) -> Path:
    """An existing file, else the shipped config of that name (``particlenet`` or ``particlenet.yaml``).

    Raises:
        ConfigError: neither (a directory is named as one); lists the shipped names.
    """
    path = Path(value)
    if path.is_file():
        return path
    names = shipped_configs(kind)
    stem = path.name[:-5] if path.name.endswith(".yaml") else path.name
    if path.parent == Path(".") and stem in names:  # also when a folder of that name is here (a run: -o particlenet)
        return names[stem]
    if path.is_dir():
        raise ConfigError(f"{value}: is a directory; expected a YAML file")
    raise ConfigError(f"{value}: config file not found; expected a YAML file or a shipped {kind} config: {', '.join(names)}")
