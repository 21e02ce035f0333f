#!/usr/bin/env python
"""Training throughput of ``graphevent train``: events/s per experiment config and worker count.

For every experiment config (default: all of ``graphevent/configs/experiments/*.yaml``) the real
training path (:func:`graphevent.train.run.train`: DataLoader, DDP, optimizer, validation)
runs on a small synthetic dataset, once per worker count (``--nproc 1 2`` CPU processes
with gloo, or ``--gpus 1 N`` with NCCL when ``--device cuda``). The figure reported is the
``events_per_s`` of the last epoch in ``metrics.jsonl`` (training steps only, all workers
together; the first epoch carries start-up costs), and the scaling ratio
``events/s(N workers) / events/s(1 worker)``.

For one worker it also prints how close the loop comes to the model itself: the
forward+backward rate of the same model (built from the same config, same ``--amp``) on the
same train events cut into batches of the same size, timed like ``scripts/bench_models.py``
(``zero_grad``, autocast, ``loss``, ``backward``; no optimizer, no data loading), and the
ratio ``loop / forward+backward`` (the issue's goal on a GPU: >= 0.85). What the loop adds:
DataLoader and collation, the host-to-device copy, the optimizer step, logging; validation
is outside the figure (``events_per_s`` counts training steps only).

The machine (CPU model and cores, GPU name) is printed with the results. Note: on a
machine with fewer cores than ``workers x torch threads``, the workers compete for cores
and the CPU scaling ratio says more about the machine than about the code.

Examples::

    python scripts/bench_train.py                                  # CPU, 1 and 2 processes, ~minutes
    python scripts/bench_train.py --configs graphevent/configs/experiments/particlenet.yaml --events 512
    python scripts/bench_train.py --device cuda --gpus 1 4 --events 4096 --batch-size 128
    python scripts/bench_train.py --device cuda --gpus 1 --amp --events 20000 --batch-size 128 \
        --epochs 3 --num-workers 4 --in-memory           # loop vs forward+backward on a GPU
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


def loop_overrides(args) -> list[str]:
    """``--set`` overrides of every benchmark run (also used to build the forward+backward model)."""
    amp = "bf16" if args.amp else "'off'"  # quoted: YAML reads a bare off as false
    overrides = [f"train.epochs={args.epochs}", "train.early_stopping_patience=0", f"train.num_workers={args.num_workers}",
                 "train.init_from=", "train.label_fraction=1.0", f"train.amp={amp}",
                 f"train.in_memory={str(args.in_memory).lower()}"]
    if args.batch_size:
        overrides.append(f"train.batch_size={args.batch_size}")
    return overrides


def run_one(config: Path, data: Path, out: Path, workers: int, device: str, overrides: list[str]) -> dict:
    from graphevent.train.run import TrainOptions, train

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


def step_rate(config: Path, data: Path, overrides: list[str], args) -> float:
    """Forward+backward events/s of the config's model on the train events, in batches of
    the loop's size, timed as ``scripts/bench_models.py`` times a step (one warm-up pass)."""
    import torch

    from graphevent.config.experiment import load_experiment
    from graphevent.data.dataset import GraphDataset
    from graphevent.nn.registry import build_model
    from graphevent.nn.tasks import check_tasks
    from graphevent.train.engine import collate_graphs

    cfg = load_experiment(config, overrides)
    train_set = GraphDataset(data, "train", verify=False, in_memory=True)
    info = train_set.info
    tasks = check_tasks(cfg.tasks, info) if cfg.trains_tasks else []
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.model, info, tasks or None).to(args.device).train()
    size = cfg.train.batch_size
    batches = [collate_graphs([train_set[j] for j in range(i, min(i + size, len(train_set)))]).to(args.device)
               for i in range(0, len(train_set), size)]
    device_type = torch.device(args.device).type

    def one_pass() -> None:
        for batch in batches:
            model.zero_grad(set_to_none=True)
            with torch.autocast(device_type, dtype=torch.bfloat16, enabled=args.amp):
                loss, _ = model.loss(batch, cfg.stage)
            loss.backward()

    one_pass()  # warm-up
    if device_type == "cuda":
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(args.step_rounds):
        one_pass()
    if device_type == "cuda":
        torch.cuda.synchronize()
    return args.step_rounds * len(train_set) / (time.perf_counter() - t0)


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
    parser.add_argument("--amp", action="store_true", help="bf16 autocast in the loop and in forward+backward (train.amp=bf16; default off)")
    parser.add_argument("--num-workers", type=int, default=0, help="DataLoader processes per training process (default 0)")
    parser.add_argument("--in-memory", action="store_true", help="train.in_memory=true: splits decompressed into RAM first")
    parser.add_argument("--step-rounds", type=int, default=3, help="timed passes over the train batches for forward+backward (default 3)")
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
        overrides = loop_overrides(args)
        for config in args.configs:
            base = None
            for n in workers:
                if args.device == "cpu":
                    torch.set_num_threads(args.threads)  # a single worker runs in this process
                    os.environ["OMP_NUM_THREADS"] = str(max(1, args.threads // n))  # spawned workers
                res = run_one(config, data, Path(tmp) / f"run-{config.stem}-{n}", n, args.device, overrides)
                base = res["events_per_s"] if base is None else base
                row = {"config": config.stem, "device": args.device, "workers": n, **res,
                       "scaling": res["events_per_s"] / base if base else float("nan")}
                if n == 1:
                    torch.set_num_threads(args.threads)
                    row["step_events_per_s"] = step_rate(config, data, overrides, args)
                    row["loop_over_step"] = res["events_per_s"] / row["step_events_per_s"]
                rows.append(row)
                console.print(f"  {config.stem:24s} {args.device} x{n}: {res['events_per_s']:8.1f} events/s"
                              + (f"; forward+backward {row['step_events_per_s']:.1f} events/s, loop/fwd+bwd "
                                 f"{row['loop_over_step']:.2f}" if n == 1 else ""))
    table = Table(title=f"graphevent train throughput ({args.device}, amp {'bf16' if args.amp else 'off'}, batch "
                        f"{args.batch_size or 'config'} per worker, last of {args.epochs} epochs)")
    for col in ("config", "workers", "events/s", "scaling vs 1", "fwd+bwd events/s", "loop / fwd+bwd", "epoch s", "wall s"):
        table.add_column(col, justify="left" if col == "config" else "right")
    for r in rows:
        step = r.get("step_events_per_s")
        table.add_row(r["config"], str(r["workers"]), f"{r['events_per_s']:.1f}", f"{r['scaling']:.2f}",
                      "" if step is None else f"{step:.1f}", "" if step is None else f"{r['loop_over_step']:.2f}",
                      f"{r['epoch_s']:.2f}", f"{r['wall_s']:.1f}")
    console.print(table)
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(args.device), "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
