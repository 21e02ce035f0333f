#!/usr/bin/env python
"""Pair two trained configurations by seed, from what ``graphevent eval`` wrote.

A study's runner scores every configuration of a (fraction, seed) in one evaluation. A run
trained later (a new configuration, a changed default) can be scored on its own,
``graphevent eval RUN --split test --checkpoint best --out DIR``. This script pairs such
scores by seed with those of the study's evaluation directories, as the study's report does
(:mod:`graphevent.studies.stats`). Per seed it prints both metrics and their difference; over
seeds, the mean difference, a Student-t interval and the seeds won. ``--bootstrap N`` adds the
paired bootstrap over test events (every run must be scored on the same test events).

Each ``--eval`` pattern names a directory per seed through ``{seed}``. A run is read from the
first pattern whose ``metrics.json`` holds it.

Example (issue 22: the shipped recipe at 1% labels against ParticleNet):

    python scripts/paired_runs.py multitask_pretrained_layerdecay_flip particlenet --seeds 5 \\
        --eval 'runs/issue22_medium/eval/f0.01_s{seed}' 'runs/issue22_medium/eval_single/f0.01_s{seed}_flip'
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

from graphevent.errors import GraphEventError, OutputError
from graphevent.metrics.plots import file_stem
from graphevent.studies.report import signal_scores
from graphevent.studies.stats import paired_comparison

METRICS = ("auc", "rejection_at_0.5")


def find(run: str, seed: int, patterns: list[str]) -> tuple[Path, dict]:
    """The first evaluation directory of ``seed`` whose metrics.json scores ``run``, and its label metrics.

    Raises:
        OutputError: no pattern's directory holds the run.
    """
    for pattern in patterns:
        out = Path(pattern.format(seed=seed))
        if (out / "metrics.json").is_file():
            runs = json.loads((out / "metrics.json").read_text())["runs"]
            if run in runs:
                return out, runs[run]["label"]
    tried = ", ".join(str(Path(p.format(seed=seed)) / "metrics.json") for p in patterns)
    raise OutputError(f"run {run!r}, seed {seed}: scored in none of {tried}; expected a `graphevent eval` output that holds it")


def pair(model: str, reference: str, seeds: list[int], patterns: list[str], metrics: tuple[str, ...] = METRICS,
         resamples: int = 0) -> dict[str, dict]:
    """Per metric: ``model``'s and ``reference``'s values per seed, and the paired difference
    (:func:`~graphevent.studies.stats.paired_comparison`).

    Raises:
        OutputError: a run is not scored, lacks a metric, or was scored on other test events.
    """
    found = {(run, s): find(run, s, patterns) for s in seeds for run in (model, reference)}
    for (run, s), (out, label) in found.items():
        if missing := [m for m in metrics if m not in label]:
            raise OutputError(f"{out / 'metrics.json'}: run {run!r} has no {missing[0]!r}; expected one of: {', '.join(sorted(label))}")
    scores = {}
    if resamples:
        truth = ids = None
        for (run, s), (out, _) in found.items():
            ev, sig, scores[run, s] = signal_scores(out / f"predictions-{file_stem(run)}.parquet")
            if ids is None:
                ids, truth = ev, sig
            elif not (np.array_equal(ev, ids) and np.array_equal(sig, truth)):
                raise OutputError(f"{out}: run {run!r}, seed {s} was scored on other test events than run {model!r}, seed {seeds[0]}")
    paired = ([scores[model, s] for s in seeds], [scores[reference, s] for s in seeds], truth) if resamples else None
    result = {}
    for m in metrics:
        a = [float(found[model, s][1][m]) for s in seeds]
        b = [float(found[reference, s][1][m]) for s in seeds]
        result[m] = {"model": a, "reference": b, **paired_comparison(a, b, m, paired, resamples)}
    return result


def lines(result: dict[str, dict], model: str, reference: str, seeds: list[int]) -> list[str]:
    """A markdown table per seed and a summary line per metric."""
    digits = {m: 4 if m == "auc" else 2 for m in result}
    out = ["| seed | " + " | ".join(f"{model} {m} | {reference} {m} | difference" for m in result) + " |",
           "|---|" + "---|---|---|" * len(result)]
    for i, s in enumerate(seeds):
        out.append(f"| {s} | " + " | ".join(f"{r['model'][i]:.{digits[m]}f} | {r['reference'][i]:.{digits[m]}f} | {r['diffs'][i]:+.{digits[m]}f}"
                                           for m, r in result.items()) + " |")
    out.append("")
    for m, r in result.items():
        k = digits[m]
        text = f"{m}: {model} - {reference} = {r['mean']:+.{k}f} [{r['ci'][0]:+.{k}f}, {r['ci'][1]:+.{k}f}] (t over {r['n']} seeds), {r['wins']}/{r['n']} seeds won"
        if not np.isnan(r["boot_ci"][0]):
            text += f"; bootstrap over test events ({r['boot_ci'][0]:+.{k}f}, {r['boot_ci'][1]:+.{k}f})"
        out.append(text)
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("model", help="run name as graphevent eval wrote it in metrics.json (its directory name)")
    ap.add_argument("reference", help="the run it is compared with, e.g. particlenet")
    ap.add_argument("--eval", nargs="+", required=True, metavar="PATTERN", help="evaluation directories, {seed} in each")
    ap.add_argument("--seeds", type=int, default=3, help="how many seeds: FIRST..FIRST+N-1 (default 3)")
    ap.add_argument("--first-seed", type=int, default=0, metavar="FIRST", help="the first seed (default 0)")
    ap.add_argument("--metrics", nargs="+", default=list(METRICS), help=f"label metrics (default {' '.join(METRICS)})")
    ap.add_argument("--bootstrap", type=int, default=0, help="resamples of the paired bootstrap over test events (default 0: none)")
    args = ap.parse_args(argv)
    if bad := [p for p in args.eval if "{seed}" not in p]:
        ap.error(f"--eval {bad[0]!r}: expected a pattern with {{seed}}")
    if args.seeds < 2:
        ap.error(f"--seeds {args.seeds}: expected 2 or more (an interval over seeds needs two)")
    if args.first_seed < 0:
        ap.error(f"--first-seed {args.first_seed}: expected 0 or more")
    seeds = list(range(args.first_seed, args.first_seed + args.seeds))
    try:
        result = pair(args.model, args.reference, seeds, args.eval, tuple(args.metrics), args.bootstrap)
    except GraphEventError as e:
        print(e, file=sys.stderr)
        sys.exit(2)
    print("\n".join(lines(result, args.model, args.reference, seeds)))


if __name__ == "__main__":
    main()
