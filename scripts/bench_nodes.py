#!/usr/bin/env python
"""Whole events: training speed and peak memory of every registered model against nodes per event.

Synthetic whole events: ``N`` distinct random pixels of a 170 x 360 whole-barrel lattice
(eta x phi, pixel 0.0174 x 2 pi / 360, the CMS ECAL barrel at crystal granularity), positions
in (eta, phi) at the pixel centres, 3 log-scaled channel values (tracks, ecal, hcal), the
kNN graph (k=16) on the lattice as preprocessing stores it. Every model of the registry
(``graphevent.nn.list_models()``) at its default (shipped) configuration, as ``graphevent
models`` lists them, runs training steps of its natural stage (``pretrain`` for
autoencoders, ``finetune`` for ``multitask``, ``supervised`` for ``particlenet`` and
``resnet15``): forward, backward and an Adam step. ``resnet15`` sees the dense 3 x 170 x 360
image rebuilt from the nodes; ``sparse_conv_ae`` the occupied pixels.

The batch holds ``max(4, min(32, 20000 // N))`` events (32 at 100-500 nodes, 20 at 1,000,
10 at 2,000, 4 at 5,000) unless ``--batch`` is given, so every step does enough work that
the cost per event is measured. Each (model, N) runs in a fresh subprocess: one warm-up
step, then ``--steps`` timed steps. Peak memory is that of the steps (warm-up included: the
first step allocates the optimizer state, and a CPU allocator keeps freed memory, so a growth
measured after the warm-up would miss the peak) over what the built model and batch hold: on
a CPU the peak resident set size (Linux ``VmHWM``, reset before the warm-up; ``ru_maxrss``
elsewhere) minus the RSS before the warm-up (freed heap memory given back first, glibc ``malloc_trim``), on a GPU ``torch.cuda.max_memory_allocated``
minus what was allocated before it. A (model, N) that fails (out of memory, past ``--timeout`` seconds or
``--max-rss-gib`` of resident memory, 8 GiB by default) is reported
as such and the others go on.

``--preprocess``: also the preprocessing rate on 170 x 360 x 3 images (``--pp-events``
synthetic whole events, ~2% of the pixels occupied, gzip one event per chunk, ML4SCI HDF5
layout): ``graphevent preprocess``'s library path
(:func:`graphevent.data.preprocess.preprocess`, one worker) against a plain h5py read of
the same file, events/s each.

Examples::

    python scripts/bench_nodes.py                                  # all models, 100 .. 5,000 nodes
    python scripts/bench_nodes.py --nodes 5000 --models particlenet --steps 1
    python scripts/bench_nodes.py --device cuda --batch 32         # on a GPU
    python scripts/bench_nodes.py --nodes --preprocess             # the preprocessing rate only
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_models import _peak_rss_bytes, _reset_peak_rss, machine_description, natural_stage  # noqa: E402

HEIGHT, WIDTH = 170, 360
PIXEL = (0.0174, 2 * math.pi / 360)  # (eta, phi) of one barrel crystal
K = 16
INFO_KW = dict(
    node_features=["tracks", "ecal", "hcal"], classes=["a", "b", "c"], targets=["m0", "pt"],
    target_stats={"m0": {"mean": 100.0, "std": 30.0}, "pt": {"mean": 100.0, "std": 30.0}},
    pixel_size=PIXEL, image_shape=(3, HEIGHT, WIDTH),
    feature_transforms=["log1p"] * 3, feature_signed=[False] * 3,
)


def default_batch(nodes: int) -> int:
    """Events per batch at ``nodes`` nodes per event: ``max(4, min(32, 20000 // nodes))``."""
    return max(4, min(32, 20000 // nodes))


def event_pixels(nodes: int, g) -> "torch.Tensor":
    """(nodes, 2) (eta, phi) of ``nodes`` distinct random pixels of the 170 x 360 lattice."""
    import torch

    cells = torch.randperm(HEIGHT * WIDTH, generator=g)[:nodes].sort().values  # raster order, as preprocessing
    rc = torch.stack([cells // WIDTH, cells % WIDTH], 1).double()
    eta = (rc[:, 0] - (HEIGHT - 1) / 2) * PIXEL[0]
    phi = (rc[:, 1] - (WIDTH - 1) / 2) * PIXEL[1]
    return torch.stack([eta, phi], 1).float()


def make_batch(batch_size: int, nodes: int, seed: int = 0):
    import torch
    from torch_geometric.data import Batch, Data

    from graphevent.nn.layers.knn import edge_features, knn_graph

    g = torch.Generator().manual_seed(seed)
    events = []
    for i in range(batch_size):
        pos = event_pixels(nodes, g)
        x = torch.log1p(torch.empty(nodes, 3).exponential_(generator=g) * 10)
        ei = knn_graph(pos, None, K, pixel_size=PIXEL)
        events.append(Data(x=x, pos=pos, edge_index=ei, edge_attr=edge_features(pos, ei), y=torch.tensor([i % 3]),
                           targets=torch.rand(1, 2, generator=g) * 100 + 50, event_id=torch.tensor([i])))
    return Batch.from_data_list(events)


def _release_freed_memory() -> None:
    """Give the heap memory freed so far back to the OS (glibc ``malloc_trim``), so that the RSS
    before a step holds no freed memory (building the batch's kNN graphs) that the step reuses."""
    import ctypes

    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def measure(name: str, nodes: int, batch_size: int, steps: int, device: str) -> dict:
    """In this (fresh) process: one warm-up step and ``steps`` timed training steps."""
    import psutil
    import torch

    from graphevent.data.info import DatasetInfo
    from graphevent.nn import build_model

    torch.manual_seed(0)
    batch = make_batch(batch_size, nodes).to(device)
    model = build_model({"name": name}, DatasetInfo(**INFO_KW, k=K)).to(device).train()
    stage = natural_stage(name, model)
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        loss, _ = model.loss(batch, stage)
        loss.backward()
        opt.step()

    cuda = device == "cuda"
    if cuda:  # peak over the warm-up and the timed steps, over what the model and the batch hold
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        _release_freed_memory()
        base = psutil.Process().memory_info().rss
        _reset_peak_rss()
    step()
    if cuda:
        torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(steps):
        step()
    if cuda:
        torch.cuda.synchronize()
    dt = time.perf_counter() - t0
    peak = torch.cuda.max_memory_allocated() - base if cuda else _peak_rss_bytes() - base
    return {"stage": stage, "parameters": model.num_parameters(), "events_per_s": batch_size * steps / dt,
            "peak_mib": max(peak, 0) / 2**20}


def run_one(name: str, nodes: int, batch_size: int, args) -> dict:
    """``measure`` in a fresh subprocess, killed past ``--timeout`` s or ``--max-rss-gib`` of RSS
    (so that a model that does not fit fails alone, not the machine)."""
    import psutil

    cmd = [sys.executable, os.path.abspath(__file__), "--one", name, "--nodes", str(nodes), "--batch", str(batch_size),
           "--steps", str(args.steps), "--device", args.device, "--threads", str(args.threads)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0, error = time.perf_counter(), ""
    while proc.poll() is None:
        try:
            if psutil.Process(proc.pid).memory_info().rss > args.max_rss_gib * 2**30:
                error = f"over {args.max_rss_gib:g} GiB RSS"
        except psutil.Error:
            pass
        if time.perf_counter() - t0 > args.timeout:
            error = f"over {args.timeout:g} s"
        if error:
            proc.kill()
            proc.communicate()
            return {"error": error}
        time.sleep(0.05)
    out, err = proc.communicate()
    if proc.returncode:
        last = (err.strip().splitlines() or ["?"])[-1]
        return {"error": "out of memory" if proc.returncode == -9 or "memory" in last.lower() else last[:80]}
    return json.loads(out.strip().splitlines()[-1])


# --- preprocessing ---------------------------------------------------------------------------------

def make_images(path: Path, n: int, occupancy: float = 0.02, seed: int = 0) -> None:
    """``n`` synthetic whole events, 170 x 360 x 3 (``occupancy`` of the pixels hit), ML4SCI layout."""
    import h5py
    import numpy as np

    rng = np.random.default_rng(seed)
    hits = int(occupancy * HEIGHT * WIDTH)
    with h5py.File(path, "w") as f:
        X = f.create_dataset("X_jets", (n, HEIGHT, WIDTH, 3), np.float32, chunks=(1, HEIGHT, WIDTH, 3),
                             compression="gzip", compression_opts=4)
        for key in ("y", "m0", "pt"):
            f.create_dataset(key, data=(rng.integers(0, 2, n) if key == "y" else rng.uniform(50, 150, n)).astype(np.float32))
        for i in range(n):
            img = np.zeros((HEIGHT * WIDTH, 3), np.float32)
            cells = rng.choice(HEIGHT * WIDTH, hits, replace=False)
            channel = rng.integers(0, 3, hits)
            img[cells, channel] = rng.exponential(1.0, hits).astype(np.float32) + 0.01
            X[i] = img.reshape(HEIGHT, WIDTH, 3)


DATA_CONFIG = """\
name: whole_event_bench
reader: {format: ml4sci_hdf5, image_key: X_jets, layout: channels_last, label_key: y, target_keys: [m0, pt]}
classes: [a, b]
channels:
  - {name: tracks, threshold: 0.0, scale: 1.0, transform: log1p}
  - {name: ecal, threshold: 0.0, scale: 1.0, transform: log1p}
  - {name: hcal, threshold: 0.0, scale: 1.0, transform: log1p}
image: {height: 170, width: 360, pixel_size: [0.0174, 0.017453292519943295]}
graph: {node_mode: union, k: 16, knn_backend: auto, max_nodes: 0}
split: {train: 0.8, val: 0.1, test: 0.1, seed: 0}
"""


def preprocess_rates(events: int) -> tuple[float, float, float]:
    """(h5py read events/s, ``preprocess`` events/s, mean nodes per event) on a fresh synthetic file."""
    import shutil
    import tempfile

    import h5py

    from graphevent.config.data import load_data_config
    from graphevent.data.preprocess import preprocess

    work = Path(tempfile.mkdtemp(prefix="ge-bench-nodes-"))
    try:
        inp, cfg_path = work / "events.h5", work / "whole_event_bench.yaml"
        make_images(inp, events)
        cfg_path.write_text(DATA_CONFIG)
        t = time.perf_counter()
        with h5py.File(inp, "r") as f:
            d = f["X_jets"]
            for s in range(0, events, 64):
                d[s : s + 64]
        raw = events / (time.perf_counter() - t)
        t = time.perf_counter()
        preprocess([inp], load_data_config(cfg_path), work / "ds", workers=1)
        pp = events / (time.perf_counter() - t)
        manifest = json.loads((work / "ds" / "manifest.json").read_text())
        nodes = manifest["nodes_per_event"]["mean"]
        return raw, pp, nodes
    finally:
        shutil.rmtree(work, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", help="registered names (default: all)")
    parser.add_argument("--nodes", type=int, nargs="*", default=[100, 500, 1000, 2000, 5000], help="nodes per event")
    parser.add_argument("--batch", type=int, default=0, help="events per batch (default: see above)")
    parser.add_argument("--steps", type=int, default=2, help="timed steps after one warm-up (default 2)")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (default cpu)")
    parser.add_argument("--threads", type=int, default=0, help="torch CPU threads (0: torch's default)")
    parser.add_argument("--timeout", type=float, default=900, help="seconds per (model, N) (default 900)")
    parser.add_argument("--max-rss-gib", type=float, default=8.0, help="kill a run past this RSS (default 8)")
    parser.add_argument("--preprocess", action="store_true", help="also the 170x360 preprocessing rate")
    parser.add_argument("--pp-events", type=int, default=200, help="events for --preprocess (default 200)")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        print("error: --device cuda but torch sees no GPU", file=sys.stderr)
        return 2
    if args.one:
        print(json.dumps(measure(args.one, args.nodes[0], args.batch or default_batch(args.nodes[0]), args.steps, args.device)))
        return 0

    from graphevent.nn import list_models

    names = args.models or list(list_models())
    unknown = sorted(set(names) - set(list_models()))
    if unknown:
        print(f"error: unknown model(s) {unknown}; registered: {list(list_models())}", file=sys.stderr)
        return 2
    load = ", ".join(f"{v:.1f}" for v in os.getloadavg())
    print(f"# bench_nodes: {HEIGHT}x{WIDTH} whole-barrel pixels, k={K}, default model configs, "
          f"{args.steps} timed steps (+1 warm-up), device={args.device}")
    print(f"# {machine_description(args.device)}; load average {load}")
    if args.nodes:
        mem = "peak CUDA alloc MiB" if args.device == "cuda" else "peak RSS growth MiB"
        print(f"| model | stage | nodes/event | batch | events/s (train step) | {mem} |")
        print("|---|---|---:|---:|---:|---:|")
        for name in names:
            for n in args.nodes:
                b = args.batch or default_batch(n)
                r = run_one(name, n, b, args)
                if "error" in r:
                    print(f"| {name} | | {n:,} | {b} | failed: {r['error']} | |", flush=True)
                else:
                    print(f"| {name} | {r['stage']} | {n:,} | {b} | {r['events_per_s']:.2f} | {r['peak_mib']:,.0f} |", flush=True)
    if args.preprocess:
        raw, pp, nodes = preprocess_rates(args.pp_events)
        print(f"\n# preprocessing {args.pp_events} synthetic 170x360x3 events (2% occupancy, ~{nodes:.0f} nodes/event), one worker")
        print("| path | events/s |\n|---|---:|")
        print(f"| h5py read + decompress | {raw:,.1f} |\n| graphevent preprocess (library) | {pp:,.1f} |")
    print(f"# load average after: {', '.join(f'{v:.1f}' for v in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
