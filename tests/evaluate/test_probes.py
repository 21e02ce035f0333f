"""Embedding probes and jet observables, on inputs whose answers are known."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from graphevent.data.observables import channel_specs, jet_observables, node_weights
from graphevent.evaluate.probes import class_auc, knn_probe, logistic_probe, ridge_r2


def _blobs(n: int, seed: int, gap: float):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n)
    z = rng.normal(size=(n, 5))
    z[:, 0] += gap * (2 * y - 1)
    return z, y


def test_linear_probe_separable_gives_auc_one():
    z, y = _blobs(200, 0, gap=5.0)
    zt, yt = _blobs(100, 1, gap=5.0)
    prob = logistic_probe(z, y, zt, 2, l2=1e-3)
    assert prob.shape == (100, 2) and np.allclose(prob.sum(1), 1.0)
    assert class_auc(prob, yt, 1) == 1.0
    assert class_auc(knn_probe(z, y, zt, 2, k=20), yt, 1) == 1.0


def test_linear_probe_noise_gives_auc_near_half_and_is_deterministic():
    rng = np.random.default_rng(2)
    z, y, zt, yt = rng.normal(size=(400, 8)), rng.integers(0, 2, 400), rng.normal(size=(400, 8)), rng.integers(0, 2, 400)
    a = logistic_probe(z, y, zt, 2)
    assert abs(class_auc(a, yt, 1) - 0.5) < 0.08
    assert np.array_equal(a, logistic_probe(z, y, zt, 2))


def test_knn_probe_counts_neighbour_classes():
    z = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    y = np.array([1, 1, 0, 0])
    prob = knn_probe(z, y, np.array([[1.0, 0.05], [0.05, 1.0]]), 2, k=2)
    # standardised embeddings keep the two directions apart: each query's 2 neighbours share its class
    assert prob[:, 1].tolist() == [1.0, 0.0]


def test_ridge_r2_known_answers():
    rng = np.random.default_rng(3)
    z, zt = rng.normal(size=(300, 6)), rng.normal(size=(200, 6))
    w = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert ridge_r2(z, z @ w + 7, zt, zt @ w + 7, ridge=1e-6) == pytest.approx(1.0, abs=1e-6)
    noise, noise_t = rng.normal(size=300), rng.normal(size=200)
    assert abs(ridge_r2(z, noise, zt, noise_t)) < 0.05
    assert math.isnan(ridge_r2(z, np.full(300, 5.0), zt, np.full(200, 5.0)))


def test_jet_observables_by_hand():
    # event 0: two nodes of weight 1 and 3 at eta = -0.1, +0.1 (phi 0); event 1: one node
    pos = torch.tensor([[-0.1, 0.0], [0.1, 0.0], [0.3, 0.2]])
    w = torch.tensor([1.0, 3.0, 2.0])
    obs = jet_observables(pos, w, torch.tensor([0, 0, 1]), 2)
    assert obs["multiplicity"].tolist() == [2.0, 1.0]
    # axis at eta = 0.05: dR = 0.15 and 0.05 -> girth = (0.15 + 3 * 0.05) / 4
    assert obs["girth"].tolist() == pytest.approx([0.075, 0.0])
    assert obs["ptd"].tolist() == pytest.approx([math.sqrt(10) / 4, 1.0])
    # two massless particles: m^2 = 2 pT1 pT2 (cosh(deta) - cos(dphi))
    assert obs["mass"].tolist() == pytest.approx([math.sqrt(2 * 3 * (math.cosh(0.2) - 1)), 0.0], abs=1e-6)


def test_node_weights_undo_log1p_and_skip_signed():
    specs = [{"transform": "log1p", "scale": 2.0, "signed": False}, {"transform": "none", "scale": 1.0, "signed": False},
             {"transform": "none", "scale": 1.0, "signed": True}]
    x = torch.tensor([[math.log1p(4.0), 1.5, -7.0]])
    assert node_weights(x, specs).tolist() == pytest.approx([2.0 + 1.5])


def test_channel_specs_from_manifest(tiny_dataset):
    from graphevent.data.info import load_manifest

    specs = channel_specs(load_manifest(tiny_dataset))
    assert [(s["name"], s["transform"]) for s in specs] == [("tracks", "log1p"), ("ecal", "log1p"), ("hcal", "log1p")]


def test_probe_command_on_tiny_runs(trained_runs, tiny_dataset, tmp_path):
    from graphevent.cli.app import main

    out = tmp_path / "probes.json"
    code = main(["probe", str(trained_runs["ae"]), str(trained_runs["mt"]), "--data", str(tiny_dataset),
                 "--random-init", "--k", "5", "--out", str(out)])
    assert code == 0
    doc = json.loads(out.read_text())
    rows = doc["rows"]
    assert [(r["run"], r["init"]) for r in rows] == [("ae", "trained"), ("ae", "random"), ("mt", "trained"), ("mt", "random")]
    assert [r["dim"] for r in rows] == [16, 16, 16, 16]
    for r in rows:
        assert 0.0 <= r["linear_auc"] <= 1.0 and 0.0 <= r["knn_auc"] <= 1.0
        assert r["r2_ptd"] is not None and r["r2_ptd"] <= 1.0
    # the same seed gives the same random initialisation: probing twice is identical
    code = main(["probe", str(trained_runs["ae"]), "--data", str(tiny_dataset), "--random-init", "--k", "5", "--out", str(out),
                 "--overwrite"])
    assert code == 0
    assert doc["graphevent_output"] == "probe"
    again = json.loads(out.read_text())["rows"]
    assert again == rows[:2]


def test_probe_command_rejects_bad_fraction(trained_runs, tiny_dataset, capsys):
    from graphevent.cli.app import main

    assert main(["probe", str(trained_runs["ae"]), "--data", str(tiny_dataset), "--label-fraction", "1.5"]) == 2
    assert "--label-fraction 1.5: expected 0 < fraction <= 1" in capsys.readouterr().err


def test_probe_table_fits_80_columns_without_cutting_values():
    """The terminal table at 80 columns: long run names wrap (nothing is cut to '…'), every
    figure is printed whole, the labelled count and embedding size are in the caption."""
    from rich.console import Console

    from graphevent.evaluate.probes import PROBE_COLUMNS, ProbeOptions, ProbeResult

    rows = [{"run": f"runs/study/pretrain_sparse_conv_{i}", "init": init, "dim": 64, "labelled": 279,
             **{c: 0.1 * (j + 1) + 0.001 * i for j, c in enumerate(PROBE_COLUMNS)}}
            for i, init in enumerate(["trained", "random"])]
    console = Console(width=80, record=True, color_system=None)
    console.print(ProbeResult(rows=rows, options=ProbeOptions(label_fraction=0.1)).table())
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80 and "…" not in text
    values = [f"{0.1 * (j + 1) + 0.001 * i:.3f}" for i in range(2) for j in range(len(PROBE_COLUMNS))]
    assert all(v in text for v in values)
    run_cells = "".join(line.split("│")[1].strip() for line in text.splitlines() if line.startswith("│"))
    assert "runs/study/pretrain_sparse_conv_0" in run_cells and "runs/study/pretrain_sparse_conv_1" in run_cells
    assert "279 labelled events; embedding dim 64" in text


def test_probe_test_data_scores_on_another_dataset(trained_runs, tiny_dataset, tmp_path):
    from graphevent.data.dataset import GraphDataset
    from graphevent.data.testing import make_tiny_dataset
    from graphevent.evaluate.probes import ProbeOptions, probe_runs

    other = make_tiny_dataset(tmp_path / "other", n_events=64, seed=5)
    options = ProbeOptions(k=5, max_events=0)
    own = probe_runs([trained_runs["ae"]], tiny_dataset, options).rows[0]
    moved = probe_runs([trained_runs["ae"]], tiny_dataset, options, test_data=other).rows[0]
    assert (own["labelled"], moved["labelled"]) == (own["labelled"], own["labelled"])  # fitted on the same train split
    assert moved["tested"] == len(GraphDataset(other, "test")) != own["tested"]
    assert moved["linear_auc"] != own["linear_auc"]


@pytest.mark.slow
def test_the_probe_study_runs_each_fraction_and_seed_once_and_summarises_them(trained_runs, tiny_dataset, tmp_path, capsys):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("probe_fractions", Path(__file__).resolve().parents[2] / "scripts/probe_fractions.py")
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    argv = [str(trained_runs["ae"]), "--data", str(tiny_dataset), "--work", str(tmp_path), "--fractions", "0.5", "--seeds", "0", "1",
            "--random-init", "--parallel", "2"]
    script.main(argv)
    table = [line for line in capsys.readouterr().out.splitlines() if line.startswith("|")]
    rows = [json.loads((tmp_path / f"probe/f0.5_s{s}.json").read_text())["rows"] for s in (0, 1)]
    assert [[r["init"] for r in seed] for seed in rows] == [["trained", "random"]] * 2
    aucs = [seed[0]["linear_auc"] for seed in rows]
    mean, sd = np.mean(aucs), np.std(aucs, ddof=1)
    assert table[2].startswith(f"| ae | trained | 50.0% | ") and f"{mean:.3f} ± {sd:.3f}" in table[2]
    assert table[3].startswith("| ae | random | 50.0% | ")
    script.main(argv)  # finished probes are skipped
    assert "2 of 2 jobs already done, skipped" in capsys.readouterr().out
