"""Nothing the user had is lost, part two: single output files (issue 23).

`predict`, `export` and `probe --out` write one file each through
:class:`graphevent.utils.outfile.OutputFile`. Every refusal asserts exit code 2, the one-line
message, and the sha256 of every file that existed before (tests/tree_snapshot.py); the
happy paths assert the file's signature and that nothing else is left behind.
"""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from graphevent.cli.app import main
from graphevent.utils.outdir import OutputDir, ReadLock
from graphevent.utils.outfile import OutputFile, signature
from tree_snapshot import assert_kept, snapshot


@pytest.fixture(scope="module")
def raw(tiny_dataset):
    """The raw file the tiny dataset was preprocessed from (96 events)."""
    return tiny_dataset.parent / f"{tiny_dataset.name}-raw.h5"


@pytest.fixture(scope="module")
def runs(trained_runs, tmp_path_factory):
    """Copies of the shared runs (these tests lock and read them; the originals stay untouched)."""
    root = tmp_path_factory.mktemp("own-runs")
    return {name: Path(shutil.copytree(path, root / name, symlinks=True)) for name, path in trained_runs.items()}


def one_line_error(capsys, args: list, match: str) -> str:
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip() and not line.startswith(("predict", "\r"))]
    assert code == 2, err
    assert "Traceback" not in err, err
    errors = [line for line in lines if line.startswith("error:")]
    assert len(errors) == 1, err
    assert match in errors[0], errors[0]
    return errors[0]


def commands(runs, raw, tiny_dataset, out) -> dict[str, list]:
    """The three single-file writers, each writing ``out``."""
    return {
        "predict": ["predict", runs["mt"], "-i", raw, "-o", out, "--no-progress", "--device", "cpu"],
        "export": ["export", runs["mt"], "--format", "torchscript", "--out", out],
        "probe": ["probe", runs["ae"], "--data", tiny_dataset, "--k", "3", "--pool-events", "40", "--out", out],
    }


SUFFIX = {"predict": ".parquet", "export": ".pt", "probe": ".json"}
KIND = {"predict": "predictions", "export": "export", "probe": "probe"}


def _protected(runs, raw, tiny_dataset, tmp_path) -> list[Path]:
    return [runs["mt"], runs["ae"], raw, tiny_dataset, tmp_path]


def _snap(paths) -> dict:
    return {str(p): snapshot(p) for p in paths}


def _kept(before: dict) -> None:
    for p, snap in before.items():
        assert_kept(snap, p)


@pytest.mark.parametrize("command", ["predict", "export", "probe"])
def test_user_files_are_never_replaced_even_with_overwrite(command, runs, raw, tiny_dataset, tmp_path, capsys):
    user = tmp_path / f"notes{SUFFIX[command]}"
    user.write_bytes(b"PAR1 my own notes, not graphevent's" if command == "predict" else b"{\"mine\": 1}")
    link = tmp_path / f"link{SUFFIX[command]}"
    link.symlink_to(user)
    folder = tmp_path / f"folder{SUFFIX[command]}"
    folder.mkdir()
    before = _snap(_protected(runs, raw, tiny_dataset, tmp_path))
    cases = [
        (user, "was not written by this command (it carries no signature of "),
        (link, "is a symbolic link (to"),
        (folder, "is a directory; expected a file name"),
        (tmp_path / "missing" / f"x{SUFFIX[command]}", "the folder"),
        (user / f"under-a-file{SUFFIX[command]}", "is not a directory"),
    ]
    for target, message in cases:
        one_line_error(capsys, [*commands(runs, raw, tiny_dataset, target)[command], "--overwrite"], message)
    one_line_error(capsys, commands(runs, raw, tiny_dataset, user)[command], "already exists; pass --overwrite")
    _kept(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([user.name, link.name, folder.name])


#: (where, expected message) per command: what it reads is "an input", other graphevent
#: directories are refused by their marker
INPUT_TARGETS = {
    "predict": [("mt/checkpoints/best.parquet", "an input of this command"), ("ae/checkpoints/x.parquet", "a graphevent run"),
                ("ds/manifest.parquet", "a graphevent dataset"), ("mt/new.parquet", "an input of this command"),
                ("raw", "is an input of this command")],
    "export": [("mt/checkpoints/best.pt", "an input of this command"), ("ae/checkpoints/best.pt", "a graphevent run"),
               ("ds/manifest.json", "a graphevent dataset"), ("mt/new.onnx", "an input of this command")],
    "probe": [("ae/checkpoints/best.pt", "an input of this command"), ("mt/checkpoints/best.pt", "a graphevent run"),
              ("ds/manifest.json", "an input of this command"), ("ds/shards/new.json", "an input of this command")],
}


@pytest.mark.parametrize("command", ["predict", "export", "probe"])
def test_inputs_and_graphevent_directories_are_refused(command, runs, raw, tiny_dataset, tmp_path, capsys):
    before = _snap(_protected(runs, raw, tiny_dataset, tmp_path))
    roots = {"mt": runs["mt"], "ae": runs["ae"], "ds": tiny_dataset}
    for where, message in INPUT_TARGETS[command]:
        head, _, rest = where.partition("/")
        target = raw if where == "raw" else roots[head] / rest
        one_line_error(capsys, [*commands(runs, raw, tiny_dataset, target)[command], "--overwrite"], message)
    _kept(before)


def test_an_input_reached_through_a_hard_link_is_refused(runs, raw, tmp_path, capsys):
    alias = tmp_path / "alias.parquet"
    os.link(raw, alias)
    before = snapshot(raw)
    one_line_error(capsys, ["predict", runs["mt"], "-i", alias, "-o", raw, "--overwrite"], "is an input of this command")
    assert_kept(before, raw)


@pytest.mark.parametrize("command", ["predict", "export", "probe"])
def test_overwrite_replaces_its_own_output_only(command, runs, raw, tiny_dataset, tmp_path, capsys):
    out = tmp_path / f"out{SUFFIX[command]}"
    args = commands(runs, raw, tiny_dataset, out)[command]
    assert main([str(a) for a in args]) == 0
    assert signature(out) == KIND[command]
    first = out.stat().st_ino
    assert main([str(a) for a in [*args, "--overwrite"]]) == 0
    assert out.stat().st_ino != first  # replaced by a rename, not written in place
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]  # no temporary or lock file left
    other = {c: tmp_path / f"other{SUFFIX[c]}" for c in SUFFIX if c != command}
    for c, path in other.items():  # an output of another command is not this command's to replace
        shutil.copy(out, path)
        one_line_error(capsys, [*commands(runs, raw, tiny_dataset, path)[c], "--overwrite"],
                       f"it holds {'graphevent predictions' if command == 'predict' else 'a graphevent export' if command == 'export' else 'graphevent probe results'}")
    capsys.readouterr()


def test_a_second_writer_of_the_same_file_is_refused_naming_the_first(runs, raw, tmp_path, capsys):
    out = tmp_path / "p.parquet"
    holder = OutputFile(out, "predictions")
    holder.acquire()
    try:
        one_line_error(capsys, ["predict", runs["mt"], "-i", raw, "-o", out, "--no-progress"],
                       f"p.parquet is in use by process {os.getpid()}")
    finally:
        holder.abandon()
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_a_dataset_being_read_cannot_be_overwritten(tiny_dataset, tmp_path, capsys):
    before = snapshot(tiny_dataset)
    with ReadLock(tiny_dataset, "--data"):
        raw = tiny_dataset.parent / f"{tiny_dataset.name}-raw.h5"
        one_line_error(capsys, ["preprocess", raw, "-c", tiny_dataset / "data_config.yaml", "-o", tiny_dataset, "--overwrite"],
                       f"is in use by process {os.getpid()} (reading it)")
    assert_kept(before, tiny_dataset)


def test_a_run_being_read_cannot_be_resumed_into_and_a_run_being_written_is_not_read(runs, tiny_dataset, raw, tmp_path, capsys):
    run = runs["ae"]
    before = snapshot(run)
    with ReadLock(run, "run"):
        one_line_error(capsys, ["train", "-o", run, "--resume", "--no-progress"], f"in use by process {os.getpid()} (reading it)")
    assert_kept(before, run)
    writer = OutputDir(run, "run").acquire()
    try:
        one_line_error(capsys, ["eval", run, "--data", tiny_dataset, "--out", tmp_path / "ev"],
                       f"run {run}: is being written by process {os.getpid()}")
        one_line_error(capsys, ["export", run, "--format", "torchscript", "--out", tmp_path / "m.pt"],
                       "is being written by process")
    finally:
        writer.release()
    assert not (tmp_path / "ev").exists() and not (tmp_path / "m.pt").exists()


@pytest.fixture
def terminal_signals():
    """A terminal's SIGINT/SIGTERM handlers, whatever started pytest; restored afterwards."""
    old = {signal.SIGINT: signal.signal(signal.SIGINT, signal.default_int_handler),
           signal.SIGTERM: signal.signal(signal.SIGTERM, signal.SIG_DFL)}
    yield
    for sig, handler in old.items():
        signal.signal(sig, handler)


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
def test_a_signal_during_predict_keeps_the_earlier_file_and_leaves_nothing(signum, runs, raw, tmp_path, capsys, monkeypatch,
                                                                           terminal_signals):
    import graphevent.evaluate.predict as predict

    out = tmp_path / "p.parquet"
    assert main(["predict", str(runs["mt"]), "-i", str(raw), "-o", str(out), "--no-progress", "--device", "cpu"]) == 0
    before = snapshot(tmp_path)
    original = predict._chunk_columns
    calls = []

    def chunk_then_signal(*args, **kwargs):
        calls.append(1)
        if len(calls) == 2:  # one chunk is already in the temporary file
            os.kill(os.getpid(), signum)
        return original(*args, **kwargs)

    monkeypatch.setattr(predict, "_chunk_columns", chunk_then_signal)
    code = main(["predict", str(runs["mt"]), "-i", str(raw), "-o", str(out), "--no-progress", "--device", "cpu", "--overwrite"])
    err = capsys.readouterr().err
    assert code == 128 + signum
    lines = [line for line in err.splitlines() if line.strip()]
    assert lines == [f"interrupted by {signal.Signals(signum).name}: graphevent predict stopped; what it was writing was "
                     "removed; files that existed before are unchanged"]
    assert_kept(before, tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.parquet"]
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the CLI's handlers are gone again


def test_sigterm_during_eval_leaves_nothing_that_needs_overwrite(runs, tiny_dataset, tmp_path, capsys, monkeypatch,
                                                                 terminal_signals):
    import graphevent.evaluate.runner as runner

    out = tmp_path / "ev"
    original = runner._write_run

    def write_then_signal(*args, **kwargs):
        os.kill(os.getpid(), signal.SIGTERM)
        return original(*args, **kwargs)

    monkeypatch.setattr(runner, "_write_run", write_then_signal)
    args = ["eval", str(runs["mt"]), "--data", str(tiny_dataset), "--out", str(out), "--bootstrap", "0", "--no-progress"]
    assert main(args) == 143
    assert "interrupted by SIGTERM: graphevent eval stopped" in capsys.readouterr().err
    assert not out.exists()
    monkeypatch.undo()
    assert main(args) == 0  # no --overwrite needed
    assert json.loads((out / ".graphevent.json").read_text())["status"] == "complete"


def _limited(args: list, limit: int) -> subprocess.CompletedProcess:
    """The CLI in a subprocess whose files may not grow past ``limit`` bytes (a full disk, for the writer)."""
    code = ("import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
            f"resource.setrlimit(resource.RLIMIT_FSIZE, ({limit}, {limit})); "
            "from graphevent.cli.app import main; sys.exit(main(sys.argv[1:]))")
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True, env=env, timeout=600)


@pytest.mark.parametrize("command", ["predict", "export", "probe"])
def test_a_full_disk_is_one_line_and_leaves_the_earlier_file(command, runs, raw, tiny_dataset, tmp_path):
    out = tmp_path / f"out{SUFFIX[command]}"
    args = commands(runs, raw, tiny_dataset, out)[command]
    assert main([str(a) for a in args]) == 0
    before = _snap(_protected(runs, raw, tiny_dataset, tmp_path))
    r = _limited([*args, "--overwrite"], limit=200)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert "cannot write (file too large (a file-size limit))" in errors[0]
    _kept(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == [out.name]


PRETRAIN = """
stage: pretrain
name: ae
model: {name: edgeconv_ae, k: 8, channels: [[8]], dim: 8, num_points: 16, query_dim: 8, decoder_hidden: 16}
train: {epochs: 1, batch_size: 32}
"""


@pytest.mark.parametrize("command, limit", [("preprocess", 3000), ("train", 20000), ("eval", 20000)])
def test_a_full_disk_while_writing_a_directory_is_one_line(command, limit, runs, tiny_dataset, raw, tmp_path):
    """Disk full (a file-size limit: the same ENOSPC-like failure for the writer) in the middle
    of preprocess, train and eval: one line naming --out, exit 2, nothing left behind."""
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(PRETRAIN)
    out = tmp_path / "out"
    args = {"preprocess": ["preprocess", raw, "-c", tiny_dataset / "data_config.yaml", "-o", out],
            "train": ["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--no-progress", "--gpus", "0"],
            "eval": ["eval", runs["ae"], "--data", tiny_dataset, "--out", out, "--no-progress", "--bootstrap", "0"]}[command]
    before = _snap([runs["ae"], tiny_dataset, raw])
    r = _limited(args, limit)
    assert r.returncode == 2, r.stderr
    errors = [line for line in r.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in r.stderr, r.stderr
    assert errors[0].startswith(f"error: --out {out}: cannot write (file too large (a file-size limit))"), errors[0]
    _kept(before)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pre.yaml"]


@pytest.fixture
def small_tmpfs(tmp_path):
    """A 64 KiB tmpfs (root only; skipped where mounting is not allowed)."""
    mnt = tmp_path / "small"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(mnt)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here (needs root and a mount namespace that allows it)")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_real_full_disk_and_a_read_only_file_system(small_tmpfs, runs, raw, tiny_dataset, tmp_path, capsys):
    (small_tmpfs / "filler").write_bytes(b"\0" * (64 * 1024 - 4096 * 2))
    before = snapshot(small_tmpfs)
    out = small_tmpfs / "p.parquet"
    one_line_error(capsys, ["predict", runs["mt"], "-i", raw, "-o", out, "--no-progress", "--device", "cpu"],
                   "cannot write (no space left on device)")
    assert_kept(before, small_tmpfs)
    assert sorted(p.name for p in small_tmpfs.iterdir()) == ["filler"]
    (small_tmpfs / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", str(small_tmpfs)], check=True)
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(PRETRAIN)
    ro = small_tmpfs
    cases = {  # every writing command, its output on the read-only file system
        "export": (["export", runs["mt"], "--format", "torchscript", "--out", ro / "m.pt"], "cannot write in the folder"),
        "predict": ([*commands(runs, raw, tiny_dataset, ro / "p.parquet")["predict"]], "(read-only file system)"),
        "probe": ([*commands(runs, raw, tiny_dataset, ro / "p.json")["probe"]], "(read-only file system)"),
        "preprocess": (["preprocess", raw, "-c", tiny_dataset / "data_config.yaml", "-o", ro / "ds"], "Read-only file system"),
        "train": (["train", "-c", cfg, "-d", tiny_dataset, "-o", ro / "run", "--no-progress", "--gpus", "0"],
                  "Read-only file system"),
        "eval": (["eval", runs["ae"], "--data", tiny_dataset, "--out", ro / "ev", "--no-progress"], "Read-only file system"),
    }
    for command, (args, message) in cases.items():
        one_line_error(capsys, args, message)
    assert list(small_tmpfs.iterdir()) == []


def test_signatures_are_read_from_the_content(tmp_path):
    (tmp_path / "a.json").write_text('{"graphevent_output": "probe", "rows": []}')
    (tmp_path / "b.json").write_text('{"graphevent_output": "something-else"}')
    (tmp_path / "c.parquet").write_text("not parquet")
    np.savez(tmp_path / "d.npz", X=np.zeros(2))
    assert [signature(tmp_path / n) for n in ("a.json", "b.json", "c.parquet", "d.npz", "missing")] == \
        ["probe", None, None, None, None]


def test_the_lock_file_is_taken_again_when_its_holder_removed_it(tmp_path):
    """The last holder removes the lock file while it holds it; a writer that opened the old
    file meanwhile must not believe it holds the lock of the new one."""
    out = tmp_path / "x.json"
    first = OutputFile(out, "probe")
    first.acquire()
    stale = os.open(first.lock, os.O_RDWR)
    first.abandon()
    fcntl.flock(stale, fcntl.LOCK_EX | fcntl.LOCK_NB)  # the old inode: free, but no longer the lock
    second = OutputFile(out, "probe")
    second.acquire()
    assert os.stat(second.lock).st_ino != os.fstat(stale).st_ino
    os.close(stale)
    second.abandon()
    assert list(tmp_path.iterdir()) == []


PAUSE = """
import os, sys, time
from pathlib import Path
import {module} as target
original = target.{attr}
def paused(*args, **kwargs):
    flag = Path(os.environ["PAUSE_DIR"])
    (flag / "ready").touch()
    while not (flag / "go").exists():
        time.sleep(0.05)
    return original(*args, **kwargs)
{patch}
from graphevent.cli.app import main
sys.exit(main(sys.argv[1:]))
"""


def _paused_command(tmp_path: Path, module: str, attr: str, patch: str, args: list) -> subprocess.Popen:
    """The CLI in a subprocess that stops at ``module.attr`` (creating ``ready``) until ``go`` exists."""
    flags = tmp_path / "flags"
    flags.mkdir()
    code = PAUSE.format(module=module, attr=attr, patch=patch)
    env = {**os.environ, "PAUSE_DIR": str(flags), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-c", code, *map(str, args)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    for _ in range(12000):  # up to 10 minutes on a loaded machine; no timing is asserted
        if (flags / "ready").exists() or proc.poll() is not None:
            break
        time.sleep(0.05)
    assert (flags / "ready").exists(), proc.communicate()
    return proc


def _release(tmp_path: Path, proc: subprocess.Popen) -> tuple[int, str]:
    (tmp_path / "flags" / "go").touch()
    _, err = proc.communicate(timeout=600)
    return proc.returncode, err


def test_preprocess_overwrite_of_a_dataset_that_train_reads_is_refused_naming_it(tiny_dataset, raw, tmp_path, capsys):
    ds = Path(shutil.copytree(tiny_dataset, tmp_path / "ds", symlinks=True))
    cfg = tmp_path / "pre.yaml"
    cfg.write_text(PRETRAIN)
    proc = _paused_command(tmp_path, "graphevent.train.engine", "Trainer._optimizer_step",
                           "target.Trainer._optimizer_step = paused",
                           ["train", "-c", cfg, "-d", ds, "-o", tmp_path / "run", "--no-progress", "--gpus", "0"])
    try:
        before = snapshot(ds)
        one_line_error(capsys, ["preprocess", raw, "-c", ds / "data_config.yaml", "-o", ds, "--overwrite"],
                       f"{ds} is in use by process {proc.pid} (reading it)")
        assert_kept(before, ds)
    finally:
        code, err = _release(tmp_path, proc)
    assert code == 0, err


def test_two_predicts_into_one_file_the_second_is_refused(runs, raw, tmp_path, capsys):
    out = tmp_path / "p.parquet"
    proc = _paused_command(tmp_path, "graphevent.evaluate.predict", "_chunk_columns", "target._chunk_columns = paused",
                           ["predict", runs["mt"], "-i", raw, "-o", out, "--no-progress", "--device", "cpu"])
    try:
        one_line_error(capsys, ["predict", runs["mt"], "-i", raw, "-o", out, "--no-progress", "--overwrite"],
                       f"p.parquet is in use by process {proc.pid}")
    finally:
        code, err = _release(tmp_path, proc)
    assert code == 0, err
    assert signature(out) == "predictions"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["flags", "p.parquet"]
