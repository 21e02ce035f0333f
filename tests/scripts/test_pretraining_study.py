"""scripts/pretraining_study.py: the plan of arms x fractions x seeds it builds (no training)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

from graphevent.studies.plan import jobs

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("pretraining_study", ROOT / "scripts" / "pretraining_study.py")
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def sets(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"]


def planned(tmp_path, *argv):
    a = study.parse_args(["--data", str(tmp_path / "d"), "--runs", str(tmp_path), "--fractions", "1", "--seeds", "3", *argv])
    plan = study.build_plan(a)
    return plan, {j.key: j.cmd for j in jobs(plan, tmp_path, tmp_path)}


def test_vary_init_sets_the_experiment_seed_to_the_label_seed(tmp_path):
    base = ["--arm", "scratch:", "--set", "model.fusion=concat"]
    _, fixed = planned(tmp_path, *base)
    _, varied = planned(tmp_path, *base, "--vary-init")
    assert sets(fixed["scratch @ 1 seed 3"]) == ["train.num_workers=0", "model.fusion=concat"]
    assert sets(varied["scratch @ 1 seed 3"]) == ["train.num_workers=0", "seed=3", "model.fusion=concat"]
    cmd = varied["scratch @ 1 seed 3"]
    assert cmd[cmd.index("--label-seed") + 1] == "3" and "--init-from" not in cmd


def test_keep_recipe_init_run_and_scoring_on_other_test_data(tmp_path):
    plan, cmds = planned(tmp_path, "--arm", "mae:" + str(tmp_path) + ":keep", "--arm", "scratch:", "--test-data", str(tmp_path / "big"))
    assert plan.reference == "scratch"
    cmd = cmds["mae @ 1 seed 3"]
    assert cmd[cmd.index("--init-from") + 1] == str(tmp_path)
    assert sets(cmd) == ["train.num_workers=0", *study.KEEP]
    ev = cmds["eval 1 seed 3"]
    assert ev[ev.index("--data") + 1] == str(tmp_path / "big") and ev[ev.index("--checkpoint") + 1] == "best"
