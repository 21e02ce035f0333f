"""The shipped contrastive pretraining config, and fine-tuning recipes that keep what was learned."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2] / "graphevent" / "configs" / "experiments"
COMMON = ["--epochs", "1", "--batch-size", "16", "--no-progress", "--set", "train.num_workers=0"]
SMALL_GT = ["--set", "model.masked_gt.depth=1", "--set", "model.masked_gt.dim=16", "--set", "model.masked_gt.heads=2",
            "--set", "model.masked_gt.k=8"]


def test_contrastive_run_initialises_finetuning_and_a_held_encoder_stays_exact(tmp_path, tiny_dataset):
    """Contrastive pretraining with the shipped config, then fine-tuning with the encoder's
    learning rate held at 0 for the whole (1-epoch) run: the encoder ends bit-identical to the
    pretrained one while the heads moved."""
    from graphevent.cli.app import main
    from graphevent.nn.checkpoint import load_run

    data = ["--data", str(tiny_dataset)]
    assert main(["train", "-c", str(ROOT / "contrastive_pretrain.yaml"), "--out", str(tmp_path / "clr"), *data, *COMMON,
                 *SMALL_GT, "--set", "model.proj_hidden=16", "--set", "model.proj_dim=8"]) == 0
    pre, cfg, _ = load_run(tmp_path / "clr", "last")
    assert cfg.stage == "pretrain" and list(pre.encoder_modules()) == ["masked_gt"]
    assert main(["train", "-c", str(ROOT / "masked_gt_finetune.yaml"), "--out", str(tmp_path / "ft"), *data, *COMMON,
                 *SMALL_GT, "--init-from", str(tmp_path / "clr"), "--set", "train.encoder_frozen_epochs=1",
                 "--set", "train.encoder_lr_scale=0.1"]) == 0
    ft, _, _ = load_run(tmp_path / "ft", "last")
    a, b = pre.encoder_modules()["masked_gt"].state_dict(), ft.encoder_modules()["masked_gt"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    fresh = torch.load(tmp_path / "ft" / "checkpoints" / "last.pt", weights_only=True)["optimizer"]["param_groups"]
    # after the last step the hold is over: encoder groups follow the schedule at 0.1 x the heads' rate
    heads = {g["lr"] for g in fresh if not g["encoder"]}
    enc = {g["lr"] for g in fresh if g["encoder"]}
    assert len(heads) == 1 and len(enc) == 1 and enc.pop() == pytest.approx(0.1 * heads.pop())


def test_contrastive_pretraining_of_the_sparse_conv_encoder_initialises_multitask(tmp_path, tiny_dataset):
    """Any registered encoder pretrains contrastively: ``sparse_conv`` with the shipped config,
    then ``multitask`` on it with ``--init-from``; the frozen encoder (batch-norm statistics
    included) ends bit-identical to the pretrained one."""
    from graphevent.cli.app import main
    from graphevent.nn.checkpoint import load_run

    data = ["--data", str(tiny_dataset)]
    assert main(["train", "-c", str(ROOT / "contrastive_pretrain.yaml"), "--out", str(tmp_path / "clr"), *data, *COMMON,
                 "--set", "model.encoder=sparse_conv", "--set", "model.proj_hidden=16", "--set", "model.proj_dim=8"]) == 0
    pre, _, _ = load_run(tmp_path / "clr", "last")
    assert list(pre.encoder_modules()) == ["sparse_conv"]
    assert main(["train", "-c", str(ROOT / "multitask_finetune.yaml"), "--out", str(tmp_path / "ft"), *data, *COMMON,
                 "--set", "model.encoders=[sparse_conv]", "--init-from", str(tmp_path / "clr"),
                 "--set", "train.freeze_encoder=true"]) == 0
    ft, _, _ = load_run(tmp_path / "ft", "last")
    a, b = pre.encoder_modules()["sparse_conv"].state_dict(), ft.encoder_modules()["sparse_conv"].state_dict()
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_recipe_settings_are_validated():
    from graphevent.config.experiment import experiment_from_dict
    from graphevent.errors import ConfigError

    base = {"stage": "finetune", "model": {"name": "multitask"}, "tasks": [{"name": "label", "type": "classification"}]}
    with pytest.raises(ConfigError, match=r"train.encoder_lr_scale: invalid value 0.0; expected > 0"):
        experiment_from_dict({**base, "train": {"encoder_lr_scale": 0.0}})
    for bad in (0.0, 1.5):
        with pytest.raises(ConfigError, match=rf"^config.train.encoder_layer_decay: invalid value {bad}; expected a number in \(0, 1\]$"):
            experiment_from_dict({**base, "train": {"encoder_layer_decay": bad}})
    with pytest.raises(ConfigError, match=r"train.encoder_frozen_epochs: invalid value 3.0; expected 0..epochs \(2\)"):
        experiment_from_dict({**base, "train": {"epochs": 2, "encoder_frozen_epochs": 3}})
    with pytest.raises(ConfigError, match=r"train.min_steps_per_epoch: invalid value -1; expected >= 0"):
        experiment_from_dict({**base, "train": {"min_steps_per_epoch": -1}})


def test_encoder_held_by_frozen_epochs_keeps_its_batch_norm_statistics(tmp_path, tiny_dataset):
    """``train.encoder_frozen_epochs`` holds a batch-normalised encoder (``edgeconv``) exactly:
    its weights and its BatchNorm running statistics end bit-identical to the pretrained ones
    after a held epoch, while the heads moved; once released (epoch 2 of 2) the encoder trains."""
    from graphevent.cli.app import main
    from graphevent.nn.checkpoint import load_run

    data = ["--data", str(tiny_dataset)]
    assert main(["train", "-c", str(ROOT / "edgeconv_ae_pretrain.yaml"), "--out", str(tmp_path / "pre"), *data, *COMMON]) == 0
    pre, _, _ = load_run(tmp_path / "pre", "last")
    a = pre.encoder_modules()["edgeconv"].state_dict()
    assert any("running_mean" in k for k in a)
    ft = ["-c", str(ROOT / "multitask_finetune.yaml"), *data, "--batch-size", "16", "--no-progress",
          "--set", "train.num_workers=0", "--set", "model.encoders=[edgeconv]", "--init-from", str(tmp_path / "pre"),
          "--set", "train.encoder_frozen_epochs=1"]
    assert main(["train", *ft, "--out", str(tmp_path / "held"), "--epochs", "1"]) == 0
    held, _, _ = load_run(tmp_path / "held", "last")
    b = held.encoder_modules()["edgeconv"].state_dict()
    assert a.keys() == b.keys() and [k for k in a if not torch.equal(a[k], b[k])] == []
    assert main(["train", *ft, "--out", str(tmp_path / "released"), "--epochs", "2"]) == 0
    released, _, _ = load_run(tmp_path / "released", "last")
    c = released.encoder_modules()["edgeconv"].state_dict()
    moved = [k for k in a if not torch.equal(a[k], c[k])]
    assert any("running_mean" in k for k in moved) and any(k.endswith("weight") for k in moved)


def test_layer_decay_max_labels_turns_layer_decay_off_from_that_many_labels(tmp_path, tiny_dataset, capfd):
    """``train.encoder_layer_decay_max_labels``: a run with fewer labelled training events
    than it fine-tunes with the layer decay (encoder groups at 0.75^depth of the rate); one
    with at least that many with one rate for every encoder level, says so in one line, and
    its checkpoint's config records the decay that ran (1.0)."""
    from graphevent.cli.app import main
    from graphevent.config.experiment import TrainConfig, experiment_from_dict
    from graphevent.data.dataset import GraphDataset
    from graphevent.errors import ConfigError

    n_train = len(GraphDataset(tiny_dataset, "train"))
    assert [TrainConfig(encoder_layer_decay=0.75, encoder_layer_decay_max_labels=m).layer_decay_for(n_train)
            for m in (0, n_train, n_train + 1)] == [0.75, 1.0, 0.75]
    ft = ["-c", str(ROOT / "multitask_finetune.yaml"), "--data", str(tiny_dataset), *COMMON,
          "--set", "model.encoders=[edgeconv]", "--set", "train.encoder_layer_decay=0.75",
          "--set", f"train.encoder_layer_decay_max_labels={n_train}"]
    scales = {}
    for name, fraction in (("all", "1.0"), ("half", "0.5")):
        capfd.readouterr()
        assert main(["train", *ft, "--out", str(tmp_path / name), "--label-fraction", fraction]) == 0
        out = capfd.readouterr().out
        state = torch.load(tmp_path / name / "checkpoints" / "last.pt", weights_only=True)
        scales[name] = sorted({round(g["lr_scale"], 6) for g in state["optimizer"]["param_groups"]})
        decay = state["config"]["train"]["encoder_layer_decay"]
        noted = (f"note: train.encoder_layer_decay 0.75 -> 1 (off): {n_train:,} labelled training events, "
                 f"at least train.encoder_layer_decay_max_labels={n_train:,}")
        assert (decay, noted in out) == ((1.0, True) if name == "all" else (0.75, False)), (name, out)
    assert scales["all"] == [1.0]  # heads and every encoder level at one rate
    assert scales["half"] == pytest.approx([0.75 ** d for d in range(len(scales["half"]) - 1, -1, -1)])
    assert len(scales["half"]) >= 3
    with pytest.raises(ConfigError, match=r"train.encoder_layer_decay_max_labels: invalid value -1; expected >= 0"):
        experiment_from_dict({"stage": "finetune", "model": {"name": "multitask"}, "tasks": [{"name": "label", "type": "classification"}],
                              "train": {"encoder_layer_decay_max_labels": -1}})
