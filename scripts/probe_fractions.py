"""Linear/kNN probe AUC and observable R^2 of frozen encoders at several label fractions and seeds.

A plan for the study runner (graphevent/studies) of probes alone: for every (fraction, seed)
one ``graphevent probe`` of every run (and, with ``--random-init``, of its model randomly
initialised with that seed), fitted on the labelled subset that ``train.label_fraction`` /
``train.label_seed`` draws from the whole train split (probes and fine-tuning see the same
labels), scored on the test split of ``--test-data`` (default ``--data``). Finished probes are
skipped when the script is run again. It prints each probe's mean ± std [min, max] over seeds.

    python scripts/probe_fractions.py RUN [RUN ...] --data DS --work runs/probes --random-init \\
        --fractions 0.01 0.1 1 --seeds 0 1 2
"""

from __future__ import annotations

import argparse
from pathlib import Path

from graphevent.errors import GraphEventError
from graphevent.studies import report
from graphevent.studies.plan import Plan, Pool, jobs
from graphevent.studies.runner import add_run_options, refuse, run_or_print


def build_plan(a: argparse.Namespace) -> Plan:
    """Probes of ``a.runs`` on ``a.data``, nothing trained."""
    return Plan(configs=(), reference="", fractions=tuple(a.fractions), seeds=tuple(a.seeds), labelled=Pool(dataset=a.data),
                test=a.test_data, probes=tuple(map(str, a.runs)), probe_random_init=a.random_init)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("runs", nargs="+", type=Path, help="runs (or checkpoints, RUN/checkpoints/X.pt) whose encoders are probed")
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True, help="where the probes' JSON files and logs go")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1, 1.0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--test-data", type=Path, default=None, help="score on this dataset's test split (default --data)")
    p.add_argument("--random-init", action="store_true", help="also probe each model randomly initialised (the seed's)")
    add_run_options(p, "probes at once")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    try:
        plan = build_plan(a)
        if run_or_print(jobs(plan, a.work, a.work), a.work, a.parallel, a.dry_run):
            print("\n".join(report.probe_table(report.collect_probes(plan, a.work))))
    except GraphEventError as e:
        refuse(str(e))


if __name__ == "__main__":
    main()
