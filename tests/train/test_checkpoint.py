"""Checkpoint files: atomic checksummed writes, verified weights_only loading, RNG states, clear errors."""

from __future__ import annotations

import hashlib
import os
import random
import re
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from graphevent.errors import RunError
import graphevent.nn.checkpoint as ckpt
from graphevent.nn.checkpoint import encoder_source, record_path, verify_checkpoint
from graphevent.nn.checkpoint import checkpoint_path, load_checkpoint, rng_state, save_checkpoint, set_rng_state


def test_save_is_atomic_and_loads_weights_only(tmp_path):
    state = {"model": OrderedDict(w=torch.arange(4.0)), "epoch": 2, "rng": rng_state(), "tasks": [{"name": "label"}]}
    path = tmp_path / "checkpoints" / "last.pt"
    save_checkpoint(state, path)
    assert sorted(p.name for p in path.parent.iterdir()) == ["last.pt", "last.pt.sha256"]  # no temporary file left
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert record_path(path).read_text() == f"{digest}  last.pt\n"  # sha256sum -c format
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["model"]["w"], torch.arange(4.0)) and loaded["epoch"] == 2


def test_rng_state_round_trip():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), random.random())
    set_rng_state(state)
    second = (torch.rand(3), np.random.rand(3), random.random())
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]


class NotPlainData:
    """An arbitrary class: pickling it makes a checkpoint that weights_only loading must refuse."""


def test_refuses_pickled_objects_and_corrupt_files(tmp_path):
    evil = tmp_path / "evil.pt"
    torch.save({"model": {}, "payload": NotPlainData()}, evil)
    with pytest.raises(RunError, match="evil.pt: not a loadable graphevent checkpoint"):
        load_checkpoint(evil)
    broken = tmp_path / "broken.pt"
    broken.write_bytes(b"PK\x03\x04 truncated")
    with pytest.raises(RunError, match="broken.pt: not a loadable graphevent checkpoint"):
        load_checkpoint(broken)
    with pytest.raises(RunError, match="missing.pt: checkpoint not found"):
        load_checkpoint(tmp_path / "missing.pt")


def test_checkpoint_path_of_run_dirs(tmp_path):
    (tmp_path / "run" / "checkpoints").mkdir(parents=True)
    (tmp_path / "run" / "checkpoints" / "last.pt").write_bytes(b"")
    assert checkpoint_path(tmp_path / "run", "last").name == "last.pt"
    with pytest.raises(RunError, match="no checkpoints/best.pt"):
        checkpoint_path(tmp_path / "run", "best")


def weights(value: float) -> dict:
    """A checkpoint state whose tensor data is 4 kB."""
    return {"model": OrderedDict(w=torch.full((1000,), value)), "epoch": int(value)}


def changed(path: Path) -> str:
    return f"^{re.escape(str(path))}: checksum does not match the one recorded when it was written " \
           f"\\({re.escape(str(path))}\\.sha256\\); the file was changed or damaged$"


def test_flipped_bytes_are_refused_with_or_without_a_record(tmp_path, flip_bytes):
    path = tmp_path / "best.pt"
    save_checkpoint(weights(1.0), path)
    assert flip_bytes(path) == "archive/data/0"
    damaged = torch.load(path, weights_only=True)["model"]["w"]  # torch.load itself does not notice
    assert int((damaged != 1.0).sum()) == 2  # 8 bytes: two float32 values changed
    with pytest.raises(RunError, match=changed(path)):
        load_checkpoint(path)

    old = tmp_path / "old.pt"  # as written before checksums were recorded: no record, zip CRC32 checked
    with open(old, "wb") as f:
        torch.save(weights(2.0), f)
    assert not record_path(old).exists() and load_checkpoint(old)["epoch"] == 2
    flip_bytes(old)
    with pytest.raises(RunError, match=f"^{re.escape(str(old))}: zip entry 'archive/data/0' fails its CRC32 check "
                                       r"\(no checksum record old.pt.sha256 to compare with: written before graphevent "
                                       r"recorded them\); the file was changed or damaged$"):
        load_checkpoint(old)


def test_replaced_truncated_and_removed_checkpoints(tmp_path):
    path = tmp_path / "best.pt"
    save_checkpoint(weights(1.0), path)
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])  # truncated
    with pytest.raises(RunError, match=changed(path)):
        load_checkpoint(path)
    torch.save(weights(1.0), path)  # a valid checkpoint, but not the one written here (other name inside)
    with pytest.raises(RunError, match=changed(path)):
        load_checkpoint(path)
    path.write_text("not a checkpoint")  # a foreign file
    with pytest.raises(RunError, match=changed(path)):
        load_checkpoint(path)
    path.unlink()
    with pytest.raises(RunError, match=f"^{re.escape(str(path))}: checkpoint not found, but "
                                       f"{re.escape(str(path))}.sha256 records that it was written; "
                                       "the file was removed or renamed$"):
        load_checkpoint(path)

    old = tmp_path / "old.pt"  # no record: the zip structure is what is checked
    old.write_bytes(good[: len(good) // 2])
    with pytest.raises(RunError, match=f"^{re.escape(str(old))}: not a loadable graphevent checkpoint "
                                       r"\(not a readable zip archive, as torch checkpoints are: File is not a zip file\)$"):
        load_checkpoint(old)
    old.write_text("not a checkpoint")
    with pytest.raises(RunError, match="old.pt: not a loadable graphevent checkpoint"):
        load_checkpoint(old)


def test_an_edited_record_is_refused(tmp_path):
    path = tmp_path / "last.pt"
    save_checkpoint(weights(1.0), path)
    record = record_path(path)
    record.write_text(f"{'0' * 64}  last.pt\n")  # another digest
    with pytest.raises(RunError, match=changed(path)):
        load_checkpoint(path)
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    for text in ("", f"{digest[:-1]}  last.pt\n", f"{digest.upper()}  last.pt\n", "garbage\n"):
        record.write_text(text)
        with pytest.raises(RunError, match=f"^{re.escape(str(record))}: not a checksum record of last.pt "
                                           r"\(expected lines '<64 hex digits>  last.pt'\); the record was changed or damaged$"):
            load_checkpoint(path)
    record.write_text(f"{digest}  last.pt\n")  # restored: loads again
    assert load_checkpoint(path)["epoch"] == 1


@pytest.mark.parametrize("crash_at", [1, 2, 3])
def test_a_crash_during_a_save_leaves_a_checkpoint_that_loads(tmp_path, monkeypatch, crash_at):
    """The renames of a save replacing a checkpoint: 1 the record listing both digests, 2 the
    checkpoint, 3 the record listing the new one; a crash before rename ``crash_at``."""
    path = tmp_path / "last.pt"
    save_checkpoint(weights(1.0), path)
    renames = []
    real_replace = os.replace

    def replace(src, dst):
        renames.append(Path(dst).name)
        if len(renames) == crash_at:
            raise KeyboardInterrupt  # the process dies here
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(weights(2.0), path)
    monkeypatch.undo()
    assert renames == ["last.pt.sha256", "last.pt", "last.pt.sha256"][:crash_at]
    assert load_checkpoint(path)["epoch"] == (1 if crash_at <= 2 else 2)
    assert len(record_path(path).read_text().splitlines()) == (1 if crash_at == 1 else 2)
    save_checkpoint(weights(3.0), path)  # the next save (temporary files of the crash aside) ends with one digest
    assert load_checkpoint(path)["epoch"] == 3 and len(record_path(path).read_text().splitlines()) == 1


def test_first_save_interrupted_before_its_record_loads_like_an_old_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    real_replace = os.replace

    def replace(src, dst):
        if Path(dst).name.endswith(".sha256"):
            raise KeyboardInterrupt
        real_replace(src, dst)

    monkeypatch.setattr(ckpt.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        save_checkpoint(weights(1.0), path)
    monkeypatch.undo()
    assert not record_path(path).exists() and load_checkpoint(path)["epoch"] == 1


def test_a_save_overlapping_a_read_is_not_a_mismatch(tmp_path, monkeypatch):
    """``eval`` while the run trains: the checkpoint read is replaced, with its record, before
    the record is read again."""
    path = tmp_path / "best.pt"
    save_checkpoint(weights(1.0), path)
    real_read = Path.read_bytes
    saves = []

    def read_then_save(self):
        data = real_read(self)
        if self == path and not saves:
            saves.append(1)
            save_checkpoint(weights(2.0), path)
        return data

    monkeypatch.setattr(Path, "read_bytes", read_then_save)
    assert load_checkpoint(path)["epoch"] == 1  # the bytes read: the old checkpoint, listed by the first record
    assert saves == [1] and load_checkpoint(path)["epoch"] == 2


def test_a_removed_best_is_never_replaced_by_last(tmp_path):
    run = tmp_path / "run"
    for name in ("best", "last"):
        save_checkpoint(weights(1.0), run / "checkpoints" / f"{name}.pt")
    assert encoder_source(run) == run / "checkpoints" / "best.pt"
    (run / "checkpoints" / "best.pt").unlink()
    best = run / "checkpoints" / "best.pt"
    message = f"^{re.escape(str(best))}: checkpoint not found, but {re.escape(str(best))}.sha256 records that it was written"
    with pytest.raises(RunError, match=message):
        encoder_source(run)
    with pytest.raises(RunError, match=message):
        checkpoint_path(run, "best")
    record_path(best).unlink()  # a run that never wrote best.pt: last.pt
    assert encoder_source(run) == run / "checkpoints" / "last.pt"
    assert verify_checkpoint(run / "checkpoints" / "last.pt") == (run / "checkpoints" / "last.pt").read_bytes()
