"""``--resume`` checks that ``--data`` is the dataset the run started on; checkpoint load errors
never suggest ``weights_only=False``; a bad ``--set`` value is named as the override."""

from __future__ import annotations

import dataclasses
import json
import re
import shutil
from pathlib import Path

import pytest
import torch

from train_helpers import LABEL, error_line, files, main_cli, write_experiment
from graphevent.data.preprocess import preprocess
from graphevent.data.testing import tiny_data_config
from graphevent.errors import RunError
from graphevent.nn.checkpoint import load_checkpoint



@pytest.fixture(scope="module")
def short_run(tiny_dataset, tmp_path_factory):
    """A finished one-epoch ParticleNet run on the tiny dataset."""
    tmp = tmp_path_factory.mktemp("short")
    cfg = write_experiment(tmp / "pn.yaml", "supervised", "particlenet", tasks=LABEL, epochs=1)
    torch.set_num_threads(1)
    assert main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", tmp / "run", "--no-progress"]) == 0
    return tmp / "run"


def test_resume_with_other_data_is_refused_and_changes_nothing(short_run, tiny_dataset, tmp_path, capsys):
    run = Path(shutil.copytree(short_run, tmp_path / "run"))
    # the same events and labels, class names swapped
    raw = tiny_dataset.parent / f"{tiny_dataset.name}-raw.h5"
    swapped = tmp_path / "swapped"
    preprocess([raw], dataclasses.replace(tiny_data_config(), classes=["gluon", "quark"]), swapped)
    before = files(run)
    line = error_line(capsys, ["train", "-d", swapped, "-o", run, "--resume", "--epochs", "2", "--no-progress"])
    assert line == (f"--resume {run}: --data {swapped} is not the dataset this run was trained on: classes is "
                    f"['gluon', 'quark']; the run was trained on ['quark', 'gluon'] ({tiny_dataset.resolve()})")
    assert files(run) == before  # dataset.json, checkpoints, metrics: same bytes

    # same classes, other events: the split sizes differ
    other = tmp_path / "other"
    preprocess([raw], tiny_data_config(), other, limit=80)
    line = error_line(capsys, ["train", "-d", other, "-o", run, "--resume", "--epochs", "2", "--no-progress"])
    new = json.loads((other / "manifest.json").read_text())["splits"]
    old = json.loads((tiny_dataset / "manifest.json").read_text())["splits"]
    assert line == (f"--resume {run}: --data {other} is not the dataset this run was trained on: splits is "
                    f"{new!r}; the run was trained on {old!r} ({tiny_dataset.resolve()})")
    assert files(run) == before


def test_resume_with_its_dataset_keeps_dataset_json(short_run, tiny_dataset, tmp_path, capsys):
    run = Path(shutil.copytree(short_run, tmp_path / "run"))
    record = (run / "dataset.json").read_bytes()
    identity = json.loads(record)["identity"]
    assert identity["classes"] == ["quark", "gluon"] and len(identity["dataset_id"]) == 16
    copy = Path(shutil.copytree(tiny_dataset, tmp_path / "copy"))  # the same dataset, moved
    assert main_cli(["train", "-d", copy, "-o", run, "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert (run / "dataset.json").read_bytes() == record
    assert [json.loads(line)["epoch"] for line in (run / "metrics.jsonl").read_text().splitlines()] == [1, 2]


class NotPlainData:
    pass


def test_checkpoint_errors_never_suggest_weights_only_false(tmp_path, short_run, tiny_dataset, capsys):
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": NotPlainData()}, evil)
    expected = (f"{evil}: not a loadable graphevent checkpoint (it holds Python objects other than tensors and "
                "plain data, which graphevent never writes; refused)")
    with pytest.raises(RunError, match=f"^{re.escape(expected)}$"):
        load_checkpoint(evil)
    run = Path(shutil.copytree(short_run, tmp_path / "run"))
    shutil.copy(evil, run / "checkpoints" / "best.pt")
    (run / "checkpoints" / "best.pt.sha256").unlink()  # no checksum record (an earlier version): torch.load refuses it
    before = files(run)
    line = error_line(capsys, ["eval", run, "-d", tiny_dataset, "--bootstrap", "0"])
    assert line == expected.replace(str(evil), str(run / "checkpoints" / "best.pt"))
    assert "weights_only" not in line and files(run) == before


@pytest.mark.parametrize("override, message", [
    ("model.k=abc", "--set model.k=abc: expected an integer, found 'abc'"),
    ("train.lr=abc", "--set train.lr=abc: expected a number, found 'abc'"),
])
def test_bad_train_set_value_names_the_override(tmp_path, tiny_dataset, capsys, override, message):
    cfg = write_experiment(tmp_path / "pn.yaml", "supervised", "particlenet", tasks=LABEL, epochs=1)
    out = tmp_path / "run"
    line = error_line(capsys, ["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--set", override])
    assert line == message
    assert not out.exists()
