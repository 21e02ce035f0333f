"""The training loop in one process with the toy model: resume, accumulation, early stopping, AMP."""

from __future__ import annotations

import shutil

import pytest
import torch

from graphevent.config.base import from_dict
from graphevent.config.experiment import ExperimentConfig
from graphevent.errors import ConfigError
from graphevent.nn.registry import build_model
from graphevent.nn.tasks import TaskConfig
from graphevent.nn.checkpoint import load_checkpoint, load_run
from graphevent.utils.distributed import DistContext
from graphevent.train.engine import Trainer, seed_everything, seed_worker
from toy import INFO, toy_events

TRAIN = toy_events(24, seed=1, dtype=torch.float64)
VAL = toy_events(10, seed=2, dtype=torch.float64)


def make_trainer(run_dir=None, dropout=0.0, **train) -> Trainer:
    cfg = from_dict(ExperimentConfig, {
        "name": "toy", "stage": "supervised", "model": {"name": "toy_train", "hidden": 8, "dropout": dropout},
        "tasks": [{"name": "label", "type": "classification"}],
        "train": {"epochs": 2, "batch_size": 8, "lr": 0.05, "warmup_epochs": 0.5, "amp": "off", **train},
        "seed": 3,
    })
    seed_everything(cfg.seed)
    model = build_model(cfg.model, INFO, [TaskConfig("label", "classification")]).double()
    seed_worker(cfg.seed, 0)
    return Trainer(model, cfg, TRAIN, [d.num_nodes for d in TRAIN], DistContext(), val_set=VAL,
                   val_nodes=[d.num_nodes for d in VAL], run_dir=run_dir,
                   checkpoint_extra={"dataset_info": {"node_features": INFO.node_features, "classes": INFO.classes,
                                                      "targets": INFO.targets, "target_stats": INFO.target_stats}})


def weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


def max_diff(a, b) -> float:
    assert a.keys() == b.keys()
    return max(float((a[k] - b[k]).abs().max()) for k in a)


def test_resume_mid_epoch_reaches_the_same_weights(tmp_path, monkeypatch):
    """A checkpoint written mid-epoch (dropout active) continues to bit-identical weights."""
    snapshots = {}
    original = Trainer.save

    def save_and_snapshot(self, which=("last",)):
        original(self, which)
        if self.state.batch_in_epoch and self.state.step in (2, 4):
            shutil.copy(self.run_dir / "checkpoints" / "last.pt", tmp_path / f"step{self.state.step}.pt")
            snapshots[self.state.step] = self.state.epoch

    monkeypatch.setattr(Trainer, "save", save_and_snapshot)
    full = make_trainer(tmp_path / "a", dropout=0.3, batch_size=4, checkpoint_every_steps=2)
    summary = full.fit()
    assert summary["steps"] == 12 and snapshots == {2: 0, 4: 0}
    expected = weights(full)
    monkeypatch.setattr(Trainer, "save", original)

    resumed = make_trainer(tmp_path / "b", dropout=0.3, batch_size=4, checkpoint_every_steps=2)
    state = load_checkpoint(tmp_path / "step4.pt")
    assert (state["epoch"], state["step"], state["batch_in_epoch"]) == (0, 4, 4)
    resumed.load_state_dict(state)
    resumed_summary = resumed.fit()
    assert max_diff(weights(resumed), expected) == 0.0
    assert resumed_summary["last"]["train_loss"] == pytest.approx(summary["last"]["train_loss"], abs=1e-12)
    assert resumed_summary["last"]["val_loss"] == pytest.approx(summary["last"]["val_loss"], abs=1e-12)


def test_accumulation_equals_a_larger_batch():
    big = make_trainer(batch_size=8)
    big.fit()
    acc = make_trainer(batch_size=4, accumulate=2)
    summary = acc.fit()
    assert summary["steps"] == big.state.step == 6
    assert max_diff(weights(acc), weights(big)) < 1e-12


def test_early_stopping_keeps_best_and_last(tmp_path, monkeypatch):
    losses = iter([1.0, 0.5, 0.7, 0.8, 0.4])
    monkeypatch.setattr(Trainer, "validate", lambda self: {"val_loss": next(losses)})
    trainer = make_trainer(tmp_path, epochs=5, early_stopping_patience=2)
    summary = trainer.fit()
    assert summary["stopped_early"] and summary["epochs"] == 4
    assert (summary["best"], summary["best_epoch"]) == (0.5, 2)
    best, last = load_checkpoint(tmp_path / "checkpoints" / "best.pt"), load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert (best["epoch"], last["epoch"]) == (2, 4)
    assert best["metrics"]["val_loss"] == 0.5


def test_validation_metrics_and_load_run(tmp_path):
    trainer = make_trainer(tmp_path, early_stopping_metric="val_label_auc")
    summary = trainer.fit()
    last = summary["last"]
    assert {"val_loss", "val_loss_label", "val_label_auc", "val_label_accuracy", "events_per_s"} <= set(last)
    assert 0.0 <= last["val_label_auc"] <= 1.0 and last["train_events"] == 24
    model, cfg, info = load_run(tmp_path, "last")
    assert not model.training and cfg.train.early_stopping_metric == "val_label_auc"
    assert info.classes == INFO.classes
    # the toy trains in float64; the rebuilt model is float32 with the same weights
    assert max_diff(model.state_dict(), {k: v.float() for k, v in weights(trainer).items()}) == 0.0


def test_node_balanced_batches_and_bf16_autocast():
    trainer = make_trainer(max_nodes_per_batch=40, amp="bf16")
    last = trainer.fit()["last"]
    assert trainer.amp is torch.bfloat16
    assert last["train_events"] == 24 and torch.isfinite(torch.tensor(last["train_loss"]))


def test_fp16_needs_cuda():
    with pytest.raises(ConfigError, match="train.amp: 'fp16' needs a CUDA device"):
        make_trainer(amp="fp16")


def test_persistent_loader_workers_train_as_the_main_process_loads(monkeypatch):
    """With worker processes each split's DataLoader is made once per run (its workers persist
    across epochs and validations), and training ends with the weights of in-process loading."""
    made = []
    original = torch.utils.data.DataLoader.__init__

    def counting_init(self, *args, **kwargs):
        made.append(kwargs.get("persistent_workers"))
        original(self, *args, **kwargs)

    reference = make_trainer(epochs=3)
    reference.fit()
    monkeypatch.setattr(torch.utils.data.DataLoader, "__init__", counting_init)
    trainer = make_trainer(epochs=3, num_workers=1)
    summary = trainer.fit()
    assert made == [True, True]  # one train and one validation loader for 3 epochs
    assert trainer._loaders == {}  # workers released when fit returns
    assert max_diff(weights(trainer), weights(reference)) == 0.0
    assert summary["last"]["val_loss"] == reference.state.last_metrics["val_loss"]
