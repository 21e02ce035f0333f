"""A small model with the GraphModel evaluation interface, and synthetic events, for unit tests."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch
from torch import nn
from torch_geometric.data import Data
from torch_geometric.utils import scatter, softmax


class ToyEvalModel(nn.Module):
    """Mean-pooled node features -> class probabilities, a regression and a reconstruction error.

    ``predict`` is decorated with ``no_grad`` like the real models; explain() returns a
    softmax over each event's nodes of a learned node score as "attention".
    """

    supports_pretrain = True
    supports_tasks = True

    def __init__(self, num_features: int = 3, num_classes: int = 2) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.node = nn.Linear(num_features, 8)
        self.cls = nn.Linear(8, num_classes)
        self.reg = nn.Linear(8, 1)
        self.dec = nn.Linear(8, num_features)
        self.att = nn.Linear(8, 1)

    def encode(self, batch):
        h = torch.tanh(self.node(batch.x))
        return h, scatter(h, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")

    @torch.no_grad()
    def predict(self, batch):
        _, pooled = self.encode(batch)
        mean_x = scatter(batch.x, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")
        return {
            "label": self.cls(pooled).softmax(-1),
            "m0": 50.0 + 10.0 * self.reg(pooled).squeeze(-1),
            "recon_error": (self.dec(pooled) - mean_x) ** 2,
        }

    def loss(self, batch, stage):
        _, pooled = self.encode(batch)
        mean_x = scatter(batch.x, batch.batch, 0, dim_size=batch.num_graphs, reduce="mean")
        loss = ((self.dec(pooled) - mean_x) ** 2).mean()
        return loss, {"loss": float(loss.detach())}

    @torch.no_grad()
    def explain(self, batch):
        h, pooled = self.encode(batch)
        w = softmax(self.att(h).squeeze(-1), batch.batch)
        return {"attention": {"label": w[:, None]}, "pooled": pooled}


def toy_events(n: int = 40, seed: int = 0, num_features: int = 3) -> list[Data]:
    """Events with 4..15 nodes; class 1 has larger feature values; target ~ 50 + class shift."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(n):
        m = int(torch.randint(4, 16, (1,), generator=g))
        y = i % 2
        x = torch.rand(m, num_features, generator=g) + 0.5 * y
        pos = 0.2 * (torch.rand(m, 2, generator=g) - 0.5)
        out.append(Data(x=x, pos=pos, y=torch.tensor([y]),
                        targets=torch.tensor([[45.0 + 10 * y + float(torch.rand(1, generator=g)), 100.0]]),
                        event_id=torch.tensor([7 * i + 3])))
    return out


#: the ``model:`` line of a tiny run of every exportable model (the export tests train them;
#: a model added to the export registry without one fails there)
TINY_EXPORTABLE = {
    "particlenet": "model: {name: particlenet, k: 8, channels: [[16, 16], [16]], fc_dim: 16}",
    "multitask": "model: {name: multitask, encoders: [masked_gt, edgeconv], dim: 16, heads: 2, head_hidden: 16, "
                 "masked_gt: {dim: 16, depth: 2, heads: 2, edge_dim: 8, k: 8, global_every: 2}, "
                 "edgeconv: {k: 8, channels: [[16, 16], [16]], dim: 16}}",
    "resnet15": "model: {name: resnet15, fmaps: [4, 8], nblocks: 1}",
}


def export_tasks(batch_size: int = 16) -> str:
    """The ``tasks:`` and ``train:`` of the export tests' runs: a score and a value in GeV, one epoch."""
    return ("tasks:\n  - {name: label, type: classification}\n  - {name: m0, type: regression, target: m0}\n"
            f"train: {{epochs: 1, batch_size: {batch_size}}}\n")


ONNX_MISSING = [m for m in ("onnx", "onnxruntime", "onnxscript") if importlib.util.find_spec(m) is None]
#: skips a test without the ONNX packages
NEEDS_ONNX = pytest.mark.skipif(bool(ONNX_MISSING), reason=f"ONNX export needs {', '.join(ONNX_MISSING)} "
                                                           "(pip install 'graphevent[export]')")
#: the ``onnx`` case of a test parametrised by format
ONNX = pytest.param("onnx", marks=[pytest.mark.slow, NEEDS_ONNX])


def train_exportable(root: Path, data: Path, raw: Path, models: dict[str, str]) -> dict[str, tuple[Path, dict]]:
    """``{model: (run directory, predict's columns on raw)}``: each of ``models`` (name ->
    ``model:`` line) trained one epoch on the dataset ``data`` (one thread, seed 0), then
    ``graphevent predict`` on the raw file ``raw``."""
    from graphevent.cli.app import main
    from graphevent.evaluate.predictions import read_predictions
    from graphevent.train.run import TrainOptions, train

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    runs = {}
    try:
        for name, model in models.items():
            (root / f"{name}.yaml").write_text(f"stage: supervised\nname: {name}\n{model}\n{export_tasks()}")
            torch.manual_seed(0)
            train(TrainOptions(data=data, out=root / name, config=root / f"{name}.yaml", gpus=0, progress=False))
            out = root / f"{name}.parquet"
            assert main(["predict", str(root / name), "-i", str(raw), "-o", str(out), "--device", "cpu"]) == 0
            runs[name] = (root / name, read_predictions(out))
    finally:
        torch.set_num_threads(before)
    return runs


def exported(run_dir: Path, fmt: str, out: Path, input_names: list[str]):
    """Export with the CLI's defaults; a function of the raw inputs (numpy, in ``input_names``'
    order) -> the outputs (numpy), through ONNX Runtime or ``torch.jit.load``."""
    from graphevent.cli.app import main

    assert main(["export", str(run_dir), "--format", fmt, "--out", str(out)]) == 0
    if fmt == "onnx":
        import onnxruntime as ort

        session = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
        return lambda *x: session.run(None, dict(zip(input_names, x)))
    loaded = torch.jit.load(str(out))
    return lambda *x: [t.detach().numpy() for t in loaded(*(torch.from_numpy(a) for a in x))]


def exported_onnx(run_dir: Path, out: Path) -> tuple:
    """Export ``run_dir`` to ONNX with the CLI's defaults: the file's ``ModelProto`` and its metadata."""
    import onnx

    from graphevent.cli.app import main

    assert main(["export", str(run_dir), "--format", "onnx", "--out", str(out)]) == 0
    proto = onnx.load(str(out))
    return proto, {p.key: p.value for p in proto.metadata_props}


def check_equals_predict(outputs: list, cols: dict, empty: list[int]) -> None:
    """Exported ``(score_label, pred_m0, bad_input)`` of every event of a file vs predict's
    columns on it: within 1e-5, NaN on the events without nodes (``empty``), no event flagged."""
    import numpy as np

    score, m0, bad = outputs
    n = len(cols["score_quark"])
    assert score.shape == (n, 2) and m0.shape == (n,) and bad.tolist() == [0] * n
    nan = np.isnan(cols["score_quark"])
    assert nan.tolist() == [i in empty for i in range(n)]
    assert np.array_equal(np.isnan(score[:, 0]), nan) and np.array_equal(np.isnan(m0), nan)
    assert np.abs(score[~nan, 0] - cols["score_quark"][~nan]).max() <= 1e-5
    assert np.abs(score[~nan, 1] - cols["score_gluon"][~nan]).max() <= 1e-5
    np.testing.assert_allclose(m0[~nan], cols["pred_m0"][~nan], rtol=1e-5, atol=1e-5)


def check_nan_is_flagged(run, inputs: tuple, at: tuple) -> None:
    """``run`` (an exported raw-input model, numpy in and out) with a NaN at ``inputs[0][at]``:
    ``bad_input`` (its last output) is 1 on that event only and 0 with a 0 there, and the other
    outputs are those of the 0, bit for bit."""
    import numpy as np

    bad, zeroed = inputs[0].copy(), inputs[0].copy()
    bad[at], zeroed[at] = np.nan, 0.0
    got, want = run(bad, *inputs[1:]), run(zeroed, *inputs[1:])
    assert got[-1].tolist() == [int(i == at[0]) for i in range(len(bad))] and want[-1].tolist() == [0] * len(bad)
    for a, b in zip(got[:-1], want[:-1]):
        np.testing.assert_array_equal(a, b)
