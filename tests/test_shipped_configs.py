"""Configs ship inside the package and are usable by name."""

from __future__ import annotations

import tomllib
from fnmatch import fnmatch
from pathlib import Path

import pytest

from graphevent.config.data import load_data_config
from graphevent.config.experiment import load_experiment
from graphevent.config.shipped import CONFIG_DIR, resolve_config_path, shipped_configs
from graphevent.errors import ConfigError

ROOT = Path(__file__).resolve().parents[1]


def test_package_data_covers_every_shipped_config():
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text())
    patterns = pyproject["tool"]["setuptools"]["package-data"]["graphevent"]
    files = sorted(CONFIG_DIR.rglob("*.yaml"))
    assert CONFIG_DIR == ROOT / "graphevent" / "configs" and len(files) == 21
    for f in files:
        rel = f.relative_to(ROOT / "graphevent").as_posix()
        assert any(fnmatch(rel, p.replace("**/", "*/")) for p in patterns), rel


def test_names_resolve_to_shipped_files(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # not the repository: names must work from anywhere
    assert set(shipped_configs("experiments")) == {"particlenet", "masked_gt_pretrain", "masked_gt_finetune", "contrastive_pretrain",
                                                   "masked_gt_latent_pretrain", "masked_gt_occupancy_pretrain",
                                                   "edgeconv_ae_pretrain", "foldingnet_pretrain", "multitask_finetune", "multitask_joint",
                                                   "multitask_pairwise", "resnet15", "sparse_conv_ae_pretrain"}
    cfg = load_experiment("particlenet", ["train.epochs=3"])
    assert cfg.name == "particlenet" and cfg.model["name"] == "particlenet" and cfg.train.epochs == 3
    assert load_experiment("masked_gt_pretrain.yaml").stage == "pretrain"
    assert load_data_config("ml4sci_qg_hdf5").reader.image_key == "X_jets"
    (tmp_path / "particlenet").write_text("name: mine\nstage: supervised\nmodel: {name: particlenet}\ntasks: [{name: label, type: classification}]\n")
    assert load_experiment("particlenet").name == "mine"  # an existing file wins over a shipped name


def test_unknown_name_lists_the_shipped_ones():
    with pytest.raises(ConfigError, match=r"^particlenett: config file not found; expected a YAML file or a shipped "
                                          r"experiments config: contrastive_pretrain, edgeconv_ae_pretrain, foldingnet_pretrain, masked_gt_finetune, masked_gt_latent_pretrain, "
                                          r"masked_gt_occupancy_pretrain, masked_gt_pretrain, "
                                          r"multitask_finetune, multitask_joint, multitask_pairwise, particlenet, resnet15, sparse_conv_ae_pretrain$"):
        resolve_config_path("particlenett", "experiments")
    with pytest.raises(ConfigError, match=r"^sub/x.yaml: config file not found; expected a YAML file or a shipped data config: boosted_top_8ch"):
        load_data_config("sub/x.yaml")
