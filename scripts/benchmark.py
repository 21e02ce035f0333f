#!/usr/bin/env python
"""The graphevent study: Pythia quark/gluon jets -> preprocess -> (pre)train -> eval -> docs/results.md.

Every step runs the real ``graphevent`` commands (the path a user takes). Configurations:

* ``particlenet``      ParticleNet-style supervised baseline (arXiv:1902.08570)
* ``resnet15``         CMS E2E ResNet-15 on the images rebuilt from the nodes (arXiv:1902.08276)
* ``sparse_conv``      submanifold sparse-convolution encoder + heads, scratch / pretrained
* ``edgeconv``         sparse EdgeConv encoder + attention heads, scratch / pretrained
* ``masked_gt``        masked graph-transformer encoder + heads, scratch / pretrained
* ``both+xattn``       both encoders, cross-attention fusion, scratch / pretrained
* ``both+concat``      both encoders, concatenation fusion, pretrained (fusion comparison)

each at label fractions 1%, 10% and 100%; each encoder is pretrained once on all training
jets. Heads: quark/gluon classification + m0 and pT regression.

Sizes:
  --size cpu   (default) sized for a 2-core CPU in under an hour: 2,000 new jets (seed 2)
               plus the 2,000-jet sample shipped with graphevent (seed 1, so no jet repeats),
               graphs capped at --max-nodes nodes, few epochs.
  --size full  the full study: 60,000 jets (>= 50,000 train, >= 10,000 test); run on a GPU.

A plan for the study runner (graphevent/studies): every step runs the real ``graphevent``
commands, several at once with --parallel, and a finished step (its output there, its command
unchanged) is skipped when the study is run again. Generated samples are cached in --cache
(outside git) and reused.

The label-efficiency study (several seeds per label fraction, each drawing its own labelled
subset, pretraining on a separate unlabelled pool) is scripts/study_label_efficiency.py; the
section it writes at the top of docs/results.md is kept when this script rewrites the page.

Example:
  python scripts/benchmark.py --size cpu
  python scripts/benchmark.py --size full --gpus 1 --cache /scratch/ge-cache
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from pathlib import Path

from graphevent.errors import GraphEventError
from graphevent.studies.plan import OLD_DEFAULTS, Config, Plan, Pool, eval_dir, jobs, run_dir
from graphevent.studies.report import device_name, versions
from graphevent.studies.runner import refuse, run_plan, shown, stamp_path

ROOT = Path(__file__).resolve().parents[1]

SIZES = {
    # jets generated, split fractions (train, val, test), epochs (pretrain, finetune), max nodes, batch
    "cpu": dict(events=2000, split=(0.7, 0.1, 0.2), pre_epochs=3, epochs=4, max_nodes=48, batch=64, with_sample=True),
    "full": dict(events=64000, split=(0.8, 0.03, 0.17), pre_epochs=10, epochs=12, max_nodes=96, batch=256, with_sample=False),
}
FRACTIONS = (0.01, 0.1, 1.0)
MT = "multitask_finetune"
XATTN = ("model.encoders=[masked_gt,edgeconv]", "model.fusion=cross_attention") + OLD_DEFAULTS
CONFIGS = [
    Config("particlenet", "particlenet"),
    Config("resnet15", "resnet15"),
    *[Config(f"{enc} {kind}", MT, (f"model.encoders=[{enc}]",) + OLD_DEFAULTS, (enc,) * (kind == "pretrained"))
      for enc in ("edgeconv", "masked_gt", "sparse_conv") for kind in ("scratch", "pretrained")],
    Config("both+xattn scratch", MT, XATTN),
    Config("both+xattn pretrained", MT, XATTN, ("edgeconv", "masked_gt")),
    # concatenation at equal size: head_hidden 36 gives 501,360 parameters vs 501,620 for
    # cross attention with the default 64 (concatenated inputs make the MLPs wider)
    Config("both+concat pretrained", MT, ("model.encoders=[masked_gt,edgeconv]", "model.fusion=concat", "model.head_hidden=36") + OLD_DEFAULTS,
           ("edgeconv", "masked_gt")),
]
PRETRAIN = {"edgeconv": ("edgeconv_ae_pretrain", ()), "masked_gt": ("masked_gt_pretrain", ()), "sparse_conv": ("sparse_conv_ae_pretrain", ())}


def fmt_ci(m: dict, key: str, digits: int = 3) -> str:
    v = m.get(key)
    if v is None:
        return "n/a"
    v = float(v)
    ci = m.get(key + "_ci95")
    if ci and None not in ci:
        lo, hi = (float(c) for c in ci)
        return f"{v:.{digits}f} [{lo:.{digits}f}, {hi:.{digits}f}]"
    return f"{v:.{digits}f}"


def fmt_delta(d: dict) -> str:
    """``+0.004 [+0.001, +0.007]`` from a paired comparison entry; ``—`` for the baseline itself."""
    if not d or d.get("auc_diff") is None:
        return "—"
    ci = d.get("auc_diff_ci95")
    text = f"{d['auc_diff']:+.3f}"
    if ci and None not in ci:
        text += f" [{ci[0]:+.3f}, {ci[1]:+.3f}]"
    return text


def fmt_rej(m: dict, key: str) -> str:
    v = m.get(key)
    if v is None:
        return "n/a"
    v = float(v)
    ci = m.get(key + "_ci95")
    txt = "inf" if v == float("inf") else f"{v:.1f}"
    if ci and None not in ci:
        lo, hi = (float(c) for c in ci)
        txt += f" [{lo:.1f}, {hi:.1f}]"
    return txt


def train_rate(run_dir: Path) -> float:
    rows = [json.loads(l) for l in (run_dir / "metrics.jsonl").read_text().splitlines() if l.strip()]
    rates = [r.get("events_per_s") or r.get("train_events_per_s") for r in rows]
    rates = [r for r in rates if r]
    return sum(rates) / len(rates) if rates else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=sorted(SIZES), default="cpu")
    ap.add_argument("--events", type=int, help="override the number of jets generated")
    ap.add_argument("--input", type=Path, action="append", default=[], metavar="FILE",
                    help="use these ML4SCI image files (e.g. made with graphevent simulate qg in pieces) instead of simulating (repeatable)")
    ap.add_argument("--epochs", type=int, help="override fine-tuning epochs")
    ap.add_argument("--pre-epochs", type=int, help="override pretraining epochs")
    ap.add_argument("--max-nodes", type=int, help="override the node cap per graph")
    ap.add_argument("--fractions", type=float, nargs="+", default=list(FRACTIONS))
    ap.add_argument("--gpus", type=int, default=0, help="GPUs per training run (0 = CPU)")
    ap.add_argument("--workers", type=int, default=2, help="processes for simulation and preprocessing")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("GRAPHEVENT_CACHE", Path.home() / ".cache/graphevent")))
    ap.add_argument("--workdir", type=Path, default=ROOT / "runs/study")
    ap.add_argument("--results", type=Path, default=ROOT / "docs/results.md")
    ap.add_argument("--bootstrap", type=int, default=200)
    ap.add_argument("--seed", type=int, default=2, help="simulation seed (the shipped sample used 1)")
    ap.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE",
                    help="extra --set for every training run, e.g. train.in_memory=true (repeatable)")
    ap.add_argument("--parallel", type=int, default=1, help="fine-tuning runs at once (GPU: several share one device)")
    ap.add_argument("--plans", nargs="+", metavar="NAME",
                    help="only these configurations, named as in the results table (e.g. particlenet resnet15 "
                         "'sparse_conv scratch' 'sparse_conv pretrained'); the first is the baseline of the paired "
                         "AUC differences; only the encoders they initialise from are pretrained (default: all)")
    ap.add_argument("--dry-run", action="store_true", help="print every command and stop")
    args = ap.parse_args()
    names = [c.name for c in CONFIGS]
    unknown = [n for n in args.plans or [] if n not in names]
    if unknown:
        refuse(f"--plans: unknown configuration {unknown[0]!r}; expected names from: {', '.join(names)}")
    configs = [next(c for c in CONFIGS if c.name == n) for n in args.plans] if args.plans else CONFIGS
    size = dict(SIZES[args.size])
    for k in ("events", "epochs", "pre_epochs", "max_nodes"):
        if getattr(args, k) is not None:
            size[k] = getattr(args, k)
    if args.input:
        pool = Pool(files=tuple(args.input), split=size["split"])
    else:
        from graphevent.simulate.qg import sample_path

        if size["with_sample"] and args.seed == 1:
            refuse("--seed 1 would repeat the shipped sample's jets; use another seed with --size cpu")
        pool = Pool(files=(sample_path(),) * size["with_sample"], events=size["events"], seed=args.seed, split=size["split"])
    # one seed: each configuration is pretrained (on all training jets) and fine-tuned once per fraction
    plan = Plan(configs=tuple(configs), reference=configs[0].name, fractions=tuple(args.fractions), seeds=(0,), labelled=pool,
                pretrain=PRETRAIN, max_nodes=size["max_nodes"], epochs=size["epochs"], pre_epochs=size["pre_epochs"],
                batch=size["batch"], train_sets=tuple(args.train_set), gpus=args.gpus, workers=args.workers,
                vary_init=False, bootstrap=args.bootstrap)
    work = args.workdir
    planned = jobs(plan, work, args.cache)
    if args.dry_run:
        print("\n".join(shown(j.cmd) for j in planned))
        return
    t_study = time.perf_counter()
    args.cache.mkdir(parents=True, exist_ok=True)
    try:
        run_plan(planned, work, args.parallel)
    except GraphEventError as e:
        refuse(str(e))
    write_page(args, size, plan, planned, time.perf_counter() - t_study)


def write_page(args, size: dict, plan: Plan, planned: list, seconds: float) -> None:
    """The results page: one row per (configuration, fraction), the label-efficiency section kept."""
    wall = {j.key: json.loads(stamp_path(args.workdir, j).read_text())["wall_s"] for j in planned if stamp_path(args.workdir, j).is_file()}
    manifest = json.loads((args.workdir / "data_labelled" / "manifest.json").read_text())
    lines = [
        "# graphevent study: Pythia 8 quark/gluon jets",
        "",
        f"Size: **{args.size}** — {manifest['n_events']:,} jets ("
        + (f"files {', '.join(p.name for p in args.input)}" if args.input else
           f"{size['events']:,} generated{' + the 2,000-jet shipped sample' if size['with_sample'] else ''}")
        + f"); {manifest['splits']['train']:,} train / {manifest['splits']['val']:,} val / "
        f"{manifest['splits']['test']:,} test; graphs capped at {size['max_nodes']} nodes (mean "
        f"{manifest['nodes_per_event']['mean']:.1f} nodes/event); pretraining {size['pre_epochs']} epochs on all train jets, "
        f"fine-tuning {size['epochs']} epochs; batch {size['batch']}.",
        f"Device: {device_name(args.gpus)}. Total wall time {seconds / 60:.1f} min.",
        f"Versions: {versions()}.",
        "",
        "Classification: quark (0) vs gluon (1), gluon = signal for the rejection figures; "
        "95% intervals from the bootstrap over test jets. Resolution = std((pred - true) / true). "
        "AUC - baseline: the AUC difference to the ParticleNet-style baseline on the same test jets, "
        "with a paired bootstrap interval (the same resamples for both runs): the figure that says "
        "whether a configuration beats the baseline. One training seed and one labelled subset per "
        "row: the bootstrap does not see the spread from the subset drawn, which dominates at 1-10% "
        "labels (the label-efficiency study, with several seeds, is the measurement of pretraining).",
        "",
        "| configuration | labels | AUC [95% CI] | AUC - baseline [paired 95% CI] | 1/eps_B @ eps_S=0.3 | 1/eps_B @ eps_S=0.5 | m0 resolution | pT resolution | train events/s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for frac in plan.fractions:
        out = eval_dir(args.workdir, frac, 0)
        doc = json.loads((out / "metrics.json").read_text())
        paired = doc.get("comparison", {}).get("label", {}).get("runs", {})  # vs the first run: the baseline
        for c in plan.configs:
            m = doc["runs"][c.tag]
            cls, m0, pt = next((v for v in m.values() if "auc" in v), {}), m.get("m0", {}), m.get("pt", {})
            lines.append(
                f"| {c.name} | {frac:.0%} | {fmt_ci(cls, 'auc')} | {fmt_delta(paired.get(c.tag, {}))} | "
                f"{fmt_rej(cls, 'rejection_at_0.3')} | {fmt_rej(cls, 'rejection_at_0.5')} | {fmt_ci(m0, 'resolution')} | "
                f"{fmt_ci(pt, 'resolution')} | {train_rate(run_dir(args.workdir, c, frac, 0)):,.0f} | {wall.get(f'{c.name} @ {frac:g} seed 0', 0):.0f} |")
        roc = next(iter(sorted(out.glob("roc*.png"))), None)
        if roc:
            (args.results.parent / "results").mkdir(parents=True, exist_ok=True)
            shutil.copy(roc, args.results.parent / "results" / f"roc_f{frac:g}.png")
    pre = {k: v for k, v in wall.items() if k.startswith("pretrain")}
    lines += ["", "Pretraining wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in pre.items()) + ".", "",
              "ROC curves (background rejection vs signal efficiency), one plot per label fraction:", ""]
    lines += [f"![ROC, {f:.0%} labels](results/roc_f{f:g}.png)" for f in plan.fractions]
    lines += ["", "## Commands", "", "```", f"python scripts/benchmark.py {' '.join(sys.argv[1:])}", "```", "",
              "Every step (finished steps are skipped when rerun):", "", "```", *[shown(j.cmd) for j in planned], "```", ""]
    end = "<!-- label-efficiency study: end -->"  # keep the label-efficiency study's leading section
    old = args.results.read_text() if args.results.is_file() else ""
    args.results.parent.mkdir(parents=True, exist_ok=True)
    args.results.write_text((old[: old.index(end) + len(end)] + "\n\n" if end in old else "") + "\n".join(lines))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
