"""Argument errors and `graphevent models` answer without importing torch (seconds saved per call)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

ERRORS = {
    "train_config": (["train", "-c", "nope.yaml", "-d", "ds", "-o", "run"], "nope.yaml: config file not found"),
    "train_data": (["train", "-c", "particlenet", "-d", "nowhere", "-o", "run"], "--data nowhere: dataset directory not found"),
    "train_resume": (["train", "-o", "norun", "--resume"], "--resume norun: no dataset.json"),
    "train_config_dir": (["train", "-c", ".", "-d", "ds", "-o", "run"], ".: is a directory; expected a YAML file"),
    "train_option": (["train", "-c", "particlenet", "-d", "ds", "-o", "run", "--batch-size", "0"],
                     "--batch-size 0: invalid value 0; expected an integer >= 1"),
    "train_shadowed_set": (["train", "-c", "particlenet", "-d", "ds", "-o", "run", "--set", "train.epochs=abc", "--epochs", "1"],
                           "--set train.epochs=abc: expected an integer, found 'abc'"),
    "preprocess_config_dir": (["preprocess", "x.h5", "-c", ".", "-o", "ds"], ".: is a directory; expected a YAML file"),
    "eval": (["eval", "norun", "--data", "ds"], "norun: run directory not found"),
    "predict": (["predict", "norun", "-i", "x.h5", "-o", "p.parquet"], "norun: run directory not found"),
    "predict_suffix": (["predict", "norun", "-i", "x.h5", "-o", "p.csv"], "unknown predictions format '.csv'"),
    "export": (["export", "norun", "--format", "onnx", "-o", "m.onnx"], "norun: run directory not found"),
}


def _run(args: list[str], cwd) -> tuple[int, str, list[str]]:
    code = (
        "import sys, json\n"
        "from graphevent.cli.app import main\n"
        f"rc = main({args!r})\n"
        "print(json.dumps([rc, sorted(m for m in ('torch', 'torch_geometric') if m in sys.modules)]))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=cwd, check=True)
    rc, modules = json.loads(out.stdout.strip().splitlines()[-1])
    return rc, out.stdout + out.stderr, modules


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_argument_errors_come_before_torch(case, tmp_path):
    args, message = ERRORS[case]
    rc, text, modules = _run(args, tmp_path)
    assert rc == 2 and message in text and modules == []


def test_models_table_without_torch(tmp_path):
    rc, text, modules = _run(["models"], tmp_path)
    assert rc == 0 and modules == [] and "particlenet" in text


def test_models_summary_cache_is_current():
    from graphevent.nn.registry import SUMMARY_CACHE, registry_summary

    assert json.loads(SUMMARY_CACHE.read_text()) == registry_summary(packaged_only=True), "run: python scripts/update_models_summary.py"
