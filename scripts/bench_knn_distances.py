#!/usr/bin/env python
"""Time of the (eta, phi) distance matrix of the model-time kNN: ``squared_position_distances``
(what ``knn_graph`` and the exported models' ``dense_knn`` use) against ``torch.cdist``
(what ``knn_graph`` used before), on random lattice events, best of 20, plus the stable
sort that follows either. Prints the times, how many distances differ in their last bits
and the machine.

Usage:
  python scripts/bench_knn_distances.py [--events 64] [--nodes 200] [--threads 1] [--device cpu]
"""

from __future__ import annotations

import argparse
import platform

import torch

from graphevent.nn.layers.dense_knn import squared_position_distances
from graphevent.utils.timing import best_of


def best_ms(fn, repeat: int = 20) -> float:
    return 1e3 * best_of(fn, repeat, warm_up=True, sync=torch.cuda.synchronize if torch.cuda.is_available() else None)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=64)
    ap.add_argument("--nodes", type=int, default=200)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--device", default="cpu")
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    g = torch.Generator().manual_seed(0)
    pos = (torch.randint(-60, 61, (a.events, a.nodes, 2), generator=g).float() * 0.0174).to(a.device)
    old = torch.cdist(pos, pos, compute_mode="donot_use_mm_for_euclid_dist")
    new = squared_position_distances(pos)
    print(f"machine: {platform.machine()} {platform.processor() or ''} {platform.node()}, torch {torch.__version__}, "
          f"device {a.device}, {a.threads} thread(s); {a.events} events x {a.nodes} lattice nodes")
    print(f"  cdist               {best_ms(lambda: torch.cdist(pos, pos, compute_mode='donot_use_mm_for_euclid_dist')):8.2f} ms")
    print(f"  squared_position_distances  {best_ms(lambda: squared_position_distances(pos)):8.2f} ms (float64)")
    print(f"  stable sort after   {best_ms(lambda: new.sort(dim=-1, stable=True)):8.2f} ms")
    print(f"  cdist distances differing in their last bits: {int((old != new.sqrt().float()).sum())} of {new.numel()}")


if __name__ == "__main__":
    main()
