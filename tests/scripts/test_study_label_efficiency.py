"""scripts/study_label_efficiency.py: planning, statistics, tables and the results page (no training)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("study_label_efficiency", ROOT / "scripts" / "study_label_efficiency.py")
study = importlib.util.module_from_spec(spec)
sys.modules["study_label_efficiency"] = study
spec.loader.exec_module(study)


def opt(cmd: list, name: str) -> list[str]:
    """Every value of option ``name`` in a command."""
    cmd = [str(c) for c in cmd]
    return [cmd[i + 1] for i, c in enumerate(cmd) if c == name]


def test_cpu_plan_runs_every_model_fraction_and_seed(tmp_path):
    args, size = study.parse_args(["--size", "cpu", "--workdir", str(tmp_path), "--cache", str(tmp_path / "cache")])
    parts = study.plan(args, size)
    assert [len(parts[p]) for p in study.PARTS] == [3, 2, 7 * 5 * 3, 5 * 3]
    labelled, unlabelled = tmp_path / "data_labelled", tmp_path / "data_unlabelled"
    sim = next(j.cmd for j in parts["data"] if j.key.startswith("simulate"))
    assert opt(sim, "--seed") == ["2"] and opt(sim, "--events") == ["3000"]
    pre_lab, pre_unl = (j.cmd for j in parts["data"] if j.key.startswith("preprocess"))
    assert str(study.ROOT / "graphevent/sample/qg_sample.h5") in map(str, pre_lab)  # labelled pool: shipped sample, seed 1
    assert str(tmp_path / "cache/qg_3000_seed2.h5") in map(str, pre_unl)
    for job in parts["pretrain"]:
        assert opt(job.cmd, "--data") == [str(unlabelled)] and "--label-fraction" not in map(str, job.cmd)
    seen = set()
    for job in parts["finetune"]:
        cmd = job.cmd
        assert opt(cmd, "--data") == [str(labelled)]
        seed = opt(cmd, "--label-seed")[0]
        assert f"seed={seed}" in opt(cmd, "--set")  # subset and initialisation vary together, paired across models
        model = next(m for m in study.MODELS if job.out.name == m.tag)
        assert opt(cmd, "--init-from") == [str(tmp_path / "pretrain" / k) for k in model.init]
        assert job.deps == [f"pretrain {k}" for k in model.init]
        seen.add((model.name, float(opt(cmd, "--label-fraction")[0]), int(seed)))
    assert len(seen) == 105 and {s for _, _, s in seen} == {0, 1, 2}
    assert {f for _, f, _ in seen} == {0.005, 0.01, 0.05, 0.1, 1.0}
    for job in parts["report"]:
        runs = [str(c) for c in job.cmd if str(c).startswith(str(tmp_path / "finetune"))]
        assert len(runs) == 7 and runs[0].endswith("/particlenet") and len({Path(r).parent for r in runs}) == 1
        assert opt(job.cmd, "--data") == [str(labelled)] and opt(job.cmd, "--split") == ["test"]


@pytest.mark.parametrize("size", ["smoke", "cpu", "full"])
def test_every_config_file_a_plan_names_exists(tmp_path, size):
    args, sz = study.parse_args(["--size", size, "--workdir", str(tmp_path), "--cache", str(tmp_path)])
    configs = [opt(j.cmd, "-c")[0] for part in study.plan(args, sz).values() for j in part if "-c" in map(str, j.cmd)]
    assert len(configs) > 3 and all(Path(c).is_file() for c in configs), [c for c in configs if not Path(c).is_file()]


def test_small_encoders_are_the_same_in_pretraining_and_fine_tuning(tmp_path):
    """--encoders small shrinks the encoders identically in pretraining and fine-tuning (so
    --init-from finds every weight); ParticleNet keeps its shipped size; the default is shipped."""
    args, size = study.parse_args(["--size", "cpu", "--encoders", "small", "--workdir", str(tmp_path), "--cache", str(tmp_path / "cache")])
    parts = study.plan(args, size)
    assert opt(parts["data"][-1].cmd, "--set")[0] == "graph.max_nodes=48"
    pre = {j.key: opt(j.cmd, "--set") for j in parts["pretrain"]}
    assert pre["pretrain masked_gt"] == ["model.dim=32", "model.depth=2", "model.k=8"]
    assert pre["pretrain edgeconv"] == ["model.k=8", "model.channels=[[16,16],[32,32]]", "model.dim=32"]
    for job in parts["finetune"]:
        sets = opt(job.cmd, "--set")
        assert opt(job.cmd, "--epochs") == ["20"] and "train.min_steps_per_epoch=5" in sets
        if job.out.name == "particlenet":
            assert not any(s.startswith(("model.masked_gt.", "model.edgeconv.")) for s in sets)
        else:  # the fine-tuning encoders are the pretrained ones: dim 32, depth 2, k 8; edgeconv k 8, dim 32
            assert {"model.masked_gt.dim=32", "model.masked_gt.depth=2", "model.masked_gt.k=8", "model.edgeconv.k=8",
                    "model.edgeconv.channels=[[16,16],[32,32]]", "model.edgeconv.dim=32"} <= set(sets)
    args, size = study.parse_args(["--size", "cpu", "--workdir", str(tmp_path)])
    parts = study.plan(args, size)
    assert all(not any(s.startswith("model.") for s in opt(j.cmd, "--set")) for j in parts["pretrain"])


def test_full_plan_simulates_both_pools_from_different_seeds(tmp_path):
    args, size = study.parse_args(["--size", "full", "--workdir", str(tmp_path), "--cache", str(tmp_path), "--sim-procs", "3",
                                   "--fractions", "0.01", "1", "--seeds", "4", "--models", "masked_gt_pretrained"])
    parts = study.plan(args, size)
    sims = [j.cmd for j in parts["data"] if j.key.startswith("simulate")]
    seeds = [int(opt(c, "--seed")[0]) for c in sims]
    assert seeds == [1, 1001, 2001, 2, 1002, 2002] and len(set(seeds)) == 6
    assert sum(int(opt(c, "--events")[0]) for c in sims[:3]) == 60000 and sum(int(opt(c, "--events")[0]) for c in sims[3:]) == 100000
    assert [j.key for j in parts["pretrain"]] == ["pretrain masked_gt"]  # only what the chosen models need
    assert len(parts["finetune"]) == 2 * 4 * 2  # the baseline always runs, for the paired differences


def test_bad_options():
    with pytest.raises(SystemExit):
        study.parse_args(["--size", "full", "--labelled-seed", "5", "--unlabelled-seed", "5"])
    with pytest.raises(SystemExit, match="unknown"):
        study.selected_models(["resnet"])


def test_dry_run_prints_the_commands():
    r = subprocess.run([sys.executable, str(ROOT / "scripts/study_label_efficiency.py"), "--size", "smoke", "--dry-run",
                        "--part", "pretrain", "--part", "report"], capture_output=True, text=True, timeout=120)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2 + 4
    assert lines[0].startswith("[pretrain] graphevent train -c graphevent/configs/experiments/edgeconv_ae_pretrain.yaml --data runs/label_efficiency_smoke/data_unlabelled")
    assert all(l.startswith("[report] graphevent eval ") for l in lines[2:])


def hand_results():
    """Three models, one fraction, two seeds, 8 test events whose AUCs are known by hand."""
    sig = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    good = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.5, 0.6, 0.9])  # AUC 13/16; eps_B = 1/4 at eps_S = 1/2
    fair = np.array([0.1, 0.2, 0.3, 0.95, 0.4, 0.5, 0.6, 0.9])  # AUC 12/16; eps_B = 1/4 at eps_S = 1/2
    models = [study.Model("particlenet", "p.yaml"), study.Model("enc scratch", "m.yaml", ("a=1",)),
              study.Model("enc pretrained", "m.yaml", ("a=1",), ("enc",))]
    scores = {("particlenet", 1.0, 0): fair, ("particlenet", 1.0, 1): fair,
              ("enc scratch", 1.0, 0): fair, ("enc scratch", 1.0, 1): good,
              ("enc pretrained", 1.0, 0): good, ("enc pretrained", 1.0, 1): good}
    from graphevent.metrics.seeds import metric_rows

    runs = {k: {m: float(metric_rows(s, sig, None, m)[0]) for m in study.METRICS} for k, s in scores.items()}
    res = {"runs": runs, "scores": scores, "truth": sig, "train_events": {k: 100 for k in scores}}
    return res, models


def test_summary_and_tables_by_hand():
    res, models = hand_results()
    assert res["runs"][("particlenet", 1.0, 0)] == {"auc": 0.75, "rejection_at_0.5": 4.0}
    assert res["runs"][("enc scratch", 1.0, 1)] == {"auc": 0.8125, "rejection_at_0.5": 4.0}
    summary = study.summarise(res, models, [1.0], [0, 1], resamples=50)
    row = summary["rows"][("enc scratch", 1.0)]["auc"]
    assert (row["mean"], row["min"], row["max"]) == (0.78125, 0.75, 0.8125) and row["std"] == pytest.approx(0.0625 / np.sqrt(2))
    d = summary["vs_base"][("enc pretrained", 1.0)]["auc"]
    assert d["diffs"] == [0.0625, 0.0625] and d["mean"] == 0.0625 and d["ci"] == (0.0625, 0.0625)  # no spread: zero width
    assert summary["vs_scratch"][("enc pretrained", 1.0)]["auc"]["diffs"] == [0.0625, 0.0]
    lines = study.tables(summary, models, [1.0])
    assert lines[2] == "| particlenet | 100.0% | 100 | 0.750 ± 0.000 [0.750, 0.750] | 4.0 ± 0.0 [4.0, 4.0] | — | — |"
    # diffs 0 and 0.0625: mean 0.03125 +- t(0.975, 1 dof) 12.706 * std 0.0442 / sqrt(2) = 0.397
    assert lines[3].startswith("| enc scratch | 100.0% | 100 | 0.781 ± 0.044 [0.750, 0.812] | 4.0 ± 0.0 [4.0, 4.0] | +0.031 [-0.366, +0.428] (")
    assert lines[-1].startswith("| enc pretrained - enc scratch | 100.0% | +0.031 [-0.366, +0.428] (")
    lo, hi = summary["vs_base"][("enc scratch", 1.0)]["auc"]["boot_ci"]
    assert lo <= 0.03125 <= hi
    assert study.scratch_pairs(study.MODELS) == [("edgeconv pretrained", "edgeconv scratch"),
                                                  ("masked_gt pretrained", "masked_gt scratch"),
                                                  ("multitask pretrained", "multitask scratch")]


def test_figure_and_leading_section(tmp_path):
    res, models = hand_results()
    res["runs"].update({(k[0], 0.1, k[2]): v for k, v in res["runs"].items()})
    summary = study.summarise(res | {"scores": {**res["scores"], **{(k[0], 0.1, k[2]): v for k, v in res["scores"].items()}},
                                     "train_events": {**res["train_events"], **{(k[0], 0.1, k[2]): 10 for k in res["train_events"]}}},
                              models, [0.1, 1.0], [0, 1], resamples=0)
    png = study.figure(summary, models, [0.1, 1.0], tmp_path / "fig.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = tmp_path / "results.md"
    page.write_text("# older study\n\ntable\n")
    study.lead_results(page, "# label efficiency\nfirst\n")
    study.lead_results(page, "# label efficiency\nsecond\n")  # replaced, not stacked
    text = page.read_text()
    assert text == f"{study.BEGIN}\n# label efficiency\nsecond\n{study.END}\n\n# older study\n\ntable\n"


def test_the_page_shows_the_command_that_reproduces_the_study():
    argv = ["--size", "cpu", "--part", "report", "--seeds", "3", "--note", "busy machine", "--force", "--part=finetune"]
    assert study.study_argv(argv) == ["--size", "cpu", "--seeds", "3"]
