"""Checkpoints are checked (issue 23): every command that loads one refuses a changed file.

8 bytes inverted inside a tensor's data in ``best.pt`` (or ``last.pt``), which torch.load
does not notice: predict, export, eval, probe, ``train --resume`` and ``train --init-from``
each exit 2 with one line naming the file, change nothing, and work again once the file is
restored. A run written before checksums were recorded still loads (its zip CRC32s checked).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from graphevent.cli.app import main
from tree_snapshot import snapshot

MULTITASK = """
stage: {stage}
name: mt
model:
  name: multitask
  encoders: [masked_gt]
  dim: 16
  heads: 2
  head_hidden: 16
  masked_gt: {{dim: 16, depth: 1, heads: 2, edge_dim: 8, k: 4, decoder_dim: 8}}
tasks:
  - {{name: label, type: classification}}
train: {{epochs: 1, batch_size: 32}}
"""


@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_dataset):
    """A finished one-epoch multitask run and a fine-tuning config for ``--init-from``."""
    root = tmp_path_factory.mktemp("checked")
    (root / "mt.yaml").write_text(MULTITASK.format(stage="supervised"))
    (root / "ft.yaml").write_text(MULTITASK.format(stage="finetune"))
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "-c", str(root / "mt.yaml"), "-d", str(tiny_dataset), "-o", str(root / "run"), "--no-progress"]) == 0
    finally:
        torch.set_num_threads(before)
    return root


def epochs(run: Path) -> int:
    return len((run / "metrics.jsonl").read_text().splitlines())


def command(name: str, run: Path, data: Path, tmp: Path, config: Path) -> tuple[list, Callable[[], bool]]:
    """The command line of ``name`` on ``run``, and whether it has done its work."""
    raw = data.parent / f"{data.name}-raw.h5"
    return {
        "predict": (["predict", run, "--input", raw, "--out", tmp / "pred.parquet"], (tmp / "pred.parquet").is_file),
        "export": (["export", run, "--format", "torchscript", "--out", tmp / "model.pt"], (tmp / "model.pt").is_file),
        "eval": (["eval", run, "-d", data, "--bootstrap", "0", "--out", tmp / "eval"], (tmp / "eval" / "metrics.json").is_file),
        "probe": (["probe", run, "-d", data, "--pool-events", "40", "--out", tmp / "probes.json"], (tmp / "probes.json").is_file),
        "train --resume": (["train", "-o", run, "--resume", "--epochs", "2", "--no-progress"], lambda: epochs(run) == 2),
        "train --init-from": (["train", "-c", config, "-d", data, "-o", tmp / "ft", "--init-from", run, "--no-progress"],
                              (tmp / "ft" / "checkpoints" / "last.pt").is_file),
    }[name]


def error_line(capsys, args: list) -> str:
    """Run the CLI: exit 2 and exactly one error line, no traceback."""
    code = main([str(a) for a in args])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("error:")]
    assert code == 2 and len(lines) == 1 and "Traceback" not in err, err
    return lines[0].removeprefix("error: ")


COMMANDS = ["predict", "export", "eval", "probe", "train --resume", "train --init-from"]


@pytest.mark.parametrize("name", COMMANDS)
def test_flipped_bytes_in_best_are_refused_then_the_restored_run_works(name, trained, tiny_dataset, tmp_path, capsys,
                                                                       flip_bytes, one_torch_thread):
    run = Path(shutil.copytree(trained / "run", tmp_path / "run"))
    best = run / "checkpoints" / "best.pt"
    good = best.read_bytes()
    flip_bytes(best)
    args, done = command(name, run, tiny_dataset, tmp_path, trained / "ft.yaml")
    before = snapshot(run)
    line = error_line(capsys, args)
    assert line == (f"{best}: checksum does not match the one recorded when it was written ({best}.sha256); "
                    "the file was changed or damaged")
    assert snapshot(run) == before and not done() and sorted(p.name for p in tmp_path.iterdir()) == ["run"]
    best.write_bytes(good)
    assert main([str(a) for a in args]) == 0, capsys.readouterr().err
    assert done()


def test_resume_refuses_a_changed_last(trained, tmp_path, capsys, flip_bytes, one_torch_thread):
    run = Path(shutil.copytree(trained / "run", tmp_path / "run"))
    last = run / "checkpoints" / "last.pt"
    flip_bytes(last)
    before = snapshot(run)
    line = error_line(capsys, ["train", "-o", run, "--resume", "--epochs", "2", "--no-progress"])
    assert line == (f"{last}: checksum does not match the one recorded when it was written ({last}.sha256); "
                    "the file was changed or damaged")
    assert snapshot(run) == before


def test_a_run_written_before_checksums_loads_and_its_crcs_are_checked(trained, tiny_dataset, tmp_path, capsys,
                                                                       flip_bytes, one_torch_thread):
    run = Path(shutil.copytree(trained / "run", tmp_path / "run"))
    records = sorted(p.name for p in (run / "checkpoints").glob("*.sha256"))
    assert records == ["best.pt.sha256", "last.pt.sha256"]
    for name in records:
        (run / "checkpoints" / name).unlink()  # as an earlier graphevent left it
    args, done = command("eval", run, tiny_dataset, tmp_path, trained / "ft.yaml")
    assert main([str(a) for a in args]) == 0 and done()

    resumed = Path(shutil.copytree(run, tmp_path / "resumed"))
    assert main(["train", "-o", resumed, "--resume", "--epochs", "2", "--no-progress"]) == 0
    assert (resumed / "checkpoints" / "last.pt.sha256").is_file()  # written with the new last.pt

    best = run / "checkpoints" / "best.pt"
    entry = flip_bytes(best)
    assert entry.startswith("archive/data/")
    args, _ = command("predict", run, tiny_dataset, tmp_path, trained / "ft.yaml")
    line = error_line(capsys, args)
    assert line == (f"{best}: zip entry {entry!r} fails its CRC32 check (no checksum record best.pt.sha256 "
                    "to compare with: written before graphevent recorded them); the file was changed or damaged")
