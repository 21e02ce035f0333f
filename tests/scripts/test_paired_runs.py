"""scripts/paired_runs.py: two runs paired by seed from graphevent eval outputs in several directories."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from graphevent.errors import OutputError
from graphevent.evaluate.predictions import write_predictions
from graphevent.studies.stats import metric_rows

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("paired_runs", ROOT / "scripts" / "paired_runs.py")
paired = importlib.util.module_from_spec(spec)
spec.loader.exec_module(paired)

T975_2DOF = 4.302652729911275  # Student t, 97.5% quantile, 2 degrees of freedom


def scored(out: Path, runs: dict[str, dict]) -> None:
    """An evaluation directory holding ``runs`` ({name: label metrics}), as graphevent eval writes its metrics.json."""
    out.mkdir(parents=True)
    (out / "metrics.json").write_text(json.dumps({"runs": {name: {"label": label} for name, label in runs.items()}}))


def study(tmp_path) -> list[str]:
    """Three seeds: the reference (and another run) in the study's directories, the model scored on its own."""
    for s, (ref, new) in enumerate([(0.80, 0.82), (0.70, 0.69), (0.90, 0.95)]):
        scored(tmp_path / f"eval/f0.01_s{s}", {"particlenet": {"auc": ref, "rejection_at_0.5": 5.0 + s}, "other": {"auc": 0.5, "rejection_at_0.5": 1.0}})
        scored(tmp_path / f"single/f0.01_s{s}_new", {"new": {"auc": new, "rejection_at_0.5": 6.0}})
    return [str(tmp_path / "eval/f0.01_s{seed}"), str(tmp_path / "single/f0.01_s{seed}_new")]


def test_pairs_by_seed_across_directories_by_hand(tmp_path):
    res = paired.pair("new", "particlenet", [0, 1, 2], study(tmp_path))
    auc = res["auc"]
    assert auc["model"] == [0.82, 0.69, 0.95] and auc["reference"] == [0.80, 0.70, 0.90]
    assert auc["diffs"] == pytest.approx([0.02, -0.01, 0.05]) and auc["wins"] == 2 and auc["n"] == 3
    half = T975_2DOF * np.std([0.02, -0.01, 0.05], ddof=1) / np.sqrt(3)
    assert auc["mean"] == pytest.approx(0.02) and auc["ci"] == pytest.approx((0.02 - half, 0.02 + half))
    assert res["rejection_at_0.5"]["diffs"] == pytest.approx([1.0, 0.0, -1.0]) and res["rejection_at_0.5"]["wins"] == 1
    assert np.isnan(auc["boot_ci"][0])
    text = paired.lines(res, "new", "particlenet", [0, 1, 2])
    assert text[2] == "| 0 | 0.8200 | 0.8000 | +0.0200 | 6.00 | 5.00 | +1.00 |"
    assert text[-2] == f"auc: new - particlenet = +0.0200 [{0.02 - half:+.4f}, {0.02 + half:+.4f}] (t over 3 seeds), 2/3 seeds won"


def test_the_bootstrap_resamples_the_same_test_events_for_both_runs(tmp_path):
    patterns = study(tmp_path)
    rng = np.random.default_rng(0)
    truth = np.arange(200) % 2
    for s in range(3):
        for out, run in ((tmp_path / f"eval/f0.01_s{s}", "particlenet"), (tmp_path / f"single/f0.01_s{s}_new", "new")):
            score = np.clip(truth * (0.3 if run == "new" else 0.1) + rng.uniform(0, 0.7, 200), 0, 1)
            write_predictions(out / f"predictions-{run}", {"event_id": np.arange(200)[::-1].copy(), "label": truth[::-1].copy(),
                                                           "score_gluon": score[::-1].copy()}, {"run": run, "classes": ["quark", "gluon"]})
    res = paired.pair("new", "particlenet", [0, 1, 2], patterns, ("auc",), resamples=50)
    low, high = res["auc"]["boot_ci"]
    assert 0.0 < low < high < 1.0  # the model's scores separate the classes more on every seed: its AUC is higher on every resample
    from graphevent.studies.report import signal_scores

    ids, sig, score = signal_scores(tmp_path / "single/f0.01_s0_new/predictions-new.parquet")
    assert ids.tolist() == list(range(200)) and metric_rows(score, sig, None, "auc")[0] > 0.6  # sorted by event id
    write_predictions(tmp_path / "single/f0.01_s1_new/predictions-new", {"event_id": np.arange(1, 201), "label": truth, "score_gluon": score},
                      {"run": "new", "classes": ["quark", "gluon"]})
    with pytest.raises(OutputError, match=r"single/f0.01_s1_new: run 'new', seed 1 was scored on other test events than run 'new', seed 0$"):
        paired.pair("new", "particlenet", [0, 1, 2], patterns, ("auc",), resamples=5)


def test_a_run_scored_nowhere_is_named_with_every_place_looked(tmp_path):
    patterns = study(tmp_path)
    (tmp_path / "single/f0.01_s2_new/metrics.json").unlink()
    with pytest.raises(OutputError, match=r"^run 'new', seed 2: scored in none of .*/eval/f0.01_s2/metrics.json, .*/single/f0.01_s2_new/metrics.json; "
                                          r"expected a `graphevent eval` output that holds it$"):
        paired.pair("new", "particlenet", [0, 1, 2], patterns)


def test_the_command_exits_2_with_one_line_and_refuses_a_pattern_without_seed(tmp_path):
    patterns = study(tmp_path)
    cmd = [sys.executable, str(ROOT / "scripts" / "paired_runs.py"), "new", "particlenet", "--seeds", "3"]
    ok = subprocess.run([*cmd, "--eval", *patterns], capture_output=True, text=True)
    assert ok.returncode == 0 and "auc: new - particlenet = +0.0200" in ok.stdout
    bad = subprocess.run([*cmd, "--eval", *patterns, "--metrics", "auc", "f1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0
    assert bad.stderr.strip().endswith("run 'new' has no 'f1'; expected one of: auc, rejection_at_0.5")
    fixed = subprocess.run([*cmd, "--eval", str(tmp_path / "eval/f0.01_s0")], capture_output=True, text=True)
    assert fixed.returncode == 2 and "expected a pattern with {seed}" in fixed.stderr


def test_first_seed_pairs_a_later_block_of_seeds(tmp_path):
    for s, (ref, new) in zip(range(5, 8), [(0.80, 0.83), (0.70, 0.74), (0.90, 0.92)]):
        scored(tmp_path / f"eval/f0.01_s{s}", {"particlenet": {"auc": ref, "rejection_at_0.5": 5.0}})
        scored(tmp_path / f"single/f0.01_s{s}_new", {"new": {"auc": new, "rejection_at_0.5": 6.0}})
    patterns = [str(tmp_path / "eval/f0.01_s{seed}"), str(tmp_path / "single/f0.01_s{seed}_new")]
    cmd = [sys.executable, str(ROOT / "scripts" / "paired_runs.py"), "new", "particlenet", "--eval", *patterns]
    ok = subprocess.run([*cmd, "--seeds", "3", "--first-seed", "5"], capture_output=True, text=True)
    half = T975_2DOF * np.std([0.03, 0.04, 0.02], ddof=1) / np.sqrt(3)
    assert ok.returncode == 0, ok.stderr
    assert "| 5 | 0.8300 | 0.8000 | +0.0300 |" in ok.stdout and "| 7 | 0.9200 | 0.9000 | +0.0200 |" in ok.stdout
    assert f"auc: new - particlenet = +0.0300 [{0.03 - half:+.4f}, {0.03 + half:+.4f}] (t over 3 seeds), 3/3 seeds won" in ok.stdout
    missing = subprocess.run([*cmd, "--seeds", "3"], capture_output=True, text=True)  # seeds 0-2 were never scored
    assert missing.returncode == 2 and "seed 0" in missing.stderr
    bad = subprocess.run([*cmd, "--first-seed", "-1"], capture_output=True, text=True)
    assert bad.returncode == 2 and "--first-seed -1: expected 0 or more" in bad.stderr
