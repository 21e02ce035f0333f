"""A phi that wraps, model side: deposits across the seam are neighbours, their geometry is
small, and a rotation in phi leaves graphs, features and model outputs unchanged."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch_geometric.data import Batch, Data

from graphevent.nn.export import pad_events, padded_module
from graphevent.nn.layers.dense_knn import dense_knn, squared_position_distances
from graphevent.nn.layers.jet_augment import JetAugment, shift_periodic
from graphevent.nn.layers.knn import edge_features, knn_graph
from graphevent.nn.layers.masking import sample_hidden_nodes
from graphevent.nn.layers.pair_bias import pair_features
from graphevent.nn.layers.periodic import dense_event_frame, event_frame
from graphevent.nn.layers.sparse_lattice import SparseLattice
from graphevent.utils.geometry import wrap_positions
from nn_helpers import TINY, tiny_info

TWO_PI = 2 * math.pi
H, W = 16, 64  # a full-detector image: 64 phi columns over 2 pi
PIX = TWO_PI / W
PERIODS = (0.0, TWO_PI)
TASKS = [{"name": "label", "type": "classification"}, {"name": "m0", "type": "regression", "target": "m0"}]


def periodic_info():
    return dataclasses.replace(tiny_info(), pixel_size=(PIX, PIX), image_shape=(3, H, W), periods=PERIODS)


def seam_pos() -> torch.Tensor:
    """Two deposits either side of the seam (phi = +-3.13) and two far from it."""
    return torch.tensor([[0.0, 3.13], [0.0, -3.13], [0.0, 0.0], [0.5, 1.0]])


def lattice_event(n: int, seed: int, event_id: int) -> Data:
    """``n`` distinct pixels of the H x W image, columns 0 and W - 1 (the seam) always occupied."""
    g = torch.Generator().manual_seed(seed)
    cells = {(3, 0): None, (3, W - 1): None, (4, W - 1): None}
    while len(cells) < n:
        cells[(int(torch.randint(H, (1,), generator=g)), int(torch.randint(W, (1,), generator=g)))] = None
    rc = torch.tensor(list(cells), dtype=torch.float64)
    pos = torch.stack([(rc[:, 0] - (H - 1) / 2) * PIX, (rc[:, 1] - (W - 1) / 2) * PIX], 1).float()
    x = torch.log1p(torch.rand(n, 3, generator=g) * 5)
    return Data(x=x, pos=pos, y=torch.tensor([seed % 2]), targets=torch.tensor([[50.0, 200.0]]),
                event_id=torch.tensor([event_id]))


def rotated(event: Data, columns: int) -> Data:
    """The event rotated in phi by a whole number of pixel columns (wrapped)."""
    out = event.clone()
    out.pos = wrap_positions(event.pos + torch.tensor([0.0, columns * PIX]), PERIODS)
    return out


def events(shift: int = 0) -> list[Data]:
    evs = [lattice_event(n, seed, 100 + seed) for seed, n in enumerate((12, 30, 21))]
    return [rotated(e, shift) for e in evs] if shift else evs


# ----------------------------------------------------------------------------- kNN and features
def test_seam_deposits_are_model_knn_neighbours():
    pos = seam_pos()
    ei = knn_graph(pos, None, 1, periods=PERIODS)
    assert sorted(ei.t().tolist()) == [[0, 1], [1, 0], [2, 3], [3, 2]]
    flat = knn_graph(pos, None, 1)  # without periods: phi = +-3.13 are 6.26 apart
    assert sorted(flat.t().tolist()) == [[2, 1], [2, 3], [3, 0], [3, 2]]


def test_seam_deposits_are_dense_knn_neighbours_eager_and_scripted():
    h, mask = seam_pos()[None], torch.ones(1, 4, dtype=torch.bool)
    for fn in (dense_knn, torch.jit.script(dense_knn)):
        idx, valid = fn(h, mask, 1, True, False, None, PERIODS)
        assert idx.view(-1).tolist() == [1, 0, 3, 2] and bool(valid.all())


def test_edge_and_pair_features_wrap_across_the_seam():
    pos = seam_pos()
    feats = edge_features(pos, torch.tensor([[1], [0]]), PERIODS)
    torch.testing.assert_close(feats, torch.tensor([[0.0, 2 * math.pi - 6.26, 2 * math.pi - 6.26]]), atol=1e-6, rtol=0)
    assert edge_features(pos, torch.tensor([[1], [0]]))[0, 1].item() == pytest.approx(-6.26, abs=1e-6)
    ln_dr = pair_features(pos[0], torch.tensor(1.0), pos[1], torch.tensor(1.0), periods=PERIODS)[0]
    assert ln_dr.item() == pytest.approx(math.log(2 * math.pi - 6.26), abs=1e-4)


def test_lattice_distances_wrap_on_the_pixel_lattice():
    """Columns 0 and W - 1 of a W-column image are one pixel apart, exactly."""
    pos = torch.tensor([[[0.0, -(W - 1) / 2 * PIX], [0.0, (W - 1) / 2 * PIX], [PIX, -(W - 1) / 2 * PIX]]])
    d = squared_position_distances(pos, (PIX, PIX), PERIODS)[0]
    assert d.tolist() == [[0.0, 1.0, 1.0], [1.0, 0.0, 2.0], [1.0, 2.0, 0.0]]


@pytest.mark.parametrize("shift", [1, 17, -40])
def test_knn_graph_and_edge_features_are_unchanged_by_a_rotation(shift):
    batch, moved = Batch.from_data_list(events()), Batch.from_data_list(events(shift))
    a = knn_graph(batch.pos, batch.batch, 8, 3, (PIX, PIX), PERIODS)
    b = knn_graph(moved.pos, moved.batch, 8, 3, (PIX, PIX), PERIODS)
    assert torch.equal(a, b)
    torch.testing.assert_close(edge_features(batch.pos, a, PERIODS), edge_features(moved.pos, b, PERIODS), atol=1e-5, rtol=0)
    feats, pos, mask = pad_events(events())
    _, moved_pos, _ = pad_events(events(shift))
    assert torch.equal(dense_knn(pos, mask, 8, True, False, (PIX, PIX), PERIODS)[0],
                       dense_knn(moved_pos, mask, 8, True, False, (PIX, PIX), PERIODS)[0])


def test_event_frame_is_the_same_after_a_rotation_flat_and_padded():
    batch, moved = Batch.from_data_list(events()), Batch.from_data_list(events(23))
    a, b = event_frame(batch.pos, batch.batch, 3, PERIODS), event_frame(moved.pos, moved.batch, 3, PERIODS)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    assert torch.equal(a[:, 0], batch.pos[:, 0])  # eta does not wrap: unchanged
    _, pos, mask = pad_events(events())
    dense = dense_event_frame(pos, mask, PERIODS)
    torch.testing.assert_close(dense[mask], a, atol=1e-6, rtol=0)


def test_without_periods_nothing_changes():
    """Jet crops (no periods): the same tensors as before, not a wrapped copy."""
    batch = Batch.from_data_list(events())
    assert event_frame(batch.pos, batch.batch, 3, None) is batch.pos
    _, pos, mask = pad_events(events())
    assert dense_event_frame(pos, mask, None) is pos
    ei = knn_graph(batch.pos, batch.batch, 8, 3, (PIX, PIX))
    assert torch.equal(edge_features(batch.pos, ei, None), edge_features(batch.pos, ei))
    assert torch.equal(squared_position_distances(pos, (PIX, PIX), None), squared_position_distances(pos, (PIX, PIX)))


# ----------------------------------------------------------------------------- masking, augmentation, lattices
def test_a_mask_patch_continues_across_the_seam():
    phi = torch.tensor([3.10, 3.05, -3.12, 2.80, 0.0, -1.0])
    pos = torch.stack([torch.zeros(6), phi], 1)
    noise = torch.tensor([0.0, 0.5, 0.6, 0.7, 0.8, 0.9])  # node 0 (phi = 3.10) is the patch centre
    batch = torch.zeros(6, dtype=torch.long)
    hidden = sample_hidden_nodes(pos, batch, noise, 0.5, "patch", 1, 1, PERIODS)
    assert hidden.tolist() == [True, True, True, False, False, False]
    flat = sample_hidden_nodes(pos, batch, noise, 0.5, "patch", 1, 1)
    assert flat.tolist() == [True, True, False, True, False, False]


def test_phi_shift_augmentation_keeps_every_wrapped_distance():
    batch = Batch.from_data_list(events())
    moved = shift_periodic(batch.pos, batch.batch, torch.tensor([[0.0, 0.3], [0.0, 0.7], [0.0, 0.95]]), PERIODS)
    assert float(moved[:, 1].abs().max()) <= math.pi
    for e in range(3):
        sel = batch.batch == e
        a, b = batch.pos[sel], moved[sel]
        da = wrap_positions(a[:, None] - a[None], PERIODS).norm(dim=-1)
        db = wrap_positions(b[:, None] - b[None], PERIODS).norm(dim=-1)
        torch.testing.assert_close(da, db, atol=1e-5, rtol=0)
    aug = JetAugment(["log1p"] * 3, periods=PERIODS)
    _, pos, _ = aug(batch.x, batch.pos, batch.batch, 3, torch.Generator().manual_seed(0))
    assert torch.equal(pos[:, 0], batch.pos[:, 0]) and not torch.equal(pos[:, 1], batch.pos[:, 1])
    assert "periods=(0.0, 6.28" in repr(aug)


def test_sparse_lattice_neighbours_wrap_in_columns():
    event, row, col = torch.tensor([0, 0, 0]), torch.tensor([2, 2, 5]), torch.tensor([0, W - 1, 30])
    lattice, _ = SparseLattice.from_coords(event, row, col, col_period=W)
    nbr = lattice.neighbours(3)  # sites sorted by (row, col): (2, 0), (2, W - 1), (5, 30)
    assert nbr[0, 3].item() == 1 and nbr[1, 5].item() == 0  # (2, -1) is (2, W - 1); (2, W) is (2, 0)
    flat, _ = SparseLattice.from_coords(event, row, col)
    assert flat.neighbours(3)[0, 3].item() == 3 and flat.neighbours(3)[1, 5].item() == 3  # no site
    coarse, _, _ = lattice.coarsen(2)
    assert coarse.col_period == W // 2


# ----------------------------------------------------------------------------- models
def _outputs(model, evs: list[Data]) -> dict[str, torch.Tensor]:
    batch = Batch.from_data_list(evs)
    if model.supports_tasks:
        return model.predict(batch)
    tokens, pooled = model.encode(batch)
    return {"pooled": pooled, "loss": model.loss(batch, "pretrain")[0]}  # the objective too (eval mode: fixed masks)


MODELS = {
    "particlenet": ({}, 1),
    "masked_gt_ae": ({}, 1),
    "edgeconv_ae": ({}, 1),
    "foldingnet_ae": ({}, 1),
    # strided layers: rolls by whole cells of the coarsest level (stride 2 over 2 levels: 4 columns)
    "sparse_conv_ae": ({}, 4),
    "multitask": ({"encoders": ["masked_gt", "edgeconv", "sparse_conv"]}, 4),
    "resnet15": ({}, 8),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_model_outputs_are_unchanged_by_a_rotation_in_phi(name):
    from graphevent.nn import build_model
    from graphevent.nn.tasks import TaskConfig

    overrides, step = MODELS[name]
    torch.manual_seed(0)
    tasks = [TaskConfig(**t) for t in TASKS] if name in ("particlenet", "multitask", "resnet15") else None
    model = build_model({"name": name, **TINY[name], **overrides}, periodic_info(), tasks).eval()
    with torch.no_grad():
        want = _outputs(model, events())
        for shift in (step, 5 * step, -3 * step):
            got = _outputs(model, events(shift))
            for key, value in want.items():
                torch.testing.assert_close(got[key], value, atol=2e-4, rtol=1e-4, msg=f"{name} {key} shift {shift}")


def test_occupancy_pretraining_loss_is_unchanged_by_a_rotation_in_phi():
    """``masked_gt_occupancy``: hidden nodes' grid cells in the frame of the visible ones."""
    from graphevent.nn import build_model

    torch.manual_seed(0)
    cfg = {**TINY["masked_gt_occupancy"], "extent": math.pi}
    model = build_model({"name": "masked_gt_occupancy", **cfg}, periodic_info()).eval()
    with torch.no_grad():
        want = model.occupancy_loss(Batch.from_data_list(events()))
        for shift in (1, 19, -30):
            got = model.occupancy_loss(Batch.from_data_list(events(shift)))
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5, msg=f"shift {shift}")


def test_resnet15_pads_circularly_in_phi_only_for_periodic_images():
    from graphevent.nn import build_model

    periodic = build_model({"name": "resnet15", **TINY["resnet15"]}, periodic_info())
    crop = build_model({"name": "resnet15", **TINY["resnet15"]}, tiny_info())
    assert periodic.wrap_cols and not crop.wrap_cols
    assert periodic.conv0.padding == (1, 0) and crop.conv0.padding == (1, 1)
    assert periodic.state_dict().keys() == crop.state_dict().keys()  # the padding has no weights


@pytest.mark.parametrize("name", ["particlenet", "multitask"])
def test_exported_forms_wrap_as_the_models(name):
    from graphevent.nn import build_model
    from graphevent.nn.tasks import TaskConfig

    torch.manual_seed(0)
    overrides = {"encoders": ["masked_gt", "edgeconv"]} if name == "multitask" else {}
    model = build_model({"name": name, **TINY[name], **overrides}, periodic_info(), [TaskConfig(**t) for t in TASKS]).eval()
    evs = events(7)
    with torch.no_grad():
        want = model.predict(Batch.from_data_list(evs))
        padded = padded_module(model)
        for module in (padded, torch.jit.script(padded)):
            for got, (task, value) in zip(module(*pad_events(evs)), want.items()):
                torch.testing.assert_close(got, value, atol=1e-5, rtol=1e-5, msg=task)


@pytest.mark.slow
def test_onnx_export_wraps_as_the_model(tmp_path):
    """ONNX (top-k kNN, float32 ``atan2``: ONNX Runtime has no float64 ``Atan``) gives the
    eager outputs on events across the seam."""
    for module in ("onnx", "onnxruntime", "onnxscript"):
        pytest.importorskip(module)
    from graphevent.evaluate.export import _export_onnx
    from graphevent.nn import build_model
    from graphevent.nn.tasks import TaskConfig

    torch.manual_seed(0)
    model = build_model({"name": "multitask", **TINY["multitask"], "encoders": ["masked_gt", "edgeconv"]}, periodic_info(),
                        [TaskConfig(**t) for t in TASKS]).eval()
    evs = events(7)
    with torch.no_grad():
        want = model.predict(Batch.from_data_list(evs))
        run = _export_onnx(padded_module(model), pad_events(events()), tmp_path / "m.onnx", {})(tmp_path / "m.onnx")
        for got, (task, value) in zip(run(*pad_events(evs)), want.items()):
            torch.testing.assert_close(torch.as_tensor(got), value, atol=1e-5, rtol=1e-5, msg=task)
