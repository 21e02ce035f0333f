"""scripts/pretraining_study.py: the fine-tuning command of one run (no training)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("pretraining_study", ROOT / "scripts" / "pretraining_study.py")
study = importlib.util.module_from_spec(spec)
sys.modules["pretraining_study"] = study
spec.loader.exec_module(study)


def sets(cmd: list[str]) -> list[str]:
    return [cmd[i + 1] for i, c in enumerate(cmd) if c == "--set"]


def test_vary_init_sets_the_experiment_seed_to_the_label_seed(tmp_path):
    base = ["--data", "d", "--runs", str(tmp_path), "--arm", "scratch:", "--set", "model.fusion=concat"]
    fixed = study.train_command(study.parse_args(base), tmp_path / "r", 1.0, 3, "", "")
    varied = study.train_command(study.parse_args([*base, "--vary-init"]), tmp_path / "r", 1.0, 3, "", "")
    assert sets(fixed) == ["train.label_seed=3", "train.num_workers=0", "model.fusion=concat"]
    assert sets(varied) == ["train.label_seed=3", "train.num_workers=0", "seed=3", "model.fusion=concat"]
    assert fixed[fixed.index("--label-fraction") + 1] == "1.0"
    assert "--init-from" not in varied


def test_keep_recipe_and_init_run(tmp_path):
    a = study.parse_args(["--data", "d", "--runs", str(tmp_path), "--arm", "mae:runs/mae:keep"])
    cmd = study.train_command(a, tmp_path / "r", 0.01, 0, "runs/mae", "keep")
    assert cmd[cmd.index("--init-from") + 1] == "runs/mae"
    assert sets(cmd) == ["train.label_seed=0", "train.num_workers=0", *study.KEEP]
