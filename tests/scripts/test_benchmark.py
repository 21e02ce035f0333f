"""scripts/benchmark.py: option checks that run before any work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_unknown_plan_is_refused_before_anything_runs(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "benchmark.py"), "--plans", "particlenet", "sparse_conv scractch",
                        "--workdir", str(tmp_path / "work")], capture_output=True, text=True)
    assert r.returncode == 2
    assert r.stderr.strip() == (
        "--plans: unknown configuration 'sparse_conv scractch'; expected names from: particlenet, resnet15, edgeconv scratch, "
        "edgeconv pretrained, masked_gt scratch, masked_gt pretrained, sparse_conv scratch, sparse_conv pretrained, "
        "both+xattn scratch, both+xattn pretrained, both+concat pretrained"
    )
    assert not (tmp_path / "work").exists()
