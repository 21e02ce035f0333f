"""graphevent.utils.outdir: the marker, --overwrite removing only listed files, the lock."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import graphevent
from graphevent.errors import OutputError
from graphevent.utils.outdir import LOCK, MARKER, OutputDir, read_marker
from tree_snapshot import assert_kept, snapshot

REPO = Path(graphevent.__file__).resolve().parent.parent


def _output(path: Path, kind: str = "run", complete: bool = True) -> Path:
    """A finished output: a.txt and sub/b.txt, listed in its marker."""
    od = OutputDir(path, kind).acquire()
    od.start(["a.txt", "sub"])
    (path / "a.txt").write_text("a")
    (path / "sub").mkdir()
    (path / "sub" / "b.txt").write_text("b")
    if complete:
        od.complete()
    od.release()
    return path


def test_marker_lists_kind_id_version_and_every_file(tmp_path):
    out = _output(tmp_path / "run")
    m = json.loads((out / MARKER).read_text())
    assert m["kind"] == "run" and m["status"] == "complete" and m["graphevent_version"] == graphevent.__version__
    assert len(m["id"]) == 32 and int(m["id"], 16) >= 0
    assert m["entries"] == ["a.txt", "sub"] and m["files"] == ["a.txt", "sub/b.txt"]
    assert (out / LOCK).read_text() == f"{os.getpid()}\n"


def test_overwrite_removes_only_listed_files(tmp_path):
    out = _output(tmp_path / "run")
    od = OutputDir(out, "run").acquire()
    od.clear()
    od.release()
    assert sorted(p.name for p in out.iterdir()) == [MARKER, LOCK]  # a.txt and sub/ gone, the directory kept


@pytest.mark.parametrize("where", ["notes.txt", "sub/notes.txt"])
def test_overwrite_refuses_anything_unlisted(tmp_path, where):
    out = _output(tmp_path / "run")
    (out / where).write_text("mine")
    before = snapshot(out)
    od = OutputDir(out, "run").acquire()
    with pytest.raises(OutputError, match=rf"--out {out}: {where} was not written by graphevent \(not listed in .graphevent.json\); refusing to overwrite"):
        od.clear()
    od.release()
    assert_kept(before, out)


def test_interrupted_output_is_removed_with_its_temporary_files(tmp_path):
    out = _output(tmp_path / "run", complete=False)  # status "writing": a crash left it
    (out / ".a.txt.tmp4242").write_text("half")
    (out / "sub" / "c.txt").write_text("c")
    (out / "zz.txt").write_text("mine")
    od = OutputDir(out, "run").acquire()
    with pytest.raises(OutputError, match="zz.txt was not written by graphevent"):
        od.clear()
    (out / "zz.txt").unlink()
    od.clear()
    od.release()
    assert sorted(p.name for p in out.iterdir()) == [MARKER, LOCK]


def test_symlinks_are_refused_and_never_followed(tmp_path):
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "thesis.tex").write_text("years of work")
    out = _output(tmp_path / "run")
    link = tmp_path / "link"
    link.symlink_to(out)
    with pytest.raises(OutputError, match=rf"--out {link}: is a symbolic link \(to {out}\); give the real directory path"):
        OutputDir(link, "run").acquire()
    # a listed folder replaced by a link to the user's files
    import shutil

    shutil.rmtree(out / "sub")
    (out / "sub").symlink_to(precious)
    before = snapshot(tmp_path)
    od = OutputDir(out, "run").acquire()
    with pytest.raises(OutputError, match=r": sub was not written by graphevent"):
        od.clear()
    od.release()
    assert_kept(before, tmp_path)


def test_unmarked_directory_is_refused_with_how_to_proceed(tmp_path):
    old = tmp_path / "old-run"
    old.mkdir()
    (old / "config.yaml").write_text("stage: pretrain\n")
    (old / "src").mkdir()
    (old / "src" / "model.py").write_text("import torch\n")
    before = snapshot(old)
    msg = (rf"--out {old}: holds config.yaml and other files but no .graphevent.json marker of graphevent output, "
           r"so nothing there is replaced or deleted; if it is the output of an earlier graphevent version, "
           r"check it and delete it yourself; otherwise choose another --out")
    with pytest.raises(OutputError, match=msg):
        OutputDir(old, "run").acquire()
    assert_kept(before, old)
    assert not (old / LOCK).exists()  # refused before anything was written there


def test_other_kind_is_refused(tmp_path):
    out = _output(tmp_path / "run")
    before = snapshot(out)
    with pytest.raises(OutputError, match=r"holds a graphevent run \(.graphevent.json kind 'run'\), not graphevent eval output; refusing to write there"):
        OutputDir(out, "eval").acquire()
    assert_kept(before, out)


def test_file_at_the_path_is_refused(tmp_path):
    f = tmp_path / "results.txt"
    f.write_text("keep")
    with pytest.raises(OutputError, match=r"results.txt: exists and is a file; expected a directory"):
        OutputDir(f, "eval").acquire()
    assert f.read_text() == "keep"


def test_path_that_cannot_be_created_is_one_error(tmp_path):
    f = tmp_path / "file"
    f.write_text("keep")
    with pytest.raises(OutputError, match=rf"--out {f}/out: cannot create the directory \(Not a directory\)"):
        OutputDir(f / "out", "dataset").acquire()
    assert f.read_text() == "keep"


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories; covered by a path under a file")
def test_read_only_directory_is_one_error(tmp_path):
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        with pytest.raises(OutputError, match=r"cannot (write in|create) the directory \(Permission denied\)"):
            OutputDir(ro / "out", "dataset").acquire()
        with pytest.raises(OutputError, match=r"cannot write in the directory \(Permission denied\)"):
            OutputDir(ro, "dataset").acquire()
    finally:
        ro.chmod(0o755)


def test_input_inside_the_output_is_refused(tmp_path):
    out = _output(tmp_path / "ds", kind="dataset")
    raw = out / "sub" / "b.txt"
    before = snapshot(out)
    with pytest.raises(OutputError, match=rf"input {raw} is inside the output directory; choose another --out"):
        OutputDir(out, "dataset", inputs=[raw]).acquire()
    assert_kept(before, out)


def test_the_current_directory_is_never_deleted(tmp_path, monkeypatch):
    out = _output(tmp_path / "run")
    monkeypatch.chdir(out / "sub")
    before = snapshot(out)
    od = OutputDir(Path(".."), "run").acquire()
    with pytest.raises(OutputError, match=rf"--out ..: sub holds {out / 'sub'}, which is never deleted; refusing to overwrite"):
        od.clear()
    od.release()
    assert_kept(before, out)


def test_nested_output_is_removed_by_its_own_rules(tmp_path):
    run = _output(tmp_path / "run")
    _output(run / "eval-test", kind="eval")
    (run / "eval-test" / "notes.txt").write_text("mine")
    before = snapshot(run)
    od = OutputDir(run, "run").acquire()
    with pytest.raises(OutputError, match="eval-test/notes.txt was not written by graphevent"):
        od.clear()
    assert_kept(before, run)
    (run / "eval-test" / "notes.txt").unlink()
    od.clear()
    od.release()
    assert sorted(p.name for p in run.iterdir()) == [MARKER, LOCK]


HOLDER = """
import sys
from graphevent.utils.outdir import OutputDir
od = OutputDir(sys.argv[1], "run").acquire()
od.start(["a.txt"])
print("locked", flush=True)
sys.stdin.read()  # hold the lock until the test closes the pipe
"""


def test_directory_in_use_is_refused_and_freed_when_the_holder_exits(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen([sys.executable, "-c", HOLDER, str(out)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                              text=True, env={**os.environ, "PYTHONPATH": str(REPO)})
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(OutputError, match=rf"^{out} is in use by process {holder.pid}; wait for it to finish or choose another --out$"):
            OutputDir(out, "run").acquire()
    finally:
        holder.stdin.close()
        assert holder.wait(timeout=60) == 0
    od = OutputDir(out, "run").acquire()  # the kernel released the lock with the process
    assert read_marker(out)["status"] == "writing"
    od.release()


def test_abandon_removes_exactly_what_this_process_made(tmp_path):
    (tmp_path / "keep.txt").write_text("keep")
    before = snapshot(tmp_path)
    od = OutputDir(tmp_path / "new" / "run", "run").acquire()
    od.start(["a.txt", "sub"])
    (tmp_path / "new" / "run" / "a.txt").write_text("a")
    od.abandon()
    assert snapshot(tmp_path) == before  # new/ and new/run/ were made by it: gone too

    out = _output(tmp_path / "old")
    before = snapshot(out)
    od = OutputDir(out, "run").acquire()
    od.start(["extra"])
    (out / "extra").mkdir()
    od.abandon()
    assert snapshot(out) == before  # the earlier output and its marker as they were


def test_invalid_marker_is_refused(tmp_path):
    out = _output(tmp_path / "run")
    m = json.loads((out / MARKER).read_text())
    m["entries"] = ["../elsewhere"]
    (out / MARKER).write_text(json.dumps(m))
    with pytest.raises(OutputError, match=r"run/.graphevent.json: not a valid graphevent marker"):
        OutputDir(out, "run").acquire()
