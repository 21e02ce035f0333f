"""Pretraining never reads labels: the same events with other labels give bit-identical weights."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from graphevent.data.shards import sha256_file
from train_helpers import main_cli, write_experiment

TINY_EDGECONV = {"name": "edgeconv_ae", "k": 8, "channels": [[8, 8]], "dim": 16, "num_points": 32, "query_dim": 8, "decoder_hidden": 16}


def relabel(src, dst, seed: int):
    """Copy a dataset, permuting labels and regression targets inside every shard (the events,
    their nodes and their order stay the same); the manifest's checksums are updated."""
    shutil.copytree(src, dst)
    manifest = json.loads((dst / "manifest.json").read_text())
    rng = np.random.default_rng(seed)
    changed = 0
    for shard in manifest["shards"]:
        path = dst / shard["path"]
        with h5py.File(path, "r+") as f:
            y, targets = f["y"][:], f["targets"][:]
            perm = rng.permutation(len(y))
            f["y"][...] = y[perm]
            f["targets"][...] = targets[perm]
            changed += int((y[perm] != y).sum())
        shard["sha256"] = sha256_file(path)
    (dst / "manifest.json").write_text(json.dumps(manifest))
    return changed


@pytest.mark.parametrize("model", ["masked_gt_ae", "edgeconv_ae"])
def test_pretraining_weights_do_not_depend_on_labels(tiny_dataset, tmp_path, model):
    changed = relabel(tiny_dataset, tmp_path / "relabelled", seed=5)
    assert changed > 10  # the copy really has other labels
    cfg = write_experiment(tmp_path / "pre.yaml", "pretrain", model if model == "masked_gt_ae" else TINY_EDGECONV, epochs=1)
    states = []
    for name, data in (("a", tiny_dataset), ("b", tmp_path / "relabelled")):
        assert main_cli(["train", "-c", cfg, "-d", data, "-o", tmp_path / name, "--no-progress"]) == 0
        states.append(torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["model"])
    assert states[0].keys() == states[1].keys() and len(states[0]) > 4
    for key in states[0]:
        assert torch.equal(states[0][key], states[1][key]), key


def test_finetuning_does_read_labels(tiny_dataset, tmp_path):
    """The control: the same relabelling changes a supervised run's weights."""
    relabel(tiny_dataset, tmp_path / "relabelled", seed=5)
    cfg = write_experiment(tmp_path / "sup.yaml", "supervised", "particlenet", tasks=[{"name": "label", "type": "classification"}], epochs=1)
    states = []
    for name, data in (("a", tiny_dataset), ("b", tmp_path / "relabelled")):
        assert main_cli(["train", "-c", cfg, "-d", data, "-o", tmp_path / name, "--no-progress"]) == 0
        states.append(torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)["model"])
    assert any(not torch.equal(states[0][k], states[1][k]) for k in states[0])


def test_label_seed_option_reaches_the_run(tiny_dataset, tmp_path):
    cfg = write_experiment(tmp_path / "sup.yaml", "supervised", "particlenet", tasks=[{"name": "label", "type": "classification"}], epochs=1)
    out = tmp_path / "run"
    assert main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--no-progress", "--label-fraction", "0.05", "--label-seed", "7"]) == 0
    import yaml

    train = yaml.safe_load((out / "config.yaml").read_text())["train"]
    assert (train["label_fraction"], train["label_seed"], train["min_labels_per_class"]) == (0.05, 7, 5)
    ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
    # 0.05 of the tiny train split is 4 events; the per-class minimum makes it 5 + 5
    assert ckpt["train_events"] == 10


def test_min_steps_per_epoch_gives_a_small_label_subset_several_steps_per_epoch(tiny_dataset, tmp_path):
    """10 labelled events with batch 8 are 2 steps per epoch; train.min_steps_per_epoch=5 makes
    each epoch 5 passes over them (40 events, 5 steps), so 2 epochs are 10 optimizer steps."""
    cfg = write_experiment(tmp_path / "sup.yaml", "supervised", "particlenet", tasks=[{"name": "label", "type": "classification"}], epochs=2)
    steps = {}
    for name, extra in (("plain", []), ("cycled", ["--set", "train.min_steps_per_epoch=5"])):
        out = tmp_path / name
        assert main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--no-progress", "--label-fraction", "0.05",
                         "--label-seed", "7", *extra]) == 0
        rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        steps[name] = [r["step"] for r in rows if "epoch" in r]
        ckpt = torch.load(out / "checkpoints" / "last.pt", weights_only=True)
        assert ckpt["train_events"] == 10  # the same labelled subset
    assert steps == {"plain": [2, 4], "cycled": [5, 10]}
