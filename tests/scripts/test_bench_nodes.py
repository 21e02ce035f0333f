"""scripts/bench_nodes.py: batch sizes, synthetic whole events, option checks before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "scripts"))

import bench_nodes  # noqa: E402


def test_batch_sizes_per_nodes_per_event():
    assert [bench_nodes.default_batch(n) for n in (100, 500, 1000, 2000, 5000)] == [32, 32, 20, 10, 4]


def test_synthetic_whole_events_are_distinct_pixels_of_the_170_by_360_lattice():
    pos = bench_nodes.event_pixels(5000, torch.Generator().manual_seed(0))
    assert pos.shape == (5000, 2)
    rc = torch.round(pos.double() / torch.tensor(bench_nodes.PIXEL, dtype=torch.float64) + torch.tensor([84.5, 179.5]))
    assert rc[:, 0].min() >= 0 and rc[:, 0].max() <= 169 and rc[:, 1].min() >= 0 and rc[:, 1].max() <= 359
    assert torch.unique(rc[:, 0] * 360 + rc[:, 1]).numel() == 5000


def test_unknown_model_is_refused_before_anything_runs():
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "bench_nodes.py"), "--models", "particlenet", "nope"],
                       capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip().startswith("error: unknown model(s) ['nope']; registered: [")
    assert "|" not in r.stdout
