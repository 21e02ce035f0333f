"""foldingnet_ae: the folded grid's shapes, its Chamfer loss on a hand-computed example, an
overfit, and every registered encoder inside it."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch_geometric.data import Batch, Data

from nn_helpers import SIZES, TINY, TINY_ENCODERS, build_tiny, make_batch, tiny_info
from graphevent.errors import ConfigError
from graphevent.nn import build_model
from graphevent.nn.layers.set_loss import chamfer_distance
from graphevent.nn.registry import list_encoders


def test_the_decoder_folds_a_fixed_grid_into_points_of_the_event_space():
    model = build_tiny("foldingnet_ae").train()
    grid = model.decoder.grid
    assert grid.shape == (36, 2) and grid.min() == -1.0 and grid.max() == 1.0
    assert "decoder.grid" not in model.state_dict()  # fixed, not a weight
    batch = make_batch()
    tokens, pooled = model.encode(batch)
    assert tokens.shape == (sum(SIZES), 16) and pooled.shape == (len(SIZES), 16)
    points = model.decode(tokens, pooled, batch)
    assert points.shape == (len(SIZES), 36, 2 + 3) and torch.isfinite(points).all()
    rec = model.reconstruct(batch)  # the folded point nearest to each node
    assert rec.pos.shape == (sum(SIZES), 2) and rec.values.shape == (sum(SIZES), 3)
    assert rec.batch.tolist() == batch.batch.tolist() and rec.num_events == len(SIZES)
    assert model.predict(batch)["recon_error"].shape == (len(SIZES), 3)


def test_chamfer_distance_of_three_points_by_hand():
    pred = torch.tensor([[[0.0, 0.0], [1.0, 0.0], [0.0, 2.0], [9.0, 9.0]]])  # the last slot is padding
    target = torch.tensor([[[0.0, 0.0], [1.0, 1.0], [3.0, 0.0]]])
    cd, nearest, dist = chamfer_distance(pred, torch.tensor([[True, True, True, False]]), target, torch.ones(1, 3, dtype=torch.bool))
    # targets to their nearest points: 0, 1, 4 (mean 5/3); points to their nearest targets: 0, 1, 2 (mean 1)
    torch.testing.assert_close(cd, torch.tensor([5 / 3 + 1]))
    assert nearest.tolist() == [[0, 1, 1]] and dist.tolist() == [[0.0, 1.0, 4.0]]


class FixedPoints(nn.Module):
    def __init__(self, points: torch.Tensor) -> None:
        super().__init__()
        self.points = points

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.points.expand(z.size(0), -1, -1)


@pytest.mark.parametrize("pos_weight", [1.0, 4.0])
def test_the_loss_is_the_chamfer_distance_of_the_nodes_and_the_folded_points(pos_weight):
    """Three nodes at (0, 0), (0.5, 0.5), (1.5, 0) with pos_scale 0.5 and values at the feature
    mean (standardised 0), three folded points at (0, 0), (1, 0), (0, 2): 5/3 + 1, times
    pos_weight for positions alone."""
    model = build_tiny("foldingnet_ae", pos_scale=0.5, pos_weight=pos_weight)
    model.decoder = FixedPoints(torch.tensor([[[0.0, 0.0, 0, 0, 0], [1.0, 0.0, 0, 0, 0], [0.0, 2.0, 0, 0, 0]]]))
    event = Data(x=torch.full((3, 3), 0.5), pos=torch.tensor([[0.0, 0.0], [0.5, 0.5], [1.5, 0.0]]))
    loss = model.recon_loss(Batch.from_data_list([event]))
    assert loss.item() == pytest.approx(pos_weight * 8 / 3, rel=1e-6)


def test_the_loss_falls_when_overfitting_one_batch():
    model = build_tiny("foldingnet_ae").train()
    batch = make_batch()
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    losses = []
    for _ in range(40):
        opt.zero_grad()
        loss, logs = model.loss(batch, "pretrain")
        loss.backward()
        opt.step()
        losses.append(logs["recon"])
    assert losses[-1] < 0.5 * losses[0]


@pytest.mark.parametrize("encoder", list(list_encoders()))
def test_every_registered_encoder_pretrains_in_foldingnet_and_moves_to_multitask(encoder):
    section = TINY_ENCODERS[encoder]
    model = build_tiny("foldingnet_ae", **{"masked_gt": None, "encoder": encoder, encoder: section}).train()
    assert list(model.encoder_modules()) == [encoder] and isinstance(model.encoder, list_encoders()[encoder])
    loss, _ = model.loss(make_batch(), "pretrain")
    assert torch.isfinite(loss)
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None or p.grad.abs().sum() == 0] == []
    target = build_tiny("multitask", encoders=[encoder], **{encoder: section})
    target.encoder_modules()[encoder].load_state_dict(model.encoder_modules()[encoder].state_dict(), strict=True)


def test_config_errors_name_the_key():
    with pytest.raises(ConfigError, match=rf"model.encoder: unknown encoder 'cnn'; registered encoders: {', '.join(list_encoders())}$"):
        build_model({"name": "foldingnet_ae", "encoder": "cnn"}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.grid: 1; expected >= 2 \(points per side of the folded grid\)"):
        build_model({"name": "foldingnet_ae", **TINY["foldingnet_ae"], "grid": 1}, tiny_info())
