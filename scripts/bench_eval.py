#!/usr/bin/env python
"""Speed of the evaluation metrics: exact AUC/rejection and their bootstrap intervals.

Synthetic binary scores (signal ~ N(1, 1), background ~ N(0, 1), passed through a sigmoid,
rounded to float32 like model outputs) for ``--events`` events. Times, best of ``--repeat``:

* torchmetrics exact AUROC (``thresholds=None``) of all events at once;
* ``graphevent.metrics.roc`` exact AUC + rejection at eps_S = 0.3 / 0.5 (one row of weights);
* the full bootstrap of ``ClassificationMetrics.compute`` with ``--resamples`` resamples
  (AUC, accuracy and both rejections per resample);
* a regression bootstrap (MAE, RMSE, bias, resolution).

Prints the figures and the machine (CPU model, cores, torch/numpy versions).

Examples::

    python scripts/bench_eval.py                         # 10k events, 200 resamples (the issue's figure)
    python scripts/bench_eval.py --events 1000000 --resamples 200
"""

from __future__ import annotations

import argparse
import os



def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=10_000)
    parser.add_argument("--resamples", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    import numpy as np
    import torch
    from torchmetrics.functional.classification import binary_auroc

    from graphevent.metrics import ClassificationMetrics
    from graphevent.metrics.bootstrap import bootstrap, weighted_regression
    from graphevent.metrics.roc import SortedScores, auc_rows, background_efficiency_at, roc_counts
    from graphevent.train.rundir import cpu_name
    from graphevent.utils.timing import best_of

    rng = np.random.default_rng(args.seed)
    n = args.events
    sig = rng.random(n) < 0.5
    p = (1 / (1 + np.exp(-rng.normal(sig * 1.0, 1.0)))).astype(np.float32)
    probs = torch.from_numpy(np.stack([1 - p, p], 1))
    labels = torch.from_numpy(sig.astype(np.int64))

    m = ClassificationMetrics(["background", "signal"])
    m.update(probs, labels)

    def exact_numpy():
        tp, fp = roc_counts(SortedScores.from_scores(p), sig)
        return auc_rows(tp, fp), background_efficiency_at(tp, fp, 0.3), background_efficiency_at(tp, fp, 0.5)

    true = rng.uniform(20, 200, n)
    pred = true * rng.normal(1.0, 0.1, n)

    rows = [
        ("torchmetrics exact AUROC", best_of(lambda: binary_auroc(probs[:, 1], labels), args.repeat)),
        ("numpy exact AUC + 2 rejections", best_of(exact_numpy, args.repeat)),
        (f"classification compute, {args.resamples} resamples", best_of(lambda: m.compute(args.resamples, args.seed), args.repeat)),
        (f"regression bootstrap, {args.resamples} resamples",
         best_of(lambda: bootstrap(n, lambda w: weighted_regression(pred, true, w), args.resamples, args.seed), args.repeat)),
    ]
    print(f"machine: {cpu_name()}, {os.cpu_count()} logical cores; torch {torch.__version__}, numpy {np.__version__}, "
          f"torch threads {torch.get_num_threads()}")
    print(f"events: {n:,}; best of {args.repeat}")
    width = max(len(name) for name, _ in rows)
    for name, seconds in rows:
        print(f"  {name:<{width}}  {seconds:8.3f} s")


if __name__ == "__main__":
    main()
