#!/usr/bin/env python
"""Whole-event study: three processes told apart by their whole collision event.

A plan for the study runner (graphevent/studies). `graphevent simulate events` makes two
independent pools of whole events (H -> gamma gamma, the signal; prompt diphoton; gamma + jet;
170 x 360 barrel images, phi periodic; docs/simulation.md): a LABELLED pool (seed 1), split
into train/val/test, and an UNLABELLED pool (seed 2) that the two encoders are pretrained on
(its labels are never read). Every configuration trains on all labelled training events with
each seed (its initialisation and shuffling); all runs of a seed are scored by one
`graphevent eval` on the same test events, so differences pair by seed. The report gives the
macro one-vs-rest AUC, the accuracy and the rejection of prompt diphotons at 50% H -> gamma
gamma efficiency (mean, std and range over seeds; paired differences to ParticleNet with
t-intervals over seeds) and writes the section of docs/results.md on whole events.

Sizes (--size):
  smoke  a pipeline check: 300 + 300 events, 1 epoch; the numbers mean nothing.
  cpu    4,500 labelled (2,700 train / 450 val / 1,350 test) + 4,500 unlabelled events,
         graphs capped at 128 nodes (the highest-energy ones), 3 pretraining / 4 training
         epochs, 3 seeds; about 1.5 hours on a loaded 2-core CPU with --parallel 2.
  gpu    60,000 labelled + 100,000 unlabelled events, 512 nodes (every node of nearly every
         event), 10 / 20 epochs, 3 seeds: for one GPU (--gpus 1 --parallel 4; not measured).

Examples:
  python scripts/study_events.py --size smoke
  python scripts/study_events.py --size cpu --parallel 2
  python scripts/study_events.py --size gpu --gpus 1 --parallel 4 --workers 8
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
from pathlib import Path

from graphevent.errors import GraphEventError
from graphevent.studies import report
from graphevent.studies.plan import OLD_DEFAULTS, Config, Plan, Pool, jobs
from graphevent.studies.runner import NO_REPORT, add_study_options, refuse, run_plan, shown, stamp_path, study_argv, study_jobs

ROOT = Path(__file__).resolve().parents[1]
# the multitask model's tasks on whole events: the class, and the event's truth (diphoton mass, HT) as regressions
TASKS = ("tasks=[{name: label, type: classification}, {name: m_gg, type: regression, target: m_gg, loss: huber, weight: 0.5}, "
         "{name: ht, type: regression, target: ht, loss: huber, weight: 0.5}]",)
BOTH = ("model.encoders=[masked_gt,edgeconv]", "model.fusion=cross_attention") + OLD_DEFAULTS + TASKS
CONFIGS = (
    Config("particlenet", "particlenet"),
    Config("resnet15", "resnet15"),
    Config("multitask scratch", "multitask_finetune", BOTH),
    Config("multitask pretrained", "multitask_finetune", BOTH, ("edgeconv", "masked_gt")),
)
PRETRAIN = {"edgeconv": ("edgeconv_ae_pretrain", ()), "masked_gt": ("masked_gt_pretrain", ())}
METRICS = (("auc_macro", "macro AUC", 3), ("accuracy", "accuracy", 3),
           ("rejection_diphoton_at_0.5", "1/eps_B diphoton @ eps_S=0.5", 1))
SIZES = {
    "smoke": dict(labelled=300, unlabelled=300, max_nodes=64, pre_epochs=1, epochs=1, batch=32, seeds=2),
    "cpu": dict(labelled=4500, unlabelled=4500, max_nodes=128, pre_epochs=3, epochs=4, batch=64, seeds=3),
    "gpu": dict(labelled=60000, unlabelled=100000, max_nodes=512, pre_epochs=10, epochs=20, batch=128, seeds=3),
}
BEGIN = "<!-- whole-event study: begin (written by scripts/study_events.py; the page continues below) -->"
END = "<!-- whole-event study: end -->"


def build_plan(args, size: dict) -> Plan:
    return Plan(
        configs=CONFIGS, reference="particlenet", fractions=(1.0,), seeds=tuple(range(args.seeds or size["seeds"])),
        labelled=Pool(events=size["labelled"], seed=1, kind="events"),
        unlabelled=Pool(events=size["unlabelled"], seed=2, kind="events", split=(0.9, 0.1, 0.0)),
        pretrain=PRETRAIN, data_config="whole_event_hdf5", metrics=METRICS, max_nodes=size["max_nodes"],
        epochs=size["epochs"], pre_epochs=size["pre_epochs"], batch=size["batch"], gpus=args.gpus, workers=args.workers,
        train_sets=("train.num_workers=0",) * (not args.gpus) + tuple(args.train_set))


def write_report(args, size: dict, plan: Plan) -> list[str]:
    """The docs section (also ``WORK/events.md``) and its numbers (``WORK/events.json``)."""
    summary = report.summarise(report.collect(plan, args.workdir, scores=False), plan)
    man = {p: json.loads((args.workdir / f"data_{p}" / "manifest.json").read_text()) for p in ("labelled", "unlabelled")}
    lab, unl = man["labelled"]["splits"], man["unlabelled"]["splits"]
    all_jobs = jobs(plan, args.workdir, args.cache)
    step_s = sum(json.loads(st.read_text())["wall_s"] for st in (stamp_path(args.workdir, j) for j in all_jobs) if st.is_file())
    tables = report.tables(summary, plan)
    sec = [f"# Whole events: H -> gamma gamma vs prompt diphoton vs gamma + jet (size: {args.size})", ""]
    if args.size == "smoke":
        sec += ["**SMOKE RUN: a pipeline check on tiny data with 1 epoch; the numbers mean nothing about the models.**", ""]
    sec += [
        f"Labelled pool: {sum(lab.values()):,} events of `graphevent simulate events --seed 1` (a third per process), "
        f"{lab['train']:,} train / {lab['val']:,} val / {lab['test']:,} test; unlabelled pool: {sum(unl.values()):,} events "
        f"of seed 2, {unl['train']:,} for pretraining the two encoders ({size['pre_epochs']} epochs; labels never read). "
        f"Preprocessing: the shipped `whole_event_hdf5` config (phi periodic, HCAL towers one node each), graphs capped at "
        f"{size['max_nodes']} nodes (the highest-energy ones); {size['epochs']} training epochs, batch {size['batch']}, every "
        "labelled training event; the checkpoint with the best validation score is evaluated. Seed s sets each model's "
        "initialisation and shuffling (`--set seed=s`); all runs of a seed are scored by one `graphevent eval` on the same "
        f"{lab['test']:,} test events.",
        f"Device: {report.device_name(args.gpus)}. Step times summed: {step_s / 60:.1f} min (up to {args.parallel} steps at "
        "once).", *([args.note] if args.note else []),
        f"Versions: {report.versions()}.", "",
        "Macro AUC: the mean over the three classes of each class's one-vs-rest AUC. 1/eps_B diphoton: prompt diphotons "
        "rejected at 50% H -> gamma gamma efficiency, scoring p(hgg) / (p(hgg) + p(diphoton)) on those two classes' "
        "events. Table: mean ± std [min, max] over seeds; differences to ParticleNet paired by seed: mean "
        "[95% Student-t interval over seeds], then the seeds where the configuration is higher / the seeds.", "",
        *tables, "", "## Commands", "", "```", f"python scripts/study_events.py {shlex.join(study_argv(sys.argv[1:]))}", "```", "",
        "<details><summary>every step of the study (finished steps are skipped when rerun)</summary>", "", "```",
        *[shown(j.cmd) for j in all_jobs], "```", "", "</details>"]
    section = "\n".join(sec) + "\n"
    (args.workdir / "events.md").write_text(section)
    key = lambda k: f"{k[0]} @ {k[1]:g}"  # noqa: E731
    (args.workdir / "events.json").write_text(json.dumps({
        "summary": {key(k): v for k, v in summary["rows"].items()}, "vs_particlenet": {key(k): v for k, v in summary["vs_ref"].items()},
        "pretrained_minus_scratch": {key(k): v for k, v in summary["vs_scratch"].items()}}, indent=1, default=float))
    if args.results:
        report.lead_results(args.results, section, BEGIN, END)
        print(f"wrote {args.results} (leading section)")
    return tables


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="cpu")
    ap.add_argument("--seeds", type=int, help="seeds 0..N-1 (default: per size)")
    ap.add_argument("--part", choices=["data", "pretrain", "finetune", "eval", "report"], action="append",
                    help="run only these parts (repeatable; default: all, in order)")
    add_study_options(ap, "runs/events_<size>")
    args = ap.parse_args(argv)
    size, args.workdir = SIZES[args.size], args.workdir or ROOT / "runs" / f"events_{args.size}"
    plan, planned = study_jobs(lambda: build_plan(args, size), args)
    parts = args.part or ["data", "pretrain", "finetune", "eval", "report"]
    if args.dry_run:
        print("\n".join(f"[{j.stage}] {shown(j.cmd)}" for j in planned if j.stage in parts))
        return
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        run_plan(planned, args.workdir, args.parallel, [p for p in parts if p != "report"], force=False)
        if "report" in parts and args.only:
            print(NO_REPORT)
        elif "report" in parts:
            print("\n".join(write_report(args, size, plan)))
    except GraphEventError as e:
        refuse(str(e))


if __name__ == "__main__":
    main()
