"""Nothing the user had is lost: --out / --overwrite of preprocess, train and eval (issue 13).

Each refusal asserts exit code 2, the one-line message, and that every file that existed
before the command is still there with the same bytes (tests/tree_snapshot.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import graphevent
from graphevent.cli.app import main
from graphevent.config.base import dump_yaml
from graphevent.data.testing import make_jet_images, tiny_data_config, write_ml4sci_hdf5
from tree_snapshot import assert_kept, snapshot

REPO = Path(graphevent.__file__).resolve().parent.parent

PRETRAIN = """
stage: pretrain
name: ae
model: {name: edgeconv_ae, k: 4, channels: [[8]], dim: 8, num_points: 16, query_dim: 8, decoder_hidden: 16}
train: {epochs: 1, batch_size: 32}
"""

FINETUNE_MASKED_GT = """
stage: finetune
name: ft
model:
  name: multitask
  encoder: masked_gt
  dim: 16
  heads: 2
  head_hidden: 16
  masked_gt: {dim: 16, depth: 1, heads: 2, edge_dim: 8, k: 4, decoder_dim: 8}
tasks:
  - {name: label, type: classification}
train: {epochs: 1, batch_size: 32}
"""


def one_line_error(capsys, args: list, match: str) -> str:
    """Run the CLI: exit 2 and one error line on stderr holding ``match`` (progress bars aside)."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def data_yaml(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cfg") / "data.yaml"
    dump_yaml(tiny_data_config(), path)
    return path


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, tiny_dataset) -> Path:
    """A finished one-epoch pretraining run (copy it before changing it)."""
    root = tmp_path_factory.mktemp("runs")
    (root / "pre.yaml").write_text(PRETRAIN)
    assert main(["train", "-c", str(root / "pre.yaml"), "-d", str(tiny_dataset), "-o", str(root / "run"), "--no-progress", "--gpus", "0"]) == 0
    return root / "run"


# ---------------------------------------------------------------------------- eval --out
def test_eval_overwrite_refuses_a_run_directory(tmp_path, run_dir, tiny_dataset, capsys):
    target = tmp_path / "other-run"
    shutil.copytree(run_dir, target)
    before = snapshot(target)
    one_line_error(capsys, ["eval", run_dir, "--data", tiny_dataset, "--out", target, "--overwrite"],
                   f"--out {target}: holds a graphevent run (.graphevent.json kind 'run'), not graphevent eval output; "
                   "refusing to write there; choose another --out")
    assert_kept(before, target)


def test_eval_overwrite_refuses_a_dataset(tmp_path, run_dir, tiny_dataset, capsys):
    target = tmp_path / "ds"
    shutil.copytree(tiny_dataset, target)
    before = snapshot(target)
    one_line_error(capsys, ["eval", run_dir, "--data", tiny_dataset, "--out", target, "--overwrite"],
                   f"--out {target}: holds a graphevent dataset (.graphevent.json kind 'dataset'), not graphevent eval output")
    assert_kept(before, target)


def test_eval_overwrite_refuses_unrelated_files(tmp_path, run_dir, tiny_dataset, capsys):
    target = tmp_path / "papers"
    (target / "figs").mkdir(parents=True)
    (target / "draft.tex").write_text("\\section{Results}")
    (target / "figs" / "roc.png").write_bytes(b"\x89PNG not really")
    before = snapshot(target)
    one_line_error(capsys, ["eval", run_dir, "--data", tiny_dataset, "--out", target, "--overwrite"],
                   f"--out {target}: holds draft.tex and other files but no .graphevent.json marker of graphevent output, "
                   "so nothing there is replaced or deleted; if it is the output of an earlier graphevent version, "
                   "check it and delete it yourself; otherwise choose another --out")
    assert_kept(before, target)


def test_eval_overwrite_refuses_a_file(tmp_path, run_dir, tiny_dataset, capsys):
    target = tmp_path / "metrics.json"
    target.write_text('{"auc": 0.9}')
    before = snapshot(target)
    one_line_error(capsys, ["eval", run_dir, "--data", tiny_dataset, "--out", target, "--overwrite"],
                   f"--out {target}: exists and is a file; expected a directory (or a path that does not exist)")
    assert_kept(before, target)


def test_eval_twice_needs_overwrite_which_replaces_only_its_files(tmp_path, run_dir, tiny_dataset, capsys):
    out = tmp_path / "ev"
    args = ["eval", run_dir, "--data", tiny_dataset, "--out", out, "--bootstrap", "0", "--no-progress"]
    assert main([str(a) for a in args]) == 0
    first = json.loads((out / ".graphevent.json").read_text())
    assert first["kind"] == "eval" and "metrics.json" in first["files"]
    one_line_error(capsys, args, f"--out {out}: already exists; pass --overwrite to replace it")
    (out / "notes.md").write_text("my notes")
    before = snapshot(out)
    one_line_error(capsys, args + ["--overwrite"], f"--out {out}: notes.md was not written by graphevent (not listed in .graphevent.json)")
    assert_kept(before, out)
    (out / "notes.md").unlink()
    capsys.readouterr()
    assert main([str(a) for a in args + ["--overwrite"]]) == 0
    second = json.loads((out / ".graphevent.json").read_text())
    assert second["files"] == first["files"] and second["status"] == "complete"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == sorted(
        first["files"] + [".graphevent.json", ".graphevent.lock"])


# ---------------------------------------------------------------------------- preprocess --out
def test_preprocess_dot_in_a_folder_with_a_foreign_manifest(tmp_path, tiny_raw, data_yaml, capsys, monkeypatch):
    web = tmp_path / "web"
    web.mkdir()
    (web / "manifest.json").write_text('{"name": "my-app", "start_url": "/"}')
    (web / "index.html").write_text("<html></html>")
    monkeypatch.chdir(web)
    before = snapshot(web)
    one_line_error(capsys, ["preprocess", tiny_raw, "-c", data_yaml, "-o", ".", "--overwrite"],
                   "--out .: holds index.html and other files but no .graphevent.json marker of graphevent output")
    assert_kept(before, web)


def test_preprocess_refuses_an_input_inside_the_output(tmp_path, tiny_raw, data_yaml, capsys):
    ds = tmp_path / "ds"
    assert main(["preprocess", str(tiny_raw), "-c", str(data_yaml), "-o", str(ds), "--no-summary"]) == 0
    raw = ds / "raw.h5"
    shutil.copy(tiny_raw, raw)
    before = snapshot(ds)
    one_line_error(capsys, ["preprocess", raw, "-c", data_yaml, "-o", ds, "--overwrite"],
                   f"--out {ds}: input {raw} is inside the output directory; choose another --out")
    assert_kept(before, ds)


def test_preprocess_overwrite_of_its_own_dataset_removes_only_listed_files(tmp_path, tiny_raw, data_yaml, capsys):
    ds = tmp_path / "ds"
    args = ["preprocess", tiny_raw, "-c", data_yaml, "-o", ds, "--no-summary"]
    assert main([str(a) for a in args]) == 0
    marker = json.loads((ds / ".graphevent.json").read_text())
    assert marker["kind"] == "dataset" and marker["status"] == "complete"
    assert "manifest.json" in marker["files"] and all(f.startswith(("shards/", "manifest.json", "data_config.yaml")) for f in marker["files"])
    (ds / "shards" / "README").write_text("my notes")
    before = snapshot(ds)
    one_line_error(capsys, args + ["--overwrite"], f"--out {ds}: shards/README was not written by graphevent")
    assert_kept(before, ds)
    (ds / "shards" / "README").unlink()
    assert main([str(a) for a in args + ["--overwrite"]]) == 0
    again = json.loads((ds / ".graphevent.json").read_text())
    assert again["files"] == marker["files"] and again["id"] != marker["id"]


def test_preprocess_refuses_a_symlinked_output(tmp_path, tiny_raw, data_yaml, capsys):
    real = tmp_path / "real"
    assert main(["preprocess", str(tiny_raw), "-c", str(data_yaml), "-o", str(real), "--no-summary"]) == 0
    link = tmp_path / "ds"
    link.symlink_to(real)
    before = snapshot(tmp_path)
    one_line_error(capsys, ["preprocess", tiny_raw, "-c", data_yaml, "-o", link, "--overwrite"],
                   f"--out {link}: is a symbolic link (to {real}); give the real directory path")
    assert_kept(before, tmp_path)


def test_preprocess_output_that_cannot_be_created(tmp_path, tiny_raw, data_yaml, capsys):
    blocker = tmp_path / "datasets"
    blocker.write_text("a file where a folder was expected")
    one_line_error(capsys, ["preprocess", tiny_raw, "-c", data_yaml, "-o", blocker / "qg"],
                   f"--out {blocker / 'qg'}: cannot create the directory (Not a directory)")
    assert blocker.read_text() == "a file where a folder was expected"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories (the path-under-a-file test covers the error)")
def test_preprocess_output_not_writable(tmp_path, tiny_raw, data_yaml, capsys):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        one_line_error(capsys, ["preprocess", tiny_raw, "-c", data_yaml, "-o", ro], "cannot write in the directory (Permission denied)")
    finally:
        ro.chmod(0o755)


def test_preprocess_that_dies_leaves_nothing(tmp_path, tiny_raw, monkeypatch):
    """A MemoryError (e.g. from a giant graph.k) in a new dataset: no state file blocks the next run."""
    import graphevent.data.preprocess as pp

    def out_of_memory(*args):
        raise MemoryError

    ds = tmp_path / "ds"
    monkeypatch.setattr(pp, "process_chunk", out_of_memory)
    with pytest.raises(MemoryError):
        pp.preprocess([tiny_raw], tiny_data_config(), ds)
    assert not ds.exists()
    monkeypatch.undo()
    assert pp.preprocess([tiny_raw], tiny_data_config(), ds)["n_events"] == 64  # no --overwrite needed


def test_preprocess_of_only_empty_events_exits_2_with_the_counts(tmp_path, data_yaml, capsys):
    arrays = make_jet_images(8, seed=2)
    arrays["X_jets"][:] = 0.0
    raw = write_ml4sci_hdf5(tmp_path / "blank.h5", arrays)
    one_line_error(capsys, ["preprocess", raw, "-c", data_yaml, "-o", tmp_path / "ds"],
                   "blank.h5: no event left to write: 8 events read, 8 skipped as empty (no node above the channel thresholds)")
    assert not (tmp_path / "ds").exists()


# ---------------------------------------------------------------------------- train --out
def test_train_overwrite_refuses_a_folder_with_config_and_code(tmp_path, tiny_dataset, capsys):
    proj = tmp_path / "proj"
    (proj / "src").mkdir(parents=True)
    (proj / "config.yaml").write_text("lr: 0.1\n")
    (proj / "src" / "model.py").write_text("class Net: ...\n")
    (proj / "thesis.tex").write_text("\\chapter{Intro}")
    (tmp_path / "pre.yaml").write_text(PRETRAIN)
    before = snapshot(proj)
    one_line_error(capsys, ["train", "-c", tmp_path / "pre.yaml", "-d", tiny_dataset, "-o", proj, "--overwrite", "--no-progress"],
                   f"--out {proj}: holds config.yaml and other files but no .graphevent.json marker of graphevent output")
    assert_kept(before, proj)


def test_train_overwrite_of_its_own_run_with_an_eval_inside(tmp_path, run_dir, tiny_dataset, capsys):
    """The demo's second run: train --overwrite replaces the run and the eval written into it."""
    run = tmp_path / "run"
    shutil.copytree(run_dir, run)
    assert main(["eval", str(run), "--data", str(tiny_dataset), "--bootstrap", "0", "--no-progress"]) == 0
    assert (run / "eval-test" / "metrics.json").is_file()
    old_id = json.loads((run / ".graphevent.json").read_text())["id"]
    (tmp_path / "pre.yaml").write_text(PRETRAIN)
    assert main(["train", "-c", str(tmp_path / "pre.yaml"), "-d", str(tiny_dataset), "-o", str(run), "--overwrite",
                 "--no-progress", "--gpus", "0"]) == 0
    marker = json.loads((run / ".graphevent.json").read_text())
    assert marker["id"] != old_id and marker["status"] == "complete" and not (run / "eval-test").exists()
    on_disk = sorted(p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file() and not p.name.startswith(".graphevent"))
    assert marker["files"] == on_disk


def test_failed_init_from_leaves_nothing_that_blocks_the_corrected_command(tmp_path, run_dir, tiny_dataset, capsys):
    """--init-from of an edgeconv pretraining into a masked_gt model fails in the worker, after the
    run directory was written: it is removed, and the corrected command needs no --overwrite."""
    (tmp_path / "ft.yaml").write_text(FINETUNE_MASKED_GT)
    (tmp_path / "keep.txt").write_text("keep")
    before = snapshot(tmp_path)
    out = tmp_path / "ft"
    args = ["train", "-c", tmp_path / "ft.yaml", "-d", tiny_dataset, "-o", out, "--no-progress", "--gpus", "0"]
    one_line_error(capsys, args + ["--init-from", run_dir],
                   f"--init-from {run_dir}: it has encoders ['edgeconv'], the model needs ['masked_gt']; none in common")
    assert snapshot(tmp_path) == before  # nothing half-made
    assert main([str(a) for a in args]) == 0


HOLDER = """
import sys
from graphevent.utils.outdir import OutputDir
od = OutputDir(sys.argv[1], sys.argv[2]).acquire()
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes the pipe
"""


@pytest.mark.parametrize("command", ["train --resume", "train --overwrite", "preprocess", "eval --overwrite"])
def test_output_in_use_by_another_process(tmp_path, run_dir, tiny_dataset, tiny_raw, data_yaml, capsys, command):
    """Two --resume at once, or --overwrite of a run being written: the second stops, nothing changes."""
    if command.startswith("train"):
        out, kind = tmp_path / "run", "run"
        shutil.copytree(run_dir, out)
        (tmp_path / "pre.yaml").write_text(PRETRAIN)
        args = ["train", "-d", tiny_dataset, "-o", out, "--no-progress", "--gpus", "0"]
        args += ["--resume", "--epochs", "2"] if command.endswith("resume") else ["-c", tmp_path / "pre.yaml", "--overwrite"]
    elif command == "preprocess":
        out, kind = tmp_path / "ds", "dataset"
        args = ["preprocess", tiny_raw, "-c", data_yaml, "-o", out, "--no-summary"]
    else:
        out, kind = tmp_path / "ev", "eval"
        args = ["eval", run_dir, "--data", tiny_dataset, "--out", out, "--overwrite", "--no-progress"]
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out), kind], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        before = snapshot(out)
        one_line_error(capsys, args, f"{out} is in use by process {holder.pid}; wait for it to finish or choose another --out")
        assert_kept(before, out)
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0


def test_preprocess_into_the_current_directory_and_overwrite_it(tmp_path, tiny_raw, data_yaml, monkeypatch):
    """-o . is fine for an empty folder; --overwrite then removes the dataset's files, never the folder."""
    here = tmp_path / "here"
    here.mkdir()
    monkeypatch.chdir(here)
    args = ["preprocess", str(tiny_raw), "-c", str(data_yaml), "-o", ".", "--no-summary"]
    assert main(args) == 0
    listed = json.loads((here / ".graphevent.json").read_text())["files"]
    assert main(args + ["--overwrite"]) == 0
    assert here.is_dir() and Path.cwd() == here
    assert sorted(p.relative_to(here).as_posix() for p in here.rglob("*") if p.is_file()) == sorted(
        listed + [".graphevent.json", ".graphevent.lock"])


def test_run_of_an_earlier_version_resumes_but_is_never_overwritten(tmp_path, run_dir, tiny_dataset, capsys):
    """No marker (written before graphevent had one): --resume works and adds no marker; --overwrite refuses."""
    old = tmp_path / "old-run"
    shutil.copytree(run_dir, old, ignore=shutil.ignore_patterns(".graphevent.*"))
    assert main(["train", "-d", str(tiny_dataset), "-o", str(old), "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert [json.loads(line)["epoch"] for line in (old / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert not (old / ".graphevent.json").exists()
    (tmp_path / "pre.yaml").write_text(PRETRAIN)
    before = snapshot(old)
    one_line_error(capsys, ["train", "-c", tmp_path / "pre.yaml", "-d", tiny_dataset, "-o", old, "--overwrite", "--no-progress"],
                   f"--out {old}: holds checkpoints and other files but no .graphevent.json marker of graphevent output")
    assert_kept(before, old)
