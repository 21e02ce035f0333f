"""Every registered model: shapes, finiteness, gradients, permutation and batching invariance."""

from __future__ import annotations

import pytest
import torch
from torch_geometric.data import Batch

from nn_helpers import SIZES, TINY, build_tiny, make_batch, make_events, make_jet_event, natural_stage, permute_event, tiny_info
from graphevent.nn import list_models
from graphevent.nn.registry import list_encoders
from graphevent.nn.tasks import TaskConfig

MODELS = list(list_models())
TASKS = [
    TaskConfig("label", "classification"),
    TaskConfig("m0", "regression", target="m0"),
    TaskConfig("pt", "regression", target="pt", loss="huber", weight=0.5),
]


def test_tiny_configs_cover_every_registered_model():
    assert sorted(TINY) == MODELS


def _check_grads(model):
    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert missing == []
    bad = [n for n, p in model.named_parameters() if p.requires_grad and not torch.isfinite(p.grad).all()]
    assert bad == []
    zero = [n for n, p in model.named_parameters() if p.requires_grad and p.grad.abs().sum() == 0]
    assert zero == []


@pytest.mark.parametrize("name", MODELS)
def test_every_model_shapes_finite_and_gradients_reach_every_parameter(name):
    model = build_tiny(name, tasks=TASKS if list_models()[name].supports_tasks else None).train()
    batch = make_batch()
    n, b = sum(SIZES), len(SIZES)
    loss, logs = model(batch, natural_stage(model))  # forward(batch, stage) is loss(batch, stage)
    assert loss.dim() == 0 and torch.isfinite(loss)
    assert all(isinstance(v, float) for v in logs.values())
    loss.backward()
    _check_grads(model)

    model.eval()
    tokens, pooled = model.encode(batch)
    assert tokens.shape[0] == n and pooled.shape[0] == b and tokens.shape[1] == pooled.shape[1]
    assert torch.isfinite(tokens).all() and torch.isfinite(pooled).all()
    pred = model.predict(batch)
    if model.supports_tasks:
        assert pred["label"].shape == (b, 2)
        assert torch.allclose(pred["label"].sum(1), torch.ones(b), atol=1e-6)
        assert pred["m0"].shape == (b,) and pred["pt"].shape == (b,)
    elif hasattr(model, "recon_loss"):
        assert pred["recon_error"].shape == (b, 3) and (pred["recon_error"] >= 0).all()
    else:  # contrastive, masked_gt_latent, masked_gt_occupancy: the pooled embedding of the unmasked, unaugmented events
        assert torch.equal(pred["embedding"], pooled)
    assert all(torch.isfinite(v).all() for v in pred.values())
    explain = model.explain(batch)
    assert explain["pooled"].shape == pooled.shape


@pytest.mark.parametrize("name", MODELS)
def test_every_model_trains_under_bf16_autocast(name):
    model = build_tiny(name).train()
    batch = make_batch()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss, _ = model.loss(batch, natural_stage(model))
    assert loss.dtype == torch.float32 and torch.isfinite(loss)
    loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


_ENCODERS = list(list_encoders())
#: every registered encoder alone, the first two together, all of them in reverse order
ENCODER_LISTS = [[n] for n in _ENCODERS] + [_ENCODERS[:2], _ENCODERS[::-1]]


@pytest.mark.parametrize("encoders", ENCODER_LISTS, ids="+".join)
@pytest.mark.parametrize("fusion", ["cross_attention", "concat", "none"])
def test_multitask_ablations_get_gradients_everywhere(encoders, fusion):
    model = build_tiny("multitask", tasks=TASKS, encoders=encoders, fusion=fusion).train()
    assert list(model.encoder_modules()) == encoders
    loss, logs = model.loss(make_batch(), "finetune")
    assert set(logs) == {"loss", "loss_label", "loss_m0", "loss_pt"}
    assert logs["loss"] == pytest.approx(logs["loss_label"] + logs["loss_m0"] + 0.5 * logs["loss_pt"], rel=1e-5)
    loss.backward()
    _check_grads(model)


def test_multitask_aux_reconstruction_adds_the_encoders_losses():
    model = build_tiny("multitask", tasks=TASKS[:1], aux_recon_weight=0.5).train()
    assert [type(bb).__name__ for bb in model.backbones.values()] == ["MaskedGTAutoencoder", "EdgeConvAutoencoder"]
    torch.manual_seed(3)
    loss, logs = model.loss(make_batch(), "finetune")
    assert logs["loss"] == pytest.approx(logs["loss_label"] + 0.5 * (logs["recon_masked_gt"] + logs["recon_edgeconv"]), rel=1e-5)
    loss.backward()
    _check_grads(model)
    # without it, no decoder exists (no unused parameters under DDP)
    assert not hasattr(build_tiny("multitask").backbones["edgeconv"], "decoder")


def _pooled_and_outputs(model, batch):
    with torch.no_grad():
        _, pooled = model.encode(batch)
        if model.supports_tasks:
            if model.name == "multitask":
                raw = model.forward_heads(model.forward_features(batch), batch)
            else:
                raw = model.forward_heads(pooled)
            return pooled, raw
    return pooled, {}


@pytest.mark.parametrize("name", MODELS)
def test_permuting_nodes_leaves_pooled_outputs_unchanged(name):
    model = build_tiny(name, tasks=TASKS if list_models()[name].supports_tasks else None).eval()
    events = make_events()
    g = torch.Generator().manual_seed(7)
    permuted = [permute_event(e, torch.randperm(e.num_nodes, generator=g)) for e in events]
    pooled, raw = _pooled_and_outputs(model, Batch.from_data_list(events))
    pooled_p, raw_p = _pooled_and_outputs(model, Batch.from_data_list(permuted))
    assert not torch.equal(Batch.from_data_list(events).x, Batch.from_data_list(permuted).x)
    assert torch.allclose(pooled, pooled_p, atol=1e-5)
    for task in raw:
        assert torch.allclose(raw[task], raw_p[task], atol=1e-5)


@pytest.mark.parametrize("name", MODELS)
def test_a_batch_gives_the_same_outputs_as_each_event_alone(name):
    model = build_tiny(name, tasks=TASKS if list_models()[name].supports_tasks else None).eval()
    events = make_events()
    batch = Batch.from_data_list(events)
    pooled, raw = _pooled_and_outputs(model, batch)
    pred = model.predict(batch)
    for i, event in enumerate(events):
        single = Batch.from_data_list([event])
        p1, r1 = _pooled_and_outputs(model, single)
        assert torch.allclose(pooled[i], p1[0], atol=1e-5)
        for task in raw:
            assert torch.allclose(raw[task][i], r1[task][0], atol=1e-5)
        pred1 = model.predict(single)
        for key, value in pred.items():  # also the masked AE's recon_error: eval masks are per event
            assert torch.allclose(value[i], pred1[key][0], rtol=1e-5, atol=1e-5)


JET_SIZES = (180, 20, 260, 60, 120, 230)  # occupied pixels of jet images: mostly 100-300
JET_CASES = [
    ("edgeconv_ae", {}),
    ("masked_gt_ae", {}),
    ("particlenet", {}),
    ("multitask", {"encoders": ["masked_gt", "edgeconv"], "fusion": "cross_attention"}),
    ("multitask", {"encoders": ["masked_gt"], "fusion": "concat"}),
    ("multitask", {"encoders": ["edgeconv"], "fusion": "none"}),
]
# A pixel lattice is full of neighbours at equal distance. graphevent.nn.layers.knn.knn_graph takes
# them in node order (stable sort on padding-independent distances), so a kNN graph that a
# model builds itself (masked_gt_ae's visible graph, or a model k other than the dataset's)
# is the same in a batch as alone; "rebuilt_graph" checks exactly that.


def _other_k(overrides: dict, k: int) -> dict:
    """Model settings with every ``k`` set to ``k`` (nested encoders of multitask too)."""
    if "k" in overrides:
        return {**overrides, "k": k}
    return {key: _other_k(v, k) if isinstance(v, dict) else v for key, v in overrides.items()}


def _to_float64(event):
    out = event.clone()
    for key in ("x", "pos", "edge_attr", "targets"):
        out[key] = out[key].double()
    return out


def _all_outputs(model, batch) -> dict[str, torch.Tensor]:
    pooled, raw = _pooled_and_outputs(model, batch)
    pred = model.predict(batch)
    return {"pooled": pooled, **{f"raw {k}": v for k, v in raw.items()}, **{f"predict {k}": v for k, v in pred.items()}}


@pytest.mark.parametrize(
    "rebuild_graph",
    [False, True],
    ids=["dataset_graph", "rebuilt_graph"],
)
@pytest.mark.parametrize("name, kw", JET_CASES, ids=[" ".join([n, *map(str, kw.values())]) for n, kw in JET_CASES])
def test_float64_jet_size_batch_gives_each_events_outputs_alone(name, kw, rebuild_graph):
    """Float32 batched-vs-alone differences (up to ~5e-7 on pooled embeddings with default
    settings at this size) are rounding only if they vanish in float64; a leak would not."""
    overrides = {**TINY[name], **kw}
    if rebuild_graph:  # model k differs from the dataset's graph: the models find their own neighbours
        overrides = _other_k(overrides, 12)
    tasks = TASKS if list_models()[name].supports_tasks else None
    from graphevent.nn import build_model

    torch.manual_seed(0)
    model = build_model({"name": name, **overrides}, tiny_info(), tasks).double().eval()
    events = [_to_float64(make_jet_event(n, seed=i, event_id=200 + i)) for i, n in enumerate(JET_SIZES)]
    batched = _all_outputs(model, Batch.from_data_list(events))
    for i, event in enumerate(events):
        alone = _all_outputs(model, Batch.from_data_list([event]))
        for key, value in batched.items():
            tol = 1e-9 if value.dtype == torch.float64 else 1e-6  # some predict() outputs are float32 by design
            diff = (value[i] - alone[key][0]).abs().max().item()
            assert diff <= tol * (1 + alone[key][0].abs().max().item()), (
                f"{key} of event {i} ({event.num_nodes} nodes): batched and alone differ by {diff:.2e}"
            )


def test_a_single_data_object_works_without_batching():
    model = build_tiny("particlenet").eval()
    event = make_events()[0]
    assert torch.allclose(model.predict(event)["label"], model.predict(Batch.from_data_list([event]))["label"])


def test_explain_gives_per_node_attention_per_task():
    model = build_tiny("multitask", tasks=TASKS).eval()
    batch = make_batch()
    out = model.explain(batch)
    assert set(out["attention"]) == {"label", "m0", "pt"}
    for att in out["attention"].values():
        assert att.shape == (sum(SIZES), 2)  # (N, heads)
        assert (att >= 0).all()
        # per event and head, node weights sum to at most 1 (the pooled token takes the rest)
        sums = torch.zeros(len(SIZES), 2).index_add_(0, batch.batch, att)
        assert (sums <= 1 + 1e-5).all() and (sums > 0).all()
    assert torch.allclose(out["outputs"]["label"], model.predict(batch)["label"])


def test_model_config_rebuilds_the_same_architecture():
    from graphevent.nn import build_model

    model = build_tiny("multitask", tasks=TASKS, fusion="concat")
    again = build_model(model.model_config, tiny_info(), TASKS)
    assert {k: v.shape for k, v in again.state_dict().items()} == {k: v.shape for k, v in model.state_dict().items()}
    assert model.model_config["fusion"] == "concat" and model.model_config["masked_gt"]["dim"] == 16


def test_multitask_loads_weights_saved_with_one_module_per_task_pool():
    """Checkpoints from before the pools were stacked (``pools.<task>.<encoder>.*``) load
    into the stacked pools and give the same outputs."""
    model = build_tiny("multitask", tasks=TASKS).eval()
    old = {k: v for k, v in model.state_dict().items() if not k.startswith("pools.")}
    for t, task in enumerate(model.tasks):
        for e, enc in enumerate(model.backbones):
            for k, v in model.pools.pool(t, e).state_dict().items():
                old[f"pools.{task.name}.{enc}.{k}"] = v
    assert "pools.label.masked_gt.attn.kv.weight" in old and "pools.queries" not in old
    fresh = build_tiny("multitask", tasks=TASKS).eval()
    torch.manual_seed(1)
    fresh.pools.reset_parameters()  # differs from model's before the load
    fresh.load_state_dict(old, strict=True)
    batch = make_batch()
    for key, value in model.predict(batch).items():
        torch.testing.assert_close(fresh.predict(batch)[key], value, rtol=0, atol=1e-6)
