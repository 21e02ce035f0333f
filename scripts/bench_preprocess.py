#!/usr/bin/env python
"""Preprocessing speed and memory, against the raw h5py read rate and the per-event approach.

Prints (and states the machine):
  * events/s of merely reading + decompressing the images with h5py (the practical limit),
  * events/s of ``graphevent preprocess`` with --workers 1 and N, and their ratio to the raw rate,
  * peak RSS of the whole preprocess process tree at two input sizes,
  * events/s of the per-event approach common in student code (read one event, np.where
    on nonzero pixels, kNN by full distance matrix), and graphevent's speed-up over it,
  * kNN backends alone (scipy cKDTree, torch cdist+topk, torch-cluster if installed).

Usage:
  python scripts/bench_preprocess.py                     # 20,000 events: the shipped Pythia sample x10
  python scripts/bench_preprocess.py --synthetic         # 20,000 sparse toy events
  python scripts/bench_preprocess.py --input qg.h5 --config ml4sci_qg_hdf5
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np


def machine() -> str:
    import psutil

    from graphevent.train.rundir import cpu_name

    cpu = cpu_name()

    return f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, Python {platform.python_version()}"


def make_input_from_sample(path: Path, n: int) -> None:
    """Realistic input: the shipped Pythia 8 sample (2,000 jets, ~540 occupied pixels each)
    repeated to ``n`` events, gzip level 4, one event per chunk, ML4SCI layout."""
    from graphevent.simulate.qg import sample_path

    with h5py.File(sample_path(), "r") as src, h5py.File(path, "w") as f:
        m = len(src["y"])
        X = f.create_dataset("X_jets", (n, 125, 125, 3), np.float32, chunks=(1, 125, 125, 3), compression="gzip", compression_opts=4)
        cols = {k: f.create_dataset(k, (n,), np.float32) for k in ("y", "m0", "pt")}
        for s in range(0, n, m):
            t = min(m, n - s)
            X[s : s + t] = src["X_jets"][:t]
            for k, d in cols.items():
                d[s : s + t] = src[k][:t]


def make_input(path: Path, n: int, seed: int = 0) -> None:
    """Synthetic jets in the ML4SCI layout, gzip-compressed one event per chunk, written in blocks."""
    from graphevent.data.testing import make_jet_images

    with h5py.File(path, "w") as f:
        X = f.create_dataset("X_jets", (n, 125, 125, 3), np.float32, chunks=(1, 125, 125, 3), compression="gzip", compression_opts=4)
        y = f.create_dataset("y", (n,), np.float32)
        m0 = f.create_dataset("m0", (n,), np.float32)
        pt = f.create_dataset("pt", (n,), np.float32)
        for s in range(0, n, 1000):
            a = make_jet_images(min(1000, n - s), seed=seed + s)
            X[s : s + len(a["y"])] = a["X_jets"]
            y[s : s + len(a["y"])] = a["y"]
            m0[s : s + len(a["y"])] = a["m0"]
            pt[s : s + len(a["y"])] = a["pt"]


def raw_read_rate(path: Path, key: str, n: int, block: int = 1024) -> float:
    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        d = f[key]
        for s in range(0, n, block):
            d[s : min(s + block, n)]
    return n / (time.perf_counter() - t)


def per_event_rate(path: Path, key: str, n: int, k: int = 16) -> float:
    """One event at a time, as in published student code."""
    from scipy.spatial.distance import cdist

    t = time.perf_counter()
    with h5py.File(path, "r") as f:
        d = f[key]
        for i in range(n):
            img = d[i]  # (125, 125, 3)
            r, c = np.where(img.sum(-1) > 0)
            feats = img[r, c]
            pos = np.stack([r, c], 1).astype(np.float32)
            dist = cdist(pos, pos)
            np.fill_diagonal(dist, np.inf)
            nbr = np.argsort(dist, 1)[:, :k]
            _ = (feats, nbr)
    return n / (time.perf_counter() - t)


def run_preprocess(inp: Path, cfg: Path, out: Path, workers: int, limit: int | None) -> tuple[float, float, int]:
    """Run the real CLI in a subprocess; returns (events/s, peak RSS of the process tree in GiB, events)."""
    import psutil

    shutil.rmtree(out, ignore_errors=True)
    cmd = [sys.executable, "-m", "graphevent.cli.app", "preprocess", str(inp), "-c", str(cfg), "-o", str(out),
           "--workers", str(workers), "--no-summary"]
    if limit:
        cmd += ["--limit", str(limit)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env={**os.environ, "OMP_NUM_THREADS": "1"})
    ps, peak = psutil.Process(proc.pid), 0
    while proc.poll() is None:
        try:
            rss = ps.memory_info().rss + sum(c.memory_info().rss for c in ps.children(recursive=True))
            peak = max(peak, rss)
        except psutil.Error:
            pass
        time.sleep(0.05)
    dt = time.perf_counter() - t
    if proc.returncode:
        raise SystemExit(f"preprocess failed with exit code {proc.returncode}: {' '.join(cmd)}")
    import json

    n = json.loads((out / "manifest.json").read_text())["inputs"][0]["events_read"]
    return n / dt, peak / 2**30, n


def knn_backends(n_events: int = 256, n_points: int = 300, k: int = 16) -> dict[str, float]:
    from graphevent.data.knn import available_backends, knn_neighbours

    rng = np.random.default_rng(0)
    pos = [rng.normal(size=(n_points, 2)).astype(np.float32) for _ in range(n_events)]
    out = {}
    for b in available_backends():
        t = time.perf_counter()
        for p in pos:
            knn_neighbours(p, k, b)
        out[b] = n_events / (time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, help="existing 125x125x3 HDF5 file (default: generate one)")
    ap.add_argument("--config", type=Path, default=Path(__file__).resolve().parents[1] / "graphevent/configs/data/ml4sci_qg_hdf5.yaml")
    ap.add_argument("--events", type=int, default=20000, help="events to generate (default 20000)")
    ap.add_argument("--synthetic", action="store_true", help="toy jets (~110 occupied pixels) instead of the repeated Pythia sample")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--per-event-sample", type=int, default=1000, help="events timed for the per-event approach")
    ap.add_argument("--workdir", type=Path, default=None)
    args = ap.parse_args()

    work = args.workdir or Path(tempfile.mkdtemp(prefix="ge-bench-"))
    work.mkdir(parents=True, exist_ok=True)
    inp = args.input
    if inp is None:
        inp = work / f"{'synthetic' if args.synthetic else 'pythia_sample_x'}_{args.events}.h5"
        if not inp.exists():
            t = time.perf_counter()
            (make_input if args.synthetic else make_input_from_sample)(inp, args.events)
            print(f"generated {inp} ({inp.stat().st_size / 2**20:.0f} MiB) in {time.perf_counter() - t:.0f} s", flush=True)
    with h5py.File(inp, "r") as f:
        n = len(f["X_jets"])
    print(f"machine: {machine()}")
    print(f"input: {inp.name}, {n:,} events, {inp.stat().st_size / 2**20:.0f} MiB\n")

    raw = raw_read_rate(inp, "X_jets", n)
    half = n // 2
    pp1, rss1_full, _ = run_preprocess(inp, args.config, work / "ds1", 1, None)
    ppn, rssn_full, _ = run_preprocess(inp, args.config, work / "dsn", args.workers, None)
    _, rssn_half, _ = run_preprocess(inp, args.config, work / "dsh", args.workers, half)
    student = per_event_rate(inp, "X_jets", min(args.per_event_sample, n))
    knn = knn_backends()

    rows = [
        ("raw h5py read + decompress", f"{raw:,.0f}", "1.00", ""),
        ("graphevent preprocess --workers 1", f"{pp1:,.0f}", f"{pp1 / raw:.2f}", f"{rss1_full:.2f}"),
        (f"graphevent preprocess --workers {args.workers}", f"{ppn:,.0f}", f"{ppn / raw:.2f}", f"{rssn_full:.2f}"),
        (f"  same, half the input ({half:,} events)", "", "", f"{rssn_half:.2f}"),
        ("per-event student approach", f"{student:,.0f}", f"{student / raw:.3f}", ""),
    ]
    print(f"{'':44s} {'events/s':>10s} {'/ raw':>7s} {'peak RSS GiB':>13s}")
    for r in rows:
        print(f"{r[0]:44s} {r[1]:>10s} {r[2]:>7s} {r[3]:>13s}")
    print(f"\npreprocess --workers {args.workers} / raw read: {ppn / raw:.2f} (goal >= 0.5)")
    print(f"preprocess --workers {args.workers} / per-event approach: {ppn / student:.1f}x (goal >= 20x)")
    print(f"peak RSS at {half:,} vs {n:,} events: {rssn_half:.2f} vs {rssn_full:.2f} GiB (goal < 2 GiB, flat)")
    print("kNN alone (256 events x 300 points, k=16): " + ", ".join(f"{b} {v:,.0f} events/s" for b, v in knn.items()))
    if args.workdir is None:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
