#!/usr/bin/env python
"""Label-efficiency study: does self-supervised pretraining on unlabelled events pay when labels are scarce?

A plan for the study runner (graphevent/studies): it simulates (or reuses) two independent
pools of Pythia 8 quark/gluon jets,

* an UNLABELLED pool (--unlabelled N, seed --unlabelled-seed): pretraining runs on it; the
  labels in its file are never read (tests/train/test_pretrain_labels.py shows that
  pretraining on the same events with permuted labels gives bit-identical weights);
* a LABELLED pool (--labelled N, seed --labelled-seed), split into train/val/test;

pretrains each encoder once on the unlabelled pool, then fine-tunes every configuration at
every label fraction (--fractions) with several seeds. Seed s draws its own labelled subset
(`--label-seed s`, at least train.min_labels_per_class events per class) and its own
initialisation (`--set seed=s`); the baseline with seed s sees the same subset, so differences
are paired by seed. All runs of a (fraction, seed) are scored by one `graphevent eval` on the
same test events. The report gives, per configuration and fraction, AUC and background
rejection 1/eps_B at eps_S = 0.5 (mean, std and min-max over seeds), the paired difference to
the baseline and pretrained minus scratch (t-interval over seeds, seeds won; paired bootstrap
over test events, pooled over seeds), a figure against the label fraction, and it writes the
section that leads docs/results.md (the rest of the page is kept).

Plans (--plan):
  encoders  (default) ParticleNet; edgeconv, masked_gt and both encoders (multitask, cross
            attention), each from scratch and pretrained; 3 seeds per fraction.
  issue22   ParticleNet, ResNet-15, multitask from scratch, and the README recipe (both
            encoders pretrained on the unlabelled pool, multitask fine-tuned from them),
            and one ablation per ingredient, each paired with the recipe: +pairwise (ParT
            pair biases, pretrained with them), +joint (the masked objective on every
            training event in the fine-tuning run), +head50x (encoders at 1/50 of the
            heads' learning rate), +layerdecay (layer-wise learning-rate decay 0.75),
            +frozen (encoders held for the first 2 epochs, then fine-tuned); and
            +layerdecay+rotate and +layerdecay+flip (paired with +layerdecay, the shipped
            recipe: its training jets rotated by a random angle about their axis, or under
            a random symmetry of the pixel grid, at every step); +flip and scratch+flip
            (the flip without layer decay, on the recipe and from scratch, for 100%
            labels, where layer decay costs); +flip+joint (+flip with the masked
            objective too, paired with +flip); 5 seeds at
            0.5% and 1% labels, 3 at 5%, 10% and 100%.
            Default size: medium.
  objectives  which pretraining objective to ship (issue 25): each encoder (masked_gt,
            edgeconv) in multitask, from scratch, pretrained by its shipped autoencoder,
            and pretrained by FoldingNet's decoder (foldingnet_ae, paired with the shipped
            objective); ParticleNet as the baseline; 3 seeds per fraction.

Sizes (--size):
  smoke   a few minutes: 400 labelled + 300 unlabelled jets, 1 epoch; checks the pipeline,
          its numbers mean nothing.
  cpu     about an hour on a 2-core CPU with --parallel 2: the 2,000-jet shipped sample as the
          labelled pool, 3,000 unlabelled jets, graphs capped at 48 nodes, 10 pretraining / 20
          fine-tuning epochs, at least 5 optimizer steps per fine-tuning epoch (an epoch of 12
          jets is otherwise one step, which measures the initialisation, not the model).
  medium  17,000 labelled-pool jets (10,200 train, 5,100 test) + 20,000 unlabelled, 64 nodes,
          the CPU size of issue 22: fine-tuning batch 64 (pretraining 256), at least 20 steps
          per epoch; on 2 cores many hours (run it in parts: --fractions 0.05 first; finished
          and interrupted steps resume), on one H100-class GPU --parallel 6 --batch-size 256.
  full    60,000 labelled-pool jets (48,000 train, 10,200 test) + 100,000 unlabelled, 96 nodes;
          for GPUs, e.g. --gpus 1 --parallel 6, in parts if need be (--part data, pretrain,
          finetune, report). Each part reuses what earlier parts wrote: a finished step (its
          output there, its command unchanged) is skipped, so parts and interrupted runs resume.

Examples:
  python scripts/study_label_efficiency.py --size smoke
  python scripts/study_label_efficiency.py --size cpu --dry-run
  python scripts/study_label_efficiency.py --size cpu --fractions 0.01 0.1 1 --seeds 3
  python scripts/study_label_efficiency.py --plan issue22 --gpus 1 --parallel 6
  python scripts/study_label_efficiency.py --plan issue22 --size full --gpus 1 --parallel 6 --sim-procs 8
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shlex
import sys
import time
from pathlib import Path

from graphevent.errors import GraphEventError
from graphevent.studies import report
from graphevent.studies.plan import DECAY_AT_ANY_LABELS, NO_FLIP, NO_LAYER_DECAY, OLD_DEFAULTS, Config, Plan, Pool, jobs, run_dir
from graphevent.studies.runner import NO_REPORT, add_study_options, refuse, run_plan, shown, stamp_path, study_argv, study_jobs

ROOT = Path(__file__).resolve().parents[1]

MT = "multitask_finetune"
ONE = {enc: (f"model.encoders=[{enc}]",) for enc in ("edgeconv", "masked_gt")}
BOTH = ("model.encoders=[masked_gt,edgeconv]", "model.fusion=cross_attention")
FLAT = BOTH + OLD_DEFAULTS  # both encoders, every layer at one learning rate, no augmentation (as issue 22 ran them)
PAIRWISE = ("model.masked_gt.pairwise=true",)  # ParT pair biases from the deposits (kNN + event-wide attention)
JOINT = ("model.masked_loss_weight=1.0",)  # masked objective on every training event, labelled or not
HEAD_LR = ("train.encoder_lr_scale=0.02",)  # ParT's fine-tuning: heads at 50x the encoders' learning rate
# each encoder level below the top learns at 0.75x the level above, whatever the number of labels
LAYER_DECAY = ("train.encoder_layer_decay=0.75",) + DECAY_AT_ANY_LABELS
FROZEN = ("train.encoder_frozen_epochs=2",)  # heads fit the fixed pretrained encoders for 2 epochs, then everything trains
ROTATE = ("model.augment_rotate=true",)  # each training jet rotated by a random angle about its axis, at every step
FLIP = ("model.augment_flip=true",)  # each training jet under a random symmetry of the pixel grid (reflections, eta<->phi)
PLANS = {
    "encoders": [
        Config("particlenet", "particlenet"),
        Config("edgeconv scratch", MT, ONE["edgeconv"] + OLD_DEFAULTS),
        Config("edgeconv pretrained", MT, ONE["edgeconv"] + OLD_DEFAULTS, ("edgeconv",)),
        Config("masked_gt scratch", MT, ONE["masked_gt"] + OLD_DEFAULTS),
        Config("masked_gt pretrained", MT, ONE["masked_gt"] + OLD_DEFAULTS, ("masked_gt",)),
        Config("multitask scratch", MT, FLAT),
        Config("multitask pretrained", MT, FLAT, ("edgeconv", "masked_gt")),
    ],
    "issue22": [
        Config("particlenet", "particlenet"),
        Config("resnet15", "resnet15"),
        Config("multitask scratch", MT, FLAT),
        Config("multitask pretrained", MT, FLAT, ("edgeconv", "masked_gt")),
        # one ablation per ingredient, each against "multitask pretrained" (the two-stage recipe)
        Config("multitask pretrained+pairwise", MT, FLAT + PAIRWISE, ("edgeconv", "masked_gt_pairwise"), family="pairwise",
               versus="multitask pretrained"),
        Config("multitask pretrained+joint", MT, FLAT + JOINT, ("edgeconv", "masked_gt"), family="joint", versus="multitask pretrained"),
        Config("multitask pretrained+head50x", MT, FLAT + HEAD_LR, ("edgeconv", "masked_gt"), family="head50x", versus="multitask pretrained"),
        Config("multitask pretrained+layerdecay", MT, BOTH + LAYER_DECAY + NO_FLIP, ("edgeconv", "masked_gt"), family="layerdecay",
               versus="multitask pretrained"),
        Config("multitask pretrained+frozen", MT, FLAT + FROZEN, ("edgeconv", "masked_gt"), family="frozen", versus="multitask pretrained"),
        # the symmetry augmentation, on top of the shipped recipe (layer decay)
        Config("multitask pretrained+layerdecay+rotate", MT, BOTH + LAYER_DECAY + ROTATE + NO_FLIP, ("edgeconv", "masked_gt"),
               family="rotate", versus="multitask pretrained+layerdecay"),
        Config("multitask pretrained+layerdecay+flip", MT, BOTH + LAYER_DECAY + FLIP, ("edgeconv", "masked_gt"),
               family="flip", versus="multitask pretrained+layerdecay"),
        # the flip without layer decay (session 20, for 100% labels, where layer decay costs):
        # on the recipe, and from scratch (the pair gives what pretraining adds with the flip)
        Config("multitask pretrained+flip", MT, BOTH + NO_LAYER_DECAY + FLIP, ("edgeconv", "masked_gt"), family="flip only",
               versus="multitask pretrained"),
        Config("multitask scratch+flip", MT, BOTH + NO_LAYER_DECAY + FLIP, family="flip only", versus="multitask scratch"),
        # joint training on top of +flip (session 22: the masked objective as well, at 100% labels)
        Config("multitask pretrained+flip+joint", MT, BOTH + NO_LAYER_DECAY + FLIP + JOINT, ("edgeconv", "masked_gt"),
               family="flip joint", versus="multitask pretrained+flip"),
        # the ParT pair biases on top of +flip (session 23: the physics prior on the best 100% configuration)
        Config("multitask pretrained+flip+pairwise", MT, BOTH + NO_LAYER_DECAY + FLIP + PAIRWISE, ("edgeconv", "masked_gt_pairwise"),
               family="flip pairwise", versus="multitask pretrained+flip"),
        # the pair biases on the shipped recipe (session 24: layer decay kept, for few labels)
        Config("multitask pretrained+layerdecay+flip+pairwise", MT, BOTH + LAYER_DECAY + FLIP + PAIRWISE,
               ("edgeconv", "masked_gt_pairwise"), family="layerdecay flip pairwise",
               versus="multitask pretrained+layerdecay+flip"),
    ],
    "objectives": [
        Config("particlenet", "particlenet"),
        *(c for enc in ("masked_gt", "edgeconv") for c in (
            Config(f"{enc} scratch", MT, ONE[enc] + NO_FLIP + DECAY_AT_ANY_LABELS),
            Config(f"{enc} pretrained", MT, ONE[enc] + NO_FLIP + DECAY_AT_ANY_LABELS, (enc,)),
            Config(f"{enc} foldingnet", MT, ONE[enc] + NO_FLIP + DECAY_AT_ANY_LABELS, (f"foldingnet_{enc}",), family=enc,
                   versus=f"{enc} pretrained"),
        )),
    ],
}
# pretraining runs by key: (experiment, --set overrides); the study trains those its configurations use
PRETRAIN = {"edgeconv": ("edgeconv_ae_pretrain", ()), "masked_gt": ("masked_gt_pretrain", ()),
            "masked_gt_pairwise": ("masked_gt_pretrain", ("model.pairwise=true",)),
            # FoldingNet's folded-grid decoder around each encoder (the shipped settings of both)
            "foldingnet_masked_gt": ("foldingnet_pretrain", ()),
            "foldingnet_edgeconv": ("foldingnet_pretrain", ("model.encoder=edgeconv",))}
BASELINE = "particlenet"
FRACTIONS = (0.005, 0.01, 0.05, 0.1, 1.0)
SIZES = {
    # labelled / unlabelled: jets simulated (labelled None: the 2,000-jet shipped sample, seed 1)
    "smoke": dict(labelled=400, unlabelled=300, split=(0.5, 0.1, 0.4), pre_split=(0.9, 0.1, 0.0), pre_epochs=1, epochs=1,
                  max_nodes=24, batch=64, fractions=(0.02, 1.0), seeds=2, min_steps=0),
    "cpu": dict(labelled=None, unlabelled=3000, split=(0.6, 0.1, 0.3), pre_split=(0.9, 0.1, 0.0), pre_epochs=10, epochs=20,
                max_nodes=48, batch=64, fractions=FRACTIONS, seeds=3, min_steps=5),
    "medium": dict(labelled=17000, unlabelled=20000, split=(0.6, 0.1, 0.3), pre_split=(0.95, 0.05, 0.0), pre_epochs=10,
                   epochs=10, max_nodes=64, batch=64, pre_batch=256, fractions=FRACTIONS, seeds=3, min_steps=20),
    "full": dict(labelled=60000, unlabelled=100000, split=(0.8, 0.03, 0.17), pre_split=(0.97, 0.03, 0.0), pre_epochs=8,
                 epochs=5, max_nodes=96, batch=256, fractions=FRACTIONS, seeds=3, min_steps=20),
}
# Encoder sizes (--encoders): --set overrides per experiment. "small" is the size of
# docs/pretraining_study.md, the same in pretraining and fine-tuning, so --init-from finds
# every weight; ParticleNet and ResNet-15, the baselines, keep their shipped sizes.
ENCODER_SIZES = {
    "shipped": {},
    "small": {
        "masked_gt_pretrain": ("model.dim=32", "model.depth=2", "model.k=8"),
        "edgeconv_ae_pretrain": ("model.k=8", "model.channels=[[16,16],[32,32]]", "model.dim=32"),
        MT: ("model.masked_gt.dim=32", "model.masked_gt.depth=2", "model.masked_gt.k=8", "model.edgeconv.k=8",
             "model.edgeconv.channels=[[16,16],[32,32]]", "model.edgeconv.dim=32"),
    },
}
ENCODER_TEXT = {
    "shipped": "the shipped configs' sizes",
    "small": "small (masked_gt dim 32, depth 2, k 8; edgeconv k 8, channels [[16,16],[32,32]], dim 32; "
             "the same in pretraining and fine-tuning); ParticleNet at its shipped size",
}
PARTS = {"data": ("data",), "pretrain": ("pretrain",), "probe": ("probe",), "finetune": ("finetune",), "report": ("eval",)}
BEGIN = "<!-- label-efficiency study: begin (written by scripts/study_label_efficiency.py; the page continues below) -->"
END = "<!-- label-efficiency study: end -->"


def selected_models(names: list[str] | None, plan: str = "encoders") -> list[Config]:
    """The plan's configurations in table order, restricted to ``names`` (the baseline always runs)."""
    configs = PLANS[plan]
    if not names:
        return list(configs)
    known = {c.name: c for c in configs} | {c.tag: c for c in configs}
    unknown = [n for n in names if n not in known]
    if unknown:
        refuse(f"--models: unknown {unknown}; expected names from: {', '.join(c.tag for c in configs)}")
    chosen = {known[n].name for n in names} | {BASELINE}
    return [c for c in configs if c.name in chosen]


def build_plan(args, size: dict) -> Plan:
    """The study's plan from the options and the size."""
    enc = ENCODER_SIZES[size["encoders"]]
    configs = [dataclasses.replace(c, sets=c.sets + enc.get(c.experiment, ())) for c in selected_models(args.models, args.plan)]

    def pool(n: int | None, seed: int, given: list[Path], split) -> Pool:
        if given:
            return Pool(files=tuple(given), split=split)
        if n is None:
            from graphevent.simulate.qg import sample_path

            return Pool(files=(sample_path(),), split=split)
        return Pool(events=n, seed=seed, pieces=args.sim_procs, split=split)

    return Plan(
        configs=tuple(configs), reference=BASELINE, fractions=tuple(args.fractions), seeds=args.seed_list,
        small_seeds=args.small_seeds, labelled=pool(size["labelled"], args.labelled_seed, args.labelled_input, size["split"]),
        unlabelled=pool(size["unlabelled"], args.unlabelled_seed, args.unlabelled_input, size["pre_split"]),
        pretrain={k: (exp, sets + enc.get(exp, ())) for k, (exp, sets) in PRETRAIN.items()},
        probes=tuple(sorted({k for c in configs for k in c.init})) if args.probe else (), max_nodes=size["max_nodes"], epochs=size["epochs"],
        pre_epochs=size["pre_epochs"], batch=size["batch"], pre_batch=size.get("pre_batch", 0), min_steps=size["min_steps"], train_sets=tuple(args.train_set),
        gpus=args.gpus, workers=args.workers)


def describe_pool(p: Pool, cache: Path) -> str:
    if p.events:
        seeds = [s for _, _, s in p.simulated(cache)]
        return f"`graphevent simulate qg`, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"
    if p.files[0].name == "qg_sample.h5":
        return "the 2,000-jet sample shipped with graphevent, simulation seed 1"
    return "files " + ", ".join(f.name for f in p.files)


def event_counts(workdir: Path, plan: Plan) -> dict[tuple[str, float], str]:
    """The report's "labelled events" column, by (configuration, fraction): the events whose labels
    the runs read (values joined by "/" where seeds differ), then "(of N trained on)" where the runs
    also train on events whose labels they never read (semi-supervised, ``model.masked_loss_weight``)."""
    from graphevent.nn.checkpoint import load_checkpoint

    def joined(values: set[int]) -> str:
        return "/".join(f"{x:,}" for x in sorted(values))

    out = {}
    for c in plan.configs:
        for f in plan.fractions:
            states = [load_checkpoint(run_dir(workdir, c, f, s) / "checkpoints" / "last.pt") for s in plan.seed_list(f)]
            trained = {int(st["train_events"]) for st in states}
            labelled = {int(st.get("labelled_events", st["train_events"])) for st in states}  # older runs: only train_events
            out[(c.name, f)] = joined(labelled) + (f" (of {joined(trained)} trained on)" if trained != labelled else "")
    return out


def write_report(args, size: dict, plan: Plan, t0: float) -> None:
    res = report.collect(plan, args.workdir, scores=args.bootstrap > 0)
    summary = report.summarise(res, plan, args.bootstrap)
    events = event_counts(args.workdir, plan)
    man = {p: json.loads((args.workdir / f"data_{p}" / "manifest.json").read_text()) for p in ("labelled", "unlabelled")}
    lab, unl = man["labelled"], man["unlabelled"]
    fig_path = args.figure_dir / f"label_efficiency_{args.size}.png"
    seeds = sorted({len(plan.seed_list(f)) for f in plan.fractions})
    title = {"smoke": "SMOKE RUN (pipeline check: tiny pools, 1 epoch; the numbers mean nothing)",
             "cpu": f"label efficiency, CPU size (graphs <= {size['max_nodes']} nodes, {size['epochs']} fine-tuning epochs)"
             }.get(args.size, "label efficiency") + f"; mean of {'-'.join(map(str, seeds))} seeds, bars: 95% t-interval"
    report.figure(summary, plan, fig_path, title)
    all_jobs = jobs(plan, args.workdir, args.cache)
    step_s = sum(json.loads(st.read_text())["wall_s"] for st in (stamp_path(args.workdir, j) for j in all_jobs) if st.is_file())
    sec = [f"# Label efficiency: pretraining on unlabelled jets, fine-tuning on a fraction of labels (size: {args.size})", ""]
    if args.size == "smoke":
        sec += ["**SMOKE RUN: a pipeline check on tiny data with 1 epoch; the numbers mean nothing about the models.**", ""]
    elif args.size == "cpu":
        sec += [f"**CPU size: small graphs (at most {size['max_nodes']} nodes), {size['pre_epochs']} pretraining and "
                f"{size['epochs']} fine-tuning epochs, small pools; a 2-core CPU. Differences of a few 0.01 AUC are "
                "within what this size resolves; the full size is the measurement.**", ""]
    reduced = []
    if sorted(args.fractions) != sorted(size["fractions"]):
        reduced.append(f"label fractions {', '.join(f'{f:g}' for f in sorted(args.fractions))} "
                       f"(the size's default: {', '.join(f'{f:g}' for f in size['fractions'])})")
    if args.seeds:
        reduced.append(f"{args.seeds} seeds (default {size['seeds']})")
    if len(plan.configs) != len(PLANS[args.plan]):
        reduced.append(f"configurations {', '.join(c.name for c in plan.configs)} (of {len(PLANS[args.plan])})")
    if reduced:
        sec += ["**Reduced study: " + "; ".join(reduced) + ".**", ""]
    seed_text = ", ".join(f"{f:g}: {len(plan.seed_list(f))}" for f in sorted(plan.fractions))
    sec += [
        f"Labelled pool: {lab['n_events']:,} jets ({describe_pool(plan.labelled, args.cache)}); "
        f"{lab['splits']['train']:,} train / {lab['splits']['val']:,} val / {lab['splits']['test']:,} test. "
        f"Unlabelled pool: {unl['n_events']:,} jets ({describe_pool(plan.unlabelled, args.cache)}), "
        f"{unl['splits']['train']:,} of them for pretraining ({unl['splits']['val']:,} for its validation loss); "
        "its labels are never read. "
        f"Graphs capped at {size['max_nodes']} nodes; pretraining epochs: {size['pre_epochs']}, fine-tuning epochs: {size['epochs']}, "
        f"batch {size['batch']}" + (f" (pretraining {size['pre_batch']})" if size.get("pre_batch") else "")
        + (f", at least {size['min_steps']} optimizer steps per fine-tuning epoch (`train.min_steps_per_epoch`: a small "
           "labelled subset is passed over several times per epoch, each pass shuffled)" if size["min_steps"] else "")
        + "; the checkpoint with the best validation AUC (full labelled val split) is evaluated. "
        f"Encoders: {ENCODER_TEXT[size['encoders']]}.",
        f"Seeds per label fraction ({seed_text}): seed s draws its own labelled subset (`--label-seed s`, at least 5 "
        "events per class) and initialisation (`--set seed=s`); every model with seed s sees the same subset. "
        f"All runs are evaluated by `graphevent eval` on the same {lab['splits']['test']:,} test jets (quark 0 vs gluon 1, gluon = signal).",
        f"Device: {report.device_name(args.gpus)}. Step times summed: {step_s / 60:.1f} min (simulation excluded when cached; "
        f"with --parallel {args.parallel}, up to {args.parallel} steps ran at once); this invocation {(time.perf_counter() - t0) / 60:.1f} min.",
        *([args.note] if args.note else []),
        f"Versions: {report.versions()}.",
        "",
        f"![label efficiency]({os.path.relpath(fig_path, args.results.parent)})",
        "",
        "Points: mean over seeds; error bars: 95% Student-t interval of the mean over seeds. Table: mean ± std [min, max] over seeds. "
        "Differences are paired by seed (same labelled subset, same test jets): mean over seeds of the per-seed "
        "difference, [95% Student-t interval over seeds] (the seed-to-seed spread: subset drawn and initialisation), "
        f"({args.bootstrap}-resample paired bootstrap over test jets, the same draw for every seed and both models; "
        "it holds the trained models fixed, so it shows only whether the test set resolves the difference), "
        "then the seeds where the first is higher / the seeds.",
        "",
        *report.tables(summary, plan, events),
        "",
        *(["Probes of the frozen pretrained encoders (`graphevent probe`, fitted on each seed's labelled subset, scored on the "
           "same test jets; `random`: the same model randomly initialised with the seed): mean ± std [min, max] over seeds.", "",
           *report.probe_table(report.collect_probes(plan, args.workdir)), ""] if plan.probes else []),
        "## Commands",
        "",
        "```",
        f"python scripts/study_label_efficiency.py {shlex.join(study_argv(sys.argv[1:]))}",
        "```",
        "",
        "<details><summary>every step of the study (finished steps are skipped when rerun)</summary>",
        "",
        "```",
        *[shown(j.cmd) for j in all_jobs],
        "```",
        "",
        "</details>",
    ]
    section = "\n".join(sec) + "\n"
    (args.workdir / "label_efficiency.md").write_text(section)
    key = lambda k: f"{k[0]} @ {k[1]:g}" + (f" seed {k[2]}" if len(k) > 2 else "")  # noqa: E731
    (args.workdir / "label_efficiency.json").write_text(json.dumps({
        "runs": {key(k): v for k, v in res["runs"].items()},
        "summary": {key(k): v for k, v in summary["rows"].items()},
        "vs_baseline": {key(k): v for k, v in summary["vs_ref"].items()},
        "pretrained_minus_scratch": {key(k): v for k, v in summary["vs_scratch"].items()},
        "ablations": {key(k): v for k, v in summary["ablations"].items()},
    }, indent=1, default=float))
    if args.results:
        report.lead_results(args.results, section, BEGIN, END)
        print(f"wrote {args.results} (leading section) and {fig_path}")
    print("\n".join(report.tables(summary, plan, events)))


def parse_args(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--plan", choices=list(PLANS), default="encoders", help="which configurations (and seeds) the study runs")
    ap.add_argument("--size", choices=list(SIZES), help="default: cpu (--plan issue22: medium)")
    ap.add_argument("--labelled", type=int, help="jets simulated for the labelled pool (default: per size)")
    ap.add_argument("--unlabelled", type=int, help="jets simulated for the unlabelled pretraining pool (default: per size)")
    ap.add_argument("--labelled-seed", type=int, default=1, help="simulation seed of the labelled pool")
    ap.add_argument("--unlabelled-seed", type=int, default=2, help="simulation seed of the unlabelled pool")
    ap.add_argument("--labelled-input", type=Path, action="append", default=[], metavar="FILE", help="use these image files as the labelled pool")
    ap.add_argument("--unlabelled-input", type=Path, action="append", default=[], metavar="FILE", help="use these image files as the unlabelled pool")
    ap.add_argument("--sim-procs", type=int, default=1, help="simulate each pool as this many files side by side (seeds seed + 1000 i)")
    ap.add_argument("--fractions", type=float, nargs="+", help=f"label fractions (default {' '.join(map(str, FRACTIONS))}; smoke: 0.02 1)")
    ap.add_argument("--seeds", type=int, help="seeds per fraction, 0..N-1 (default 3; smoke: 2; issue22: 5 at <= 1%%, 3 elsewhere)")
    ap.add_argument("--models", nargs="+", help="configurations to run, by name (the baseline always runs)")
    ap.add_argument("--part", choices=list(PARTS), action="append", help="run only these parts (repeatable; default: all, in order)")
    ap.add_argument("--epochs", type=int, help="override fine-tuning epochs")
    ap.add_argument("--pre-epochs", type=int, help="override pretraining epochs")
    ap.add_argument("--max-nodes", type=int, help="override the node cap per graph")
    ap.add_argument("--batch-size", type=int, help="override the batch size")
    ap.add_argument("--min-steps", type=int, help="override the least optimizer steps per fine-tuning epoch (train.min_steps_per_epoch)")
    ap.add_argument("--encoders", choices=sorted(ENCODER_SIZES), help="encoder sizes (default shipped; small: masked_gt dim 32 depth 2, edgeconv dim 32)")
    ap.add_argument("--figure-dir", type=Path, default=ROOT / "docs/results")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the paired bootstrap over test events")
    ap.add_argument("--force", action="store_true", help="rerun steps even when their command is unchanged")
    ap.add_argument("--probe", action="store_true", help="also fit linear and kNN probes to the frozen pretrained encoders "
                                                         "at every fraction and seed (and to them randomly initialised)")
    add_study_options(ap, "runs/label_efficiency_<size> (--plan issue22: runs/issue22_<size>)")
    args = ap.parse_args(argv)
    args.size = args.size or ("medium" if args.plan == "issue22" else "cpu")
    size = dict(SIZES[args.size], encoders="shipped")
    for k, v in (("labelled", args.labelled), ("unlabelled", args.unlabelled), ("epochs", args.epochs),
                 ("pre_epochs", args.pre_epochs), ("max_nodes", args.max_nodes), ("batch", args.batch_size),
                 ("encoders", args.encoders), ("min_steps", args.min_steps)):
        if v is not None:
            size[k] = v
    args.fractions = list(args.fractions or size["fractions"])
    if not all(0 < f <= 1 for f in args.fractions):
        ap.error(f"--fractions {args.fractions}: expected values in (0, 1]")
    args.seed_list = tuple(range(args.seeds or size["seeds"]))
    args.small_seeds = tuple(range(5)) if args.plan == "issue22" and not args.seeds else ()
    args.workdir = args.workdir or ROOT / "runs" / f"{'label_efficiency' if args.plan == 'encoders' else args.plan}_{args.size}"
    if not (args.labelled_input or args.unlabelled_input) and args.labelled_seed == args.unlabelled_seed:
        ap.error("--labelled-seed and --unlabelled-seed are equal: the two pools would hold the same jets")
    if size["labelled"] is None and args.unlabelled_seed == 1 and not args.unlabelled_input:
        ap.error("--unlabelled-seed 1 repeats the shipped sample's jets (the labelled pool at this size)")
    args.parts = args.part or list(PARTS)
    return args, size


def main(argv: list[str] | None = None) -> None:
    args, size = parse_args(argv)
    plan, planned = study_jobs(lambda: build_plan(args, size), args)
    stages = [s for p in args.parts for s in PARTS[p]]
    if args.dry_run:
        for j in planned:
            if j.stage in stages:
                print(f"[{j.stage}] {shown(j.cmd)}")
        return
    t0 = time.perf_counter()
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        run_plan(planned, args.workdir, args.parallel, stages, args.force)
        if "report" in args.parts and args.only:
            print(NO_REPORT)
        elif "report" in args.parts:
            write_report(args, size, plan, t0)
    except GraphEventError as e:
        refuse(str(e))


if __name__ == "__main__":
    main()
