"""Semi-supervised training in one run (multitask ``masked_loss_weight``): task losses on the
labelled subset, the masked loss on every event, the other events' labels never read."""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import pytest
import torch
from torch_geometric.data import Batch

from graphevent.config.base import from_dict
from graphevent.config.experiment import ExperimentConfig
from graphevent.data.partial_labels import PartialLabels
from graphevent.errors import ConfigError
from graphevent.nn.registry import build_model
from graphevent.nn.tasks import TaskConfig
from graphevent.nn.checkpoint import load_checkpoint
from graphevent.utils.distributed import DistContext
from graphevent.train.engine import Trainer, seed_everything, seed_worker
from train_helpers import GT, main_cli, write_experiment

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "nn"))
from nn_helpers import make_events, tiny_info  # noqa: E402

LABELLED = [1, 4, 6, 9]
TASKS = [{"name": "label", "type": "classification"}, {"name": "m0", "type": "regression", "target": "m0"}]
MODEL = {"name": "multitask", "encoders": ["masked_gt"], "dim": 16, "heads": 2, "head_hidden": 16,
         "masked_loss_weight": 0.5, "masked_gt": GT}


def events(labels=None):
    evs = make_events((12, 20, 9, 15, 18, 11, 14, 10, 16, 13, 17, 12))
    if labels is not None:
        for e, (y, m0) in zip(evs, labels):
            e.y, e.targets = torch.tensor([y]), e.targets.clone()
            e.targets[0, 0] = m0
    return evs


def train_weights(evs, steps_epochs: int = 2) -> tuple[dict[str, torch.Tensor], list[float]]:
    cfg = from_dict(ExperimentConfig, {
        "name": "semi", "stage": "finetune", "model": MODEL, "tasks": TASKS,
        "train": {"epochs": steps_epochs, "batch_size": 4, "lr": 0.01, "warmup_epochs": 0, "amp": "off"}, "seed": 5,
    })
    seed_everything(cfg.seed)
    model = build_model(cfg.model, tiny_info(), [TaskConfig(**t) for t in TASKS])
    seed_worker(cfg.seed, 0)
    ds = PartialLabels(evs, LABELLED)
    trainer = Trainer(model, cfg, ds, [e.num_nodes for e in evs], DistContext())
    losses = []
    original = trainer._optimizer_step

    def step():
        losses.append(float(sum(p.grad.double().square().sum() for p in model.parameters() if p.grad is not None)))
        original()

    trainer._optimizer_step = step
    trainer.fit()
    return {k: v.detach().clone() for k, v in model.state_dict().items()}, losses


def test_partial_labels_hide_the_labels_of_the_other_events():
    evs = events()
    ds = PartialLabels(evs, LABELLED)
    batch = Batch.from_data_list([ds[i] for i in range(len(evs))])
    assert batch.labelled.tolist() == [i in LABELLED for i in range(len(evs))]
    hidden = [i for i in range(len(evs)) if i not in LABELLED]
    assert batch.y[hidden].tolist() == [0] * len(hidden)
    assert batch.targets[hidden].abs().sum().item() == 0.0
    assert torch.equal(batch.y[LABELLED], torch.cat([evs[i].y for i in LABELLED]))
    assert "labelled" not in evs[0] and evs[0].targets.abs().sum() > 0  # the caller's events unchanged
    assert (len(ds), ds.num_labelled, repr(ds)) == (12, 4, "PartialLabels(12 events, 4 labelled)")
    again = pickle.loads(pickle.dumps(ds))  # as DataLoader worker processes get it
    assert again[2].labelled.tolist() == [False] and torch.equal(again[1].x, evs[1].x)


def test_permuted_labels_of_unlabelled_events_train_bit_identically(one_torch_thread):
    """Every optimizer step's gradient norm and the final weights are the same with the
    unlabelled events' labels and targets permuted; changing one labelled event's label changes them."""
    base = [(int(e.y), float(e.targets[0, 0])) for e in events()]
    hidden = [i for i in range(len(base)) if i not in LABELLED]
    permuted = list(base)
    for i, j in zip(hidden, hidden[::-1]):
        permuted[i] = (1 - base[j][0], base[j][1] + 7.0)  # other labels and targets at every hidden event
    want, want_grads = train_weights(events(base))
    got, got_grads = train_weights(events(permuted))
    assert len(want_grads) == 6  # 12 events, batches of 4, 2 epochs
    assert got_grads == want_grads
    assert all(torch.equal(want[k], got[k]) for k in want)
    flipped = list(base)
    flipped[LABELLED[0]] = (1 - base[LABELLED[0]][0], base[LABELLED[0]][1])
    other, other_grads = train_weights(events(flipped))
    assert other_grads != want_grads
    assert any(not torch.equal(want[k], other[k]) for k in want)


def test_a_batch_without_labelled_events_trains_only_the_masked_loss(one_torch_thread):
    torch.manual_seed(0)
    model = build_model(MODEL, tiny_info(), [TaskConfig(**t) for t in TASKS])
    ds = PartialLabels(events(), LABELLED)
    batch = Batch.from_data_list([ds[i] for i in (0, 2, 3)])
    loss, logs = model.loss(batch, "finetune")
    loss.backward()
    assert (logs["loss_label"], logs["loss_m0"]) == (0.0, 0.0)
    assert logs["recon_masked_gt"] > 0 and logs["loss"] == pytest.approx(0.5 * logs["recon_masked_gt"], rel=1e-6)
    assert all(p.grad is not None and p.grad.abs().sum() == 0 for p in model.heads.parameters())
    encoder = model.backbones["masked_gt"].encoder
    assert all(p.grad is not None for p in encoder.parameters())
    assert sum(float(p.grad.abs().sum()) for p in encoder.parameters()) > 0


def test_task_losses_are_the_means_over_the_labelled_events(one_torch_thread):
    torch.manual_seed(0)
    model = build_model(MODEL, tiny_info(), [TaskConfig(**t) for t in TASKS]).eval()
    ds = PartialLabels(events(), LABELLED)
    batch = Batch.from_data_list([ds[i] for i in range(8)])
    _, logs = model.loss(batch, "finetune")
    labelled_only = Batch.from_data_list([events()[i] for i in (1, 4, 6)])
    _, want = model.loss(labelled_only, "finetune")  # no ``labelled`` flag: every event counts
    assert logs["loss_label"] == pytest.approx(want["loss_label"], rel=1e-5)
    assert logs["loss_m0"] == pytest.approx(want["loss_m0"], rel=1e-5)


def test_masked_loss_weight_and_aux_recon_weight_are_exclusive():
    with pytest.raises(ConfigError, match=r"^model.aux_recon_weight: 0.1 with model.masked_loss_weight: 0.5; expected at most one"):
        build_model({**MODEL, "aux_recon_weight": 0.1}, tiny_info())
    with pytest.raises(ConfigError, match=r"^model.masked_loss_weight: -1.0; expected >= 0$"):
        build_model({**MODEL, "masked_loss_weight": -1.0}, tiny_info())


def test_train_with_a_label_fraction_draws_every_event(tiny_dataset, tmp_path, one_torch_thread):
    """``graphevent train`` with masked_loss_weight and label_fraction 0.25 trains on the whole
    split (train_events) and records how many of them were labelled."""
    from graphevent.data.info import load_manifest

    cfg = write_experiment(tmp_path / "joint.yaml", "finetune", MODEL, tasks=TASKS[:1], epochs=1, label_fraction=0.25)
    assert main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", tmp_path / "run", "--no-progress"]) == 0
    ck = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    n_train = load_manifest(tiny_dataset)["splits"]["train"]
    assert ck["train_events"] == n_train
    assert ck["labelled_events"] == round(0.25 * n_train)


def test_the_shipped_joint_config_trains_unlabelled_events():
    from graphevent.config.experiment import load_experiment

    cfg = load_experiment("multitask_joint")
    model = build_model(cfg.model, tiny_info())
    assert model.trains_unlabelled and model.config.masked_loss_weight == 1.0
    assert model.backbones["masked_gt"].decoder is not None
    assert not build_model(load_experiment("multitask_joint", ["model.masked_loss_weight=0"]).model, tiny_info()).trains_unlabelled
