"""The run's record stays true on resume: ``config.yaml`` is checked against the config the
checkpoint was trained with; settings that may change are used and recorded; another number of
processes is stated; errors name the option the user typed."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import yaml

from train_helpers import error_line, files, main_cli
from graphevent.nn.checkpoint import load_checkpoint, save_checkpoint


def edit_config(run: Path, section: str, key: str, value) -> None:
    path = run / "config.yaml"
    raw = yaml.safe_load(path.read_text())
    raw[section][key] = value
    path.write_text(yaml.safe_dump(raw, sort_keys=False))


@pytest.fixture
def run(pretrain_run, tmp_path) -> Path:
    """A copy of the finished 2-epoch pretraining run (lr 0.003, batch size 8, one process)."""
    return Path(shutil.copytree(pretrain_run, tmp_path / "run"))


def test_an_edited_config_yaml_is_refused_and_left_as_it_is(run, capsys):
    edit_config(run, "train", "lr", 0.5)
    before = files(run)
    line = error_line(capsys, ["train", "-o", run, "--resume", "--epochs", "3", "--no-progress"])
    assert line == (f"{run / 'config.yaml'}: train.lr is 0.5 but the run was trained with 0.003; "
                    "a resumed run keeps its config: restore the file or start a new run")
    assert files(run) == before
    # a model setting too (the file would then describe another network than the checkpoint's)
    edit_config(run, "train", "lr", 0.003)
    edit_config(run, "model", "dim", 32)
    line = error_line(capsys, ["train", "-o", run, "--resume", "--epochs", "3", "--no-progress"])
    assert line == (f"{run / 'config.yaml'}: model.dim is 32 but the run was trained with 16; "
                    "a resumed run keeps its config: restore the file or start a new run")


def test_a_setting_that_may_change_is_used_and_recorded(run, capsys):
    """Extending the run by editing config.yaml: it runs 3 epochs and every record says 3."""
    edit_config(run, "train", "epochs", 3)
    assert main_cli(["train", "-o", run, "--resume", "--no-progress"]) == 0
    records = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    assert yaml.safe_load((run / "config.yaml").read_text())["train"]["epochs"] == 3
    last = load_checkpoint(run / "checkpoints" / "last.pt")
    assert last["epoch"] == 3 and last["config"]["train"]["epochs"] == 3
    assert "world size" not in capsys.readouterr().out  # the same number of processes: nothing to say


def test_another_number_of_processes_is_stated(run, capsys):
    """The checkpoint says 2 processes, this resume runs 1: one line, sizes before and after."""
    last = run / "checkpoints" / "last.pt"
    state = load_checkpoint(last)
    state["rng"]["world_size"] = 2
    save_checkpoint(state, last)
    capsys.readouterr()
    assert main_cli(["train", "-o", run, "--resume", "--epochs", "3", "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "world size" in line]
    assert lines == ["resuming with world size 1 (the checkpoint was written with 2): "
                     "effective batch size 8 events per optimizer step (was 16)"]


def test_a_config_yaml_with_a_key_twice_is_refused(run, capsys):
    path = run / "config.yaml"
    path.write_text(path.read_text().replace("  lr: 0.003\n", "  lr: 0.003\n  lr: 0.5\n"))
    line = error_line(capsys, ["train", "-o", run, "--resume", "--no-progress"])
    assert line.startswith(f"{path}: key 'lr' appears twice (lines ") and line.endswith(") in section train")


def test_resume_errors_name_the_option_typed(run, capsys):
    # a --set that an option replaces is still checked
    line = error_line(capsys, ["train", "-o", run, "--resume", "--set", "train.epochs=abc", "--epochs", "3"])
    assert line == "--set train.epochs=abc: expected an integer, found 'abc'"
    line = error_line(capsys, ["train", "-o", run, "--resume", "--batch-size", "4"])
    assert line.startswith("--batch-size 4: train.batch_size is 4 but the run was started with 8; only train.epochs, ")
    line = error_line(capsys, ["train", "-o", run, "--resume", "--set", "model.dim=32"])
    assert line.startswith("--set model.dim=32: model.dim is 32 but the run was started with 16; only train.epochs, ")


@pytest.mark.parametrize("args, message", [
    (["--batch-size", "0"], "--batch-size 0: invalid value 0; expected an integer >= 1"),
    (["--epochs", "0"], "--epochs 0: invalid value 0; expected an integer >= 1"),
    (["--set", "train.epochs=abc", "--epochs", "1"], "--set train.epochs=abc: expected an integer, found 'abc'"),
    (["--set", "train.epochs=0", "--epochs", "1"], "--set train.epochs=0: invalid value 0; expected an integer >= 1"),
    (["--label-fraction", "0.5"], "--label-fraction 0.5: pretraining uses all events; label_fraction applies to finetune/supervised"),
    (["--label-fraction", "1.5"], "--label-fraction 1.5: invalid value 1.5; expected 0 < fraction <= 1"),
    (["--freeze-encoder"], "--freeze-encoder: model 'particlenet' has no encoder to freeze"),
])
def test_new_run_errors_name_the_option_typed(args, message, tiny_dataset, tmp_path, capsys):
    from train_helpers import LABEL, write_experiment

    if args == ["--freeze-encoder"]:
        cfg = write_experiment(tmp_path / "pn.yaml", "supervised", "particlenet", tasks=LABEL)
    else:
        cfg = write_experiment(tmp_path / "pre.yaml", "pretrain", "masked_gt_ae")
    out = tmp_path / "out"
    assert error_line(capsys, ["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--no-progress", *args]) == message
    assert not out.exists()


def test_a_config_that_is_a_directory(run, tiny_dataset, tmp_path, capsys):
    folder = tmp_path / "configs"
    folder.mkdir()
    expected = f"{folder}: is a directory; expected a YAML file"
    assert error_line(capsys, ["train", "-c", folder, "-d", tiny_dataset, "-o", tmp_path / "new"]) == expected
    raw = tmp_path / "x.h5"
    raw.write_bytes(b"")
    assert error_line(capsys, ["predict", run, "-i", raw, "-o", tmp_path / "p.parquet", "-c", folder]) == expected
    assert error_line(capsys, ["preprocess", raw, "-c", folder, "-o", tmp_path / "ds"]) == expected


def test_a_replaced_model_setting_is_checked_by_the_model(tiny_dataset, tmp_path, capsys):
    """Model settings are typed by the model's own config class, not the experiment config."""
    from train_helpers import LABEL, write_experiment

    cfg = write_experiment(tmp_path / "pn.yaml", "supervised", "particlenet", tasks=LABEL)
    out = tmp_path / "out"
    line = error_line(capsys, ["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--set", "model.k=abc", "--set", "model.k=8"])
    assert line == "--set model.k=abc: expected an integer, found 'abc'"
    assert not out.exists()


def test_resuming_a_one_process_run_with_two_workers_says_so(run):
    """The real thing: ``--nproc 2`` on a run trained by one process (the launcher prints the line
    before starting the workers)."""
    from train_helpers import run_graphevent

    proc = run_graphevent(["train", "-o", run, "--resume", "--epochs", "3", "--nproc", "2", "--no-progress"], timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [line for line in proc.stdout.splitlines() if "world size" in line]
    assert lines == ["resuming with world size 2 (the checkpoint was written with 1): "
                     "effective batch size 16 events per optimizer step (was 8)"]
    assert json.loads((run / "env.json").read_text())["world_size"] == 2
    assert load_checkpoint(run / "checkpoints" / "last.pt")["rng"]["world_size"] == 2
