#!/usr/bin/env python
"""Time of deflating one chunk's shard arrays: zlib (what write_shard uses) against ISA-L.

Runs the preprocess pipeline on the first 1,024 events of the shipped Pythia sample (or of
``--input`` with ``--config``), keeps the arrays each shard would hold, cuts and
byte-shuffles them into chunks as write_shard does, and deflates every chunk at level 1
with zlib and with ISA-L (``isal``), best of 5. Prints both times, the compressed sizes and
the machine.

Usage:
  python scripts/bench_shard_codec.py
  python scripts/bench_shard_codec.py --input qg.h5 --config graphevent/configs/data/ml4sci_qg_hdf5.yaml
"""

from __future__ import annotations

import argparse
import dataclasses
import platform
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]


def shard_chunks(inp: Path, config: Path, events: int) -> list[bytes]:
    import graphevent.data.preprocess as pp
    from graphevent.config.data import load_data_config
    from graphevent.data.shards import CHUNK_BYTES

    cfg = dataclasses.replace(load_data_config(config), chunk_size=events)
    _, tasks = pp._plan([inp], cfg, events)
    kept = []
    pp.write_shard = lambda path, arrays, attrs=None: kept.append(arrays) or "0" * 64
    with tempfile.TemporaryDirectory() as tmp:
        pp.process_chunk(tasks[0], cfg, tmp, "bench")
    chunks = []
    for arrays in kept:
        for a in arrays.values():
            a = np.ascontiguousarray(a)
            if not a.size:
                continue
            row = a.itemsize * int(np.prod(a.shape[1:]))
            rows = max(1, min(len(a), CHUNK_BYTES // max(1, row)))
            for s in range(0, len(a), rows):
                chunks.append(a[s : s + rows].view(np.uint8).reshape(-1, a.itemsize).T.tobytes())
    return chunks


def best_of(fn, chunks, repeats=5) -> tuple[float, int]:
    best, size = float("inf"), 0
    for _ in range(repeats):
        t = time.perf_counter()
        size = sum(len(fn(c)) for c in chunks)
        best = min(best, time.perf_counter() - t)
    return best, size


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--input", type=Path, default=ROOT / "graphevent/sample/qg_sample.h5")
    ap.add_argument("--config", type=Path, default=ROOT / "graphevent/configs/data/ml4sci_qg_hdf5.yaml")
    ap.add_argument("--events", type=int, default=1024)
    args = ap.parse_args()
    from isal import isal_zlib

    chunks = shard_chunks(args.input, args.config, args.events)
    raw = sum(map(len, chunks))
    print(f"machine: {platform.machine()} {platform.processor() or ''} {platform.node()}, python {platform.python_version()}")
    print(f"{args.input.name}: {args.events} events -> {len(chunks)} chunks, {raw / 1e6:.2f} MB before deflate")
    for name, fn in (("zlib level 1 (write_shard)", lambda c: zlib.compress(c, 1)),
                     ("ISA-L level 1", lambda c: isal_zlib.compress(c, 1))):
        t, size = best_of(fn, chunks)
        print(f"  {name:28s} {t * 1e3:7.1f} ms  -> {size / 1e6:.3f} MB")


if __name__ == "__main__":
    main()
