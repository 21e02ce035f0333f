#!/usr/bin/env python
"""Training throughput of ``graphevent train``: events/s per experiment config and worker count.

For every experiment config (default: all of ``graphevent/configs/experiments/*.yaml``) the real
training path (:func:`graphevent.train.run.train`: DataLoader, DDP, optimizer, validation)
runs on a small synthetic dataset, once per worker count (``--nproc 1 2`` CPU processes
with gloo, or ``--gpus 1 N`` with NCCL when ``--device cuda``). The figure reported is the
``events_per_s`` of the last epoch in ``metrics.jsonl`` (training steps only, all workers
together; the first epoch carries start-up costs), and the scaling ratio
``events/s(N workers) / events/s(1 worker)``.

The machine (CPU model and cores, GPU name) is printed with the results. Note: on a
machine with fewer cores than ``workers x torch threads``, the workers compete for cores
and the CPU scaling ratio says more about the machine than about the code.

Examples::

    python scripts/bench_train.py                                  # CPU, 1 and 2 processes, ~minutes
    python scripts/bench_train.py --configs graphevent/configs/experiments/particlenet.yaml --events 512
    python scripts/bench_train.py --device cuda --gpus 1 4 --events 4096 --batch-size 128
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine(device: str) -> str:
    import torch

    from graphevent.train.rundir import cpu_name

    text = f"CPU: {cpu_name()}, {os.cpu_count()} cores; torch {torch.__version__}"
    if device == "cuda" and torch.cuda.is_available():
        names = sorted({torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())})
        text += f"; GPU: {', '.join(names)} x{torch.cuda.device_count()} (CUDA {torch.version.cuda})"
    return text


def run_one(config: Path, data: Path, out: Path, workers: int, device: str, epochs: int, batch_size: int | None) -> dict:
    from graphevent.train.run import TrainOptions, train

    overrides = [f"train.epochs={epochs}", "train.early_stopping_patience=0", "train.num_workers=0",
                 "train.init_from=", "train.label_fraction=1.0"]
    if batch_size:
        overrides.append(f"train.batch_size={batch_size}")
    opts = TrainOptions(
        data=data, out=out, config=config, overrides=tuple(overrides),
        gpus=workers if device == "cuda" else 0, nproc=1 if device == "cuda" else workers,
        overwrite=True, progress=False,
    )
    t0 = time.perf_counter()
    result = train(opts)
    last = result.epochs[-1]
    return {"events_per_s": last["events_per_s"], "epoch_s": last["time_s"], "wall_s": time.perf_counter() - t0,
            "train_loss": last["train_loss"]}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="*", type=Path, default=sorted((ROOT / "graphevent" / "configs" / "experiments").glob("*.yaml")))
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--nproc", nargs="*", type=int, default=[1, 2], help="CPU worker counts")
    parser.add_argument("--gpus", nargs="*", type=int, default=[1], help="GPU worker counts (--device cuda)")
    parser.add_argument("--events", type=int, default=192, help="events in the synthetic dataset (60%% train)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=32, help="events per worker per batch (0: the config's)")
    parser.add_argument("--k", type=int, default=16, help="kNN k of the synthetic dataset (the configs use 16)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1,
                        help="CPU threads in total: one worker uses all, N workers threads/N each")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    import torch
    from rich.console import Console
    from rich.table import Table

    from graphevent.data.testing import make_tiny_dataset

    console = Console()
    console.print(machine(args.device) + (f"; {args.threads} CPU threads in total" if args.device == "cpu" else ""))
    workers = args.gpus if args.device == "cuda" else args.nproc
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        data = make_tiny_dataset(Path(tmp) / "ds", n_events=args.events, seed=0, k=args.k)
        n_train = json.loads((data / "manifest.json").read_text())["splits"]["train"]
        console.print(f"dataset: {args.events} synthetic events ({n_train} train), k={args.k}, built in {time.perf_counter() - t0:.1f} s")
        for config in args.configs:
            base = None
            for n in workers:
                if args.device == "cpu":
                    torch.set_num_threads(args.threads)  # a single worker runs in this process
                    os.environ["OMP_NUM_THREADS"] = str(max(1, args.threads // n))  # spawned workers
                res = run_one(config, data, Path(tmp) / f"run-{config.stem}-{n}", n, args.device, args.epochs, args.batch_size or None)
                base = res["events_per_s"] if base is None else base
                rows.append({"config": config.stem, "device": args.device, "workers": n, **res,
                             "scaling": res["events_per_s"] / base if base else float("nan")})
                console.print(f"  {config.stem:24s} {args.device} x{n}: {res['events_per_s']:8.1f} events/s")
    table = Table(title=f"graphevent train throughput ({args.device}, batch {args.batch_size or 'config'} per worker, last of {args.epochs} epochs)")
    for col in ("config", "workers", "events/s", "scaling vs 1", "epoch s", "wall s"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for r in rows:
        table.add_row(r["config"], str(r["workers"]), f"{r['events_per_s']:.1f}", f"{r['scaling']:.2f}",
                      f"{r['epoch_s']:.2f}", f"{r['wall_s']:.1f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(args.device), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
