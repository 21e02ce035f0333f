"""Linear/kNN probe AUC and observable R^2 of frozen encoders at several label fractions and seeds.

Embeds the train pool and the test split once per model (each run's model, and with
``--random-init`` the same config randomly initialised), then fits the probes of
:mod:`graphevent.evaluate.probes` for every (fraction, seed): the labelled subset is the one
``train.label_fraction`` / ``train.label_seed`` picks, so probes and fine-tuning see the same labels.

    python scripts/probe_fractions.py RUN [RUN ...] --data DS --random-init --fractions 0.01 0.1 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import torch


def main() -> int:
    from graphevent.data.dataset import GraphDataset
    from graphevent.data.info import load_manifest
    from graphevent.data.observables import channel_specs
    from graphevent.evaluate.probes import PROBE_COLUMNS, ProbeOptions, pooled_embeddings, probe_embeddings
    from graphevent.nn.registry import build_model
    from graphevent.nn.checkpoint import load_run
    from graphevent.data.label_subset import label_subset
    from graphevent.studies.stats import seed_summary

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--test-data", type=Path, default=None, help="score on this dataset's test split (default --data)")
    p.add_argument("--random-init", action="store_true")
    p.add_argument("--init-seed", type=int, default=0)
    a = p.parse_args()
    channels = channel_specs(load_manifest(a.data))
    train, test = GraphDataset(a.data, "train"), GraphDataset(a.test_data or a.data, "test")
    pool = np.arange(len(train))
    ids = train.event_ids
    models = []
    for run in a.runs:
        model, _, info = load_run(run)
        name = run.name if run.is_dir() else f"{run.parent.parent.name}/{run.name}"  # RUN or RUN/checkpoints/X.pt
        models.append((name, model))
        if a.random_init:
            torch.manual_seed(a.init_seed)
            models.append((f"{name} (random init)", build_model(dict(model.model_config), info, getattr(model, "tasks", None))))
    print("| model | fraction | labelled | linear AUC mean +- sd | kNN AUC mean +- sd | " + " | ".join(c for c in PROBE_COLUMNS[2:]) + " |")
    print("|---|---:|---:|---:|---:|" + "---:|" * (len(PROBE_COLUMNS) - 2))
    for name, model in models:
        tr = pooled_embeddings(model, train, pool, channels)
        te = pooled_embeddings(model, test, np.arange(len(test)), channels)
        for frac in a.fractions:
            rows = []
            for seed in (a.seeds if frac < 1 else a.seeds[:1]):
                lab = label_subset(ids, frac, seed)
                rows.append(probe_embeddings(tr, te, lab, train.info.num_classes, ProbeOptions(label_fraction=frac, seed=seed)))
            lin, knn = (seed_summary([r[k] for r in rows]) for k in ("linear_auc", "knn_auc"))
            r2 = " | ".join(f"{rows[0][c]:.3f}" if np.isfinite(rows[0][c]) else "-" for c in PROBE_COLUMNS[2:])
            print(f"| {name} | {frac:g} | {len(lab)} | {lin['mean']:.3f} +- {np.nan_to_num(lin['std']):.3f} | "
                  f"{knn['mean']:.3f} +- {np.nan_to_num(knn['std']):.3f} | {r2} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
