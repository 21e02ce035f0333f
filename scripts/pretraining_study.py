"""Does pretraining pay? Fine-tune scratch vs pretrained encoders at few labels; print test AUCs.

A plan for the study runner (graphevent/studies) on an existing dataset: for every arm (an
initialisation and a fine-tuning recipe), label fraction and label seed it runs
``graphevent train`` with the fine-tuning config, then one ``graphevent eval`` per (fraction,
seed) scores every arm's ``checkpoints/best.pt`` on the test split of ``--test-data`` (default
``--data``). It prints the AUC and 1/eps_B at eps_S = 0.5 per arm and fraction (mean ± std
[min, max] over seeds) and the difference to the ``scratch`` arm (the first arm without one)
paired by seed (mean [t-interval over seeds] seeds won / seeds), and adds every run to
``--out`` (JSON lines; a run scored again replaces its line). A finished run or evaluation is skipped when the study is run again,
so an interrupted study continues where it stopped; another ``--test-data`` scores the same
runs again without training.

Example (the CPU study of docs/pretraining_study.md; pretraining runs made beforehand)::

    python scripts/pretraining_study.py --data /tmp/qg48 --runs /tmp/runs \\
        --arm scratch: --arm mae:/tmp/runs/mae --arm clr:/tmp/runs/clr \\
        --arm clr_keep:/tmp/runs/clr:keep --fractions 0.01 0.1 --seeds 0 1 2 \\
        --set model.masked_gt.dim=32 --set model.masked_gt.depth=2 --set model.masked_gt.k=8

An arm is ``NAME:INIT_RUN[:keep]`` (empty INIT_RUN: from scratch); ``keep`` fine-tunes with
``train.encoder_lr_scale=0.1`` and ``train.encoder_frozen_epochs=2``. ``--vary-init`` also sets
the experiment seed to the label seed, so seeds differ in initialisation and shuffling as well
(at fraction 1 every seed draws the same subset). To compare model variants (e.g.
``model.fusion``), run the script once per variant with its own ``--set``, ``--runs`` and ``--out``.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from graphevent.errors import GraphEventError
from graphevent.studies import report
from graphevent.studies.plan import Config, Plan, Pool, jobs
from graphevent.studies.runner import add_run_options, refuse, run_or_print

KEEP = ("train.encoder_lr_scale=0.1", "train.encoder_frozen_epochs=2")


def build_plan(a: argparse.Namespace) -> Plan:
    """The study's plan: one configuration per arm, fine-tuned on ``--data``."""
    arms = []
    for spec in a.arm:
        name, _, rest = spec.partition(":")
        init, _, recipe = rest.partition(":")
        arms.append(Config(name, a.config, tuple(a.sets) + KEEP * (recipe == "keep"), (init,) if init else ()))
    reference = "scratch" if any(c.name == "scratch" for c in arms) else next((c.name for c in arms if not c.init), arms[0].name)
    return Plan(configs=tuple(arms), reference=reference, fractions=tuple(a.fractions), seeds=tuple(a.seeds),
                labelled=Pool(dataset=a.data), test=a.test_data, epochs=a.epochs, train_sets=("train.num_workers=0",),
                vary_init=a.vary_init)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, required=True)
    p.add_argument("--runs", type=Path, required=True, help="where the fine-tuning runs and evaluations go")
    p.add_argument("--config", default="masked_gt_finetune", help="fine-tuning experiment (a shipped name or a YAML file)")
    p.add_argument("--arm", action="append", required=True, help="NAME:INIT_RUN[:keep]")
    p.add_argument("--fractions", type=float, nargs="+", default=[0.01, 0.1])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=20)
    p.add_argument("--set", dest="sets", action="append", default=[])
    p.add_argument("--out", type=Path, default=None, help="JSON lines of the scored runs (default RUNS/study.jsonl)")
    p.add_argument("--test-data", type=Path, default=None,
                   help="score on this dataset's test split (default --data), e.g. independently simulated jets")
    p.add_argument("--vary-init", action="store_true",
                   help="also set the experiment seed (initialisation, shuffling) to the label seed; without it every "
                        "seed starts from the same weights, and at fraction 1 (one subset) its runs are the same")
    add_run_options(p)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    a = parse_args(argv)
    try:
        plan = build_plan(a)
        if not run_or_print(jobs(plan, a.runs, a.runs), a.runs, a.parallel, a.dry_run):
            return
        res = report.collect(plan, a.runs, scores=False)
    except GraphEventError as e:
        refuse(str(e))
    out = a.out or a.runs / "study.jsonl"
    key = lambda r: (r["arm"], r["fraction"], r["seed"], r["test_data"])  # noqa: E731
    rows = {key(r): r for r in map(json.loads, out.read_text().splitlines() if out.is_file() else [])}
    for (name, frac, seed), m in res["runs"].items():
        c = next(c for c in plan.configs if c.name == name)
        r = {"arm": name, "init": ":".join(c.init), "fraction": frac, "seed": seed, "test_auc": m["auc"],
             "rejection_at_0.5": m["rejection_at_0.5"], "test_data": str(plan.test or a.data)}
        rows[key(r)] = r
    out.write_text("".join(json.dumps(r) + "\n" for r in rows.values()))
    print("\n".join(report.tables(report.summarise(res, plan), plan)))


if __name__ == "__main__":
    main()
