"""Does pretraining pay? Fine-tune scratch vs pretrained encoders at few labels; print test AUCs.

For every arm (an initialisation and a fine-tuning recipe), label fraction and label seed,
runs ``graphevent train`` with the fine-tuning config, then scores ``checkpoints/best.pt``
on the test split (AUC of the signal class, index 1). Prints one line per run, then the
mean and standard deviation over seeds and the paired difference to the ``scratch`` arm
(same seeds), and appends every run to ``--out`` (JSON lines) so an interrupted study
continues where it stopped.

Example (the CPU study of docs/pretraining_study.md; pretraining runs made beforehand)::

    python scripts/pretraining_study.py --data /tmp/qg48 --runs /tmp/runs \\
        --arm scratch: --arm mae:/tmp/runs/mae --arm clr:/tmp/runs/clr \\
        --arm clr_keep:/tmp/runs/clr:keep --fractions 0.01 0.1 --seeds 0 1 2 \\
        --set model.masked_gt.dim=32 --set model.masked_gt.depth=2 --set model.masked_gt.k=8

An arm is ``NAME:INIT_RUN[:keep]`` (empty INIT_RUN: from scratch); ``keep`` fine-tunes with
``train.encoder_lr_scale=0.1`` and ``train.encoder_frozen_epochs=2``. ``--vary-init`` also sets
the experiment seed to the label seed, so seeds differ in initialisation and shuffling as well
(at fraction 1 every seed draws the same subset). To compare model variants (e.g.
``model.fusion``), run the script once per variant with its own ``--set``, ``--runs`` and ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

KEEP = ["train.encoder_lr_scale=0.1", "train.encoder_frozen_epochs=2"]


def test_auc(run_dir: Path, data: Path) -> float:
    import torch
    from torch_geometric.data import Batch

    from graphevent.data.dataset import GraphDataset
    from graphevent.metrics.roc import binary_auc
    from graphevent.train.checkpoint import load_run

    model, _, _ = load_run(run_dir, "best")
    ds = GraphDataset(data, "test")
    scores, labels = [], []
    with torch.no_grad():
        for s in range(0, len(ds), 128):
            batch = Batch.from_data_list([ds[i] for i in range(s, min(s + 128, len(ds)))])
            scores.append(model.predict(batch)["label"][:, 1])
            labels.append(batch.y.view(-1))
    return binary_auc(torch.cat(scores).numpy(), torch.cat(labels).numpy() == 1)


def train_command(a: argparse.Namespace, run: Path, frac: float, seed: int, init: str, recipe: str) -> list[str]:
    """The ``graphevent train`` command of one (arm, fraction, seed) run."""
    cmd = [sys.executable, "-m", "graphevent.cli.app", "train", "-c", a.config, "-d", str(a.data), "-o", str(run),
           "--epochs", str(a.epochs), "--label-fraction", str(frac), "--no-progress", "--overwrite",
           "--set", f"train.label_seed={seed}", "--set", "train.num_workers=0"]
    if a.vary_init:
        cmd += ["--set", f"seed={seed}"]
    if init:
        cmd += ["--init-from", init]
    for s in a.sets + (KEEP if recipe == "keep" else []):
        cmd += ["--set", s]
    return cmd


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--runs", type=Path, required=True, help="where the fine-tuning runs go")
    p.add_argument("--config", default="masked_gt_finetune", help="fine-tuning experiment (a shipped name or a YAML file)")
    p.add_argument("--arm", action="append", required=True, help="NAME:INIT_RUN[:keep]")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--out", type=Path, default=None, help="JSON lines of finished runs (default RUNS/study.jsonl)")
    p.add_argument("--test-data", type=Path, default=None,
                   help="score on this dataset's test split (default --data), e.g. independently simulated jets")
    p.add_argument("--rescore", type=Path, default=None,
                   help="JSON lines of finished runs to score again on --test-data (no training); results go to --out")
    p.add_argument("--vary-init", action="store_true",
                   help="also set the experiment seed (initialisation, shuffling) to the label seed; without it every "
                        "seed starts from the same weights, and at fraction 1 (one subset) its runs are the same")
    return p.parse_args(argv)


def main() -> int:
    a = parse_args()
    out = a.out or a.runs / "study.jsonl"
    test_data = a.test_data or a.data
    a.runs.mkdir(parents=True, exist_ok=True)
    done = {}
    if out.is_file():
        for line in out.read_text().splitlines():
            r = json.loads(line)
            done[(r["arm"], r["fraction"], r["seed"])] = r
    if a.rescore is not None:
        for line in a.rescore.read_text().splitlines():
            r = json.loads(line)
            key = (r["arm"], r["fraction"], r["seed"])
            if key in done:
                continue
            run = a.runs / f"{r['arm']}-f{r['fraction']:g}-s{r['seed']}"
            r = {**r, "test_auc": test_auc(run, test_data), "test_data": str(test_data)}
            done[key] = r
            with out.open("a") as f:
                f.write(json.dumps(r) + "\n")
            print(f"{r['arm']:12s} f={r['fraction']:<5g} seed={r['seed']} test AUC {r['test_auc']:.4f} on {test_data}", flush=True)
    print(f"# {platform.node()} {platform.processor() or platform.machine()} cpus={os.cpu_count()} "
          f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS')}", flush=True)
    arms = []
    for spec in a.arm:
        name, _, rest = spec.partition(":")
        init, _, recipe = rest.partition(":")
        arms.append((name, init, recipe))
    for frac in a.fractions if a.rescore is None else []:
        for seed in a.seeds:
            for name, init, recipe in arms:
                key = (name, frac, seed)
                if key in done:
                    continue
                run = a.runs / f"{name}-f{frac:g}-s{seed}"
                cmd = train_command(a, run, frac, seed, init, recipe)
                t0 = time.time()
                proc = subprocess.run(cmd, capture_output=True, text=True)
                if proc.returncode != 0:
                    print(proc.stdout[-2000:], proc.stderr[-2000:], file=sys.stderr)
                    return proc.returncode
                auc = test_auc(run, test_data)
                rec = {"arm": name, "init": init, "recipe": recipe, "fraction": frac, "seed": seed, "test_auc": auc,
                       "test_data": str(test_data),
                       "seconds": round(time.time() - t0, 1), "cmd": " ".join(cmd[2:])}
                done[key] = rec
                with out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
                print(f"{name:12s} f={frac:<5g} seed={seed} test AUC {auc:.4f}  ({rec['seconds']:.0f} s)", flush=True)
    print("\n| arm | fraction | test AUC mean +- sd (seeds) | paired diff to scratch mean +- sd |")
    print("|---|---:|---:|---:|")
    for frac in a.fractions:
        base = {s: done[("scratch", frac, s)]["test_auc"] for s in a.seeds if ("scratch", frac, s) in done}
        for name, _, _ in arms:
            if not any((name, frac, s) in done for s in a.seeds):
                continue
            vals = {s: done[(name, frac, s)]["test_auc"] for s in a.seeds if (name, frac, s) in done}
            v = np.array(list(vals.values()))
            d = np.array([vals[s] - base[s] for s in vals if s in base])
            diff = f"{d.mean():+.4f} +- {d.std(ddof=1) if len(d) > 1 else 0:.4f}" if name != "scratch" and len(d) else "-"
            print(f"| {name} | {frac:g} | {v.mean():.4f} +- {v.std(ddof=1) if len(v) > 1 else 0:.4f} ({len(v)}) | {diff} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
