"""masked_gt_occupancy: hidden nodes' positions and count unknown; predict grid occupancy and content."""

from __future__ import annotations

import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from nn_helpers import TINY, build_tiny, make_batch, tiny_info


def test_targets_count_and_sum_the_hidden_nodes_per_cell():
    model = build_tiny("masked_gt_occupancy", grid=2, extent=1.0)  # cells: (-,-) 0, (-,+) 1, (+,-) 2, (+,+) 3
    pos = torch.tensor([[-0.5, -0.5], [-0.2, -0.9], [0.5, 0.5], [3.0, -3.0], [0.1, 0.1]])
    x = torch.tensor([[1.0, 0.0, 2.0], [2.0, 1.0, 0.0], [5.0, 5.0, 5.0], [0.5, 0.5, 0.5], [9.0, 9.0, 9.0]])
    batch = Batch.from_data_list([Data(x=x, pos=pos)])
    assert model.cell_index(pos).tolist() == [0, 0, 3, 2, 3]  # outside the grid: the edge cell
    hidden = torch.tensor([True, True, False, True, False])
    got = model.occupancy_targets(batch, hidden)
    want = torch.zeros(1, 4, 4)
    want[0, 0] = torch.log1p(torch.tensor([2.0, 3.0, 1.0, 2.0]))
    want[0, 2] = torch.log1p(torch.tensor([1.0, 0.5, 0.5, 0.5]))
    torch.testing.assert_close(got, want)
    centres = model.cell_centres(torch.device("cpu"))
    assert centres.tolist() == [[-0.5, -0.5], [-0.5, 0.5], [0.5, -0.5], [0.5, 0.5]]
    assert model.cell_index(centres).tolist() == [0, 1, 2, 3]


def test_prediction_does_not_see_the_hidden_nodes():
    """Moving the hidden nodes, changing their values or dropping them leaves the prediction unchanged."""
    model = build_tiny("masked_gt_occupancy").eval()
    batch = make_batch()
    hidden = model.mask_nodes(batch)
    ref = model.predict_cells(batch, hidden)
    moved = batch.clone()
    moved.pos = torch.where(hidden[:, None], -batch.pos.flip(1), batch.pos)
    moved.x = torch.where(hidden[:, None], batch.x * 3 + 1, batch.x)
    torch.testing.assert_close(model.predict_cells(moved, hidden), ref)
    assert not torch.equal(model.occupancy_targets(moved, hidden), model.occupancy_targets(batch, hidden))
    keep = ~hidden
    dropped = Batch.from_data_list([
        Data(x=e.x[keep[batch.batch == i]], pos=e.pos[keep[batch.batch == i]]) for i, e in enumerate(batch.to_data_list())
    ])
    torch.testing.assert_close(model.predict_cells(dropped, torch.zeros(dropped.num_nodes, dtype=torch.bool)), ref,
                               atol=1e-5, rtol=1e-5)


def test_loss_falls_when_overfitting_one_batch():
    model = build_tiny("masked_gt_occupancy").train()
    batch = make_batch()
    torch.manual_seed(1)
    hidden = model.mask_nodes(batch)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(60):
        loss = model.occupancy_loss(batch, hidden)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    assert math.isfinite(losses[0]) and losses[-1] < 0.2 * losses[0]


def test_grid_settings_are_validated():
    from graphevent.errors import ConfigError
    from graphevent.nn import build_model

    with pytest.raises(ConfigError, match=r"model.extent: 0.0; expected > 0"):
        build_model({"name": "masked_gt_occupancy", **TINY["masked_gt_occupancy"], "extent": 0.0}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.grid: 0 must be >= 1"):
        build_model({"name": "masked_gt_occupancy", **TINY["masked_gt_occupancy"], "grid": 0}, tiny_info())


def test_shipped_config_builds_the_model_and_its_encoder_transfers_to_multitask():
    from graphevent.config.experiment import load_experiment
    from graphevent.nn import build_model
    from graphevent.nn.tasks import TaskConfig

    cfg = load_experiment("masked_gt_occupancy_pretrain", ["model.masked_gt.dim=16", "model.masked_gt.heads=2"])
    assert cfg.stage == "pretrain"
    torch.manual_seed(0)
    model = build_model(cfg.model, tiny_info())
    assert list(model.encoder_modules()) == ["masked_gt"] and model.config.grid == 8
    ft = build_model({"name": "multitask", "masked_gt": {"dim": 16, "heads": 2}}, tiny_info(), [TaskConfig("label", "classification")])
    ft.encoder_modules()["masked_gt"].load_state_dict(model.encoder_modules()["masked_gt"].state_dict(), strict=True)
