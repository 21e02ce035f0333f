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

Generated samples are cached in --cache (outside git) and reused.

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
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SIZES = {
    # jets generated, split fractions (train, val, test), epochs (pretrain, finetune), max nodes, batch
    "cpu": dict(events=2000, split=(0.7, 0.1, 0.2), pre_epochs=3, epochs=4, max_nodes=48, batch=64, with_sample=True),
    "full": dict(events=64000, split=(0.8, 0.03, 0.17), pre_epochs=10, epochs=12, max_nodes=96, batch=256, with_sample=False),
}
FRACTIONS = (0.01, 0.1, 1.0)


def sh(cmd: list[str], log: Path) -> float:
    """Run a command, appending its output to log; returns wall seconds; exits on failure."""
    t = time.perf_counter()
    with open(log, "a") as f:
        f.write("\n$ " + " ".join(map(str, cmd)) + "\n")
        f.flush()
        r = subprocess.run(list(map(str, cmd)), stdout=f, stderr=subprocess.STDOUT, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    dt = time.perf_counter() - t
    if r.returncode:
        sys.exit(f"command failed ({r.returncode}), see {log}: {' '.join(map(str, cmd))}")
    print(f"  {dt:7.1f} s  {' '.join(map(str, cmd[1:4]))} ...", flush=True)
    return dt


def runs_plan(pre: dict[str, Path]) -> list[dict]:
    """Fine-tuning runs: (name, config, overrides, init-from runs) per label fraction."""
    mt = ROOT / "graphevent/configs/experiments/multitask_finetune.yaml"
    plans = [dict(name="particlenet", config=ROOT / "graphevent/configs/experiments/particlenet.yaml", sets=[], init=[]),
             dict(name="resnet15", config=ROOT / "graphevent/configs/experiments/resnet15.yaml", sets=[], init=[])]
    for enc in ("edgeconv", "masked_gt", "sparse_conv"):
        plans.append(dict(name=f"{enc} scratch", config=mt, sets=[f"model.encoders=[{enc}]"], init=[]))
        plans.append(dict(name=f"{enc} pretrained", config=mt, sets=[f"model.encoders=[{enc}]"], init=[pre[enc]]))
    plans.append(dict(name="both+xattn scratch", config=mt, sets=["model.encoders=[masked_gt,edgeconv]", "model.fusion=cross_attention"], init=[]))
    plans.append(dict(name="both+xattn pretrained", config=mt, sets=["model.encoders=[masked_gt,edgeconv]", "model.fusion=cross_attention"], init=[pre["edgeconv"], pre["masked_gt"]]))
    # concatenation at equal size: head_hidden 36 gives 501,360 parameters vs 501,620 for
    # cross attention with the default 64 (concatenated inputs make the MLPs wider)
    plans.append(dict(name="both+concat pretrained", config=mt, sets=["model.encoders=[masked_gt,edgeconv]", "model.fusion=concat", "model.head_hidden=36"],
                      init=[pre["edgeconv"], pre["masked_gt"]]))
    return plans


def run_jobs(jobs: list[dict], parallel: int, work: Path, log: Path, prefix: str = "train") -> dict[str, float]:
    """Run ``jobs`` (dicts with key, cmd, deps), at most ``parallel`` at once, each as soon as
    its dependencies have finished, in list order otherwise; returns wall seconds per key.
    Each job logs to its own file, appended to ``log`` at the end."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    logs = {j["key"]: work / f"{prefix}_{i:02d}.log" for i, j in enumerate(jobs)}
    for path in logs.values():
        path.unlink(missing_ok=True)
    waiting, running, wall = list(jobs), {}, {}
    with ThreadPoolExecutor(max(parallel, 1)) as pool:
        while waiting or running:
            for job in list(waiting):
                if len(running) >= max(parallel, 1):
                    break
                if all(d in wall for d in job["deps"]):
                    waiting.remove(job)
                    running[pool.submit(sh, job["cmd"], logs[job["key"]])] = job["key"]
            if not running:
                sys.exit(f"jobs wait on dependencies that never ran: {[j['key'] for j in waiting]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for future in finished:
                wall[running.pop(future)] = future.result()
    with open(log, "a") as f:
        for job in jobs:
            f.write(logs[job["key"]].read_text())
    return wall


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


def versions() -> str:
    import importlib.metadata as md

    pkgs = ["graphevent", "torch", "torch-geometric", "torchmetrics", "pythia8mc", "fastjet", "numpy", "h5py"]
    out = []
    for p in pkgs:
        try:
            out.append(f"{p} {md.version(p)}")
        except md.PackageNotFoundError:
            pass
    return ", ".join(out)


def device_name(gpus: int) -> str:
    import torch

    if gpus and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{gpus}"
    from graphevent.train.rundir import cpu_name

    return f"CPU: {cpu_name()}, {os.cpu_count()} cores"


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
    args = ap.parse_args()
    names = [p["name"] for p in runs_plan({enc: Path(enc) for enc in ("edgeconv", "masked_gt", "sparse_conv")})]
    unknown = [n for n in args.plans or [] if n not in names]
    if unknown:
        sys.exit(f"--plans: unknown configuration {unknown[0]!r}; expected names from: {', '.join(names)}")

    size = dict(SIZES[args.size])
    for k in ("events", "epochs", "pre_epochs", "max_nodes"):
        if getattr(args, k) is not None:
            size[k] = getattr(args, k)
    ge = [sys.executable, "-m", "graphevent.cli.app"]
    work = args.workdir
    work.mkdir(parents=True, exist_ok=True)
    log = work / "study.log"
    t_study = time.perf_counter()
    gpu_opt = ["--gpus", str(args.gpus)]
    for kv in args.train_set:
        gpu_opt += ["--set", kv]

    # 1. simulate (cached), unless --input gives the image files
    args.cache.mkdir(parents=True, exist_ok=True)
    raw = args.cache / f"pythia_qg_{size['events']}_seed{args.seed}.h5"
    inputs = list(args.input) or [raw]
    if args.input:
        print(f"[1/4] using {len(inputs)} given image file(s)")
    elif size["with_sample"]:
        from graphevent.simulate.qg import sample_path

        if args.seed == 1:
            sys.exit("--seed 1 would repeat the shipped sample's jets; use another seed with --size cpu")
        inputs.append(sample_path())
    if args.input:
        pass
    elif not raw.exists():
        print(f"[1/4] simulating {size['events']:,} Pythia 8 jets -> {raw}")
        sh(ge + ["simulate", "qg", "--events", size["events"], "--out", raw, "--seed", args.seed, "--workers", args.workers, "--no-particles"], log)
    else:
        print(f"[1/4] using cached sample {raw}")

    # 2. preprocess
    ds = work / "dataset"
    tr, va, te = size["split"]
    print("[2/4] preprocess")
    sh(ge + ["preprocess", *inputs, "-c", ROOT / "graphevent/configs/data/ml4sci_qg_hdf5.yaml", "-o", ds, "--workers", args.workers,
             "--overwrite", "--no-summary", "--set", f"graph.max_nodes={size['max_nodes']}",
             "--set", f"split.train={tr}", "--set", f"split.val={va}", "--set", f"split.test={te}"], log)
    manifest = json.loads((ds / "manifest.json").read_text())

    # 3+4. pretrain each encoder once on all training jets, and fine-tune per label fraction.
    # With --parallel P, P runs share the device; a fine-tuning run starts as soon as the
    # pretraining runs it initialises from have finished (scratch runs do not wait for them).
    pre = {"edgeconv": work / "pretrain_edgeconv", "masked_gt": work / "pretrain_masked_gt", "sparse_conv": work / "pretrain_sparse_conv"}
    cfgs = {"edgeconv": "edgeconv_ae_pretrain.yaml", "masked_gt": "masked_gt_pretrain.yaml", "sparse_conv": "sparse_conv_ae_pretrain.yaml"}
    plans = runs_plan(pre)
    if args.plans:
        plans = sorted((p for p in plans if p["name"] in args.plans), key=lambda p: args.plans.index(p["name"]))
        pre = {enc: run for enc, run in pre.items() if any(run in p["init"] for p in plans)}
    jobs: list[dict] = []
    for enc, run in pre.items():
        jobs.append(dict(key=f"pretrain {enc}", run=run, deps=[], cmd=ge + [
            "train", "-c", ROOT / "graphevent/configs/experiments" / cfgs[enc], "--data", ds, "--out", run, "--overwrite",
            "--epochs", size["pre_epochs"], "--batch-size", size["batch"], "--no-progress"] + gpu_opt))
    rows = []
    for frac in sorted(args.fractions, reverse=True):  # the longest runs first
        for plan in plans:
            tag = plan["name"].replace(" ", "_").replace("+", "_")
            run = work / f"f{frac:g}" / tag
            cmd = ge + ["train", "-c", plan["config"], "--data", ds, "--out", run, "--overwrite", "--epochs", size["epochs"],
                        "--batch-size", size["batch"], "--label-fraction", frac, "--no-progress"] + gpu_opt
            for s_ in plan["sets"]:
                cmd += ["--set", s_]
            for p in plan["init"]:
                cmd += ["--init-from", p]
            deps = [f"pretrain {enc}" for enc, r in pre.items() if r in plan["init"]]
            rows.append(dict(plan=plan["name"], frac=frac, run=run))
            jobs.append(dict(key=f"{plan['name']} @ {frac:g}", run=run, deps=deps, cmd=cmd))
    print(f"[3/4] pretrain and fine-tune: {len(jobs)} runs, {args.parallel} at a time")
    wall = run_jobs(jobs, args.parallel, work, log)
    for r in rows:
        r["wall"] = wall[f"{r['plan']} @ {r['frac']:g}"]
    rows.sort(key=lambda r: (args.fractions.index(r["frac"]), [p["name"] for p in plans].index(r["plan"])))
    wall = {k: v for k, v in wall.items() if k.startswith("pretrain")}

    # 4. evaluate all runs of a fraction together (one comparison table and ROC plot each);
    # the fractions run side by side with --parallel > 1
    print("[4/4] eval")
    metrics, deltas = {}, {}
    eval_jobs = [
        dict(key=f"eval {frac:g}", deps=[], cmd=ge + ["eval", *[r["run"] for r in rows if r["frac"] == frac], "--data", ds, "--split", "test",
                                                     "--out", work / f"eval_f{frac:g}", "--overwrite", "--bootstrap", args.bootstrap, "--no-progress"])
        for frac in args.fractions
    ]
    run_jobs(eval_jobs, min(args.parallel, len(eval_jobs)), work, log, prefix="eval")
    for frac in args.fractions:
        out = work / f"eval_f{frac:g}"
        doc = json.loads((out / "metrics.json").read_text())
        paired = doc.get("comparison", {}).get("label", {}).get("runs", {})  # vs the first run: particlenet
        for r in rows:
            if r["frac"] == frac:
                metrics[(r["plan"], frac)] = doc["runs"][r["run"].name]
                deltas[(r["plan"], frac)] = paired.get(r["run"].name, {})
        dst = args.results.parent / "results" / f"roc_f{frac:g}.png"
        dst.parent.mkdir(parents=True, exist_ok=True)
        roc = next(iter(sorted(out.glob("roc*.png"))), None)
        if roc:
            shutil.copy(roc, dst)

    # results page
    n_train = manifest["splits"]["train"]
    lines = [
        "# graphevent study: Pythia 8 quark/gluon jets",
        "",
        f"Size: **{args.size}** — {manifest['n_events']:,} jets ("
        + (f"files {', '.join(p.name for p in args.input)}" if args.input else
           f"{size['events']:,} generated{' + the 2,000-jet shipped sample' if size['with_sample'] else ''}")
        + f"); {n_train:,} train / {manifest['splits']['val']:,} val / "
        f"{manifest['splits']['test']:,} test; graphs capped at {size['max_nodes']} nodes (mean "
        f"{manifest['nodes_per_event']['mean']:.1f} nodes/event); pretraining {size['pre_epochs']} epochs on all train jets, "
        f"fine-tuning {size['epochs']} epochs; batch {size['batch']}.",
        f"Device: {device_name(args.gpus)}. Total wall time {(time.perf_counter() - t_study) / 60:.1f} min.",
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
    for r in rows:
        m = metrics[(r["plan"], r["frac"])]
        cls = next((v for v in m.values() if "auc" in v), {})
        m0 = m.get("m0", {})
        pt = m.get("pt", {})
        lines.append(
            f"| {r['plan']} | {r['frac']:.0%} | {fmt_ci(cls, 'auc')} | {fmt_delta(deltas[(r['plan'], r['frac'])])} | "
            f"{fmt_rej(cls, 'rejection_at_0.3')} | {fmt_rej(cls, 'rejection_at_0.5')} | "
            f"{fmt_ci(m0, 'resolution')} | {fmt_ci(pt, 'resolution')} | {train_rate(r['run']):,.0f} | {r['wall']:.0f} |"
        )
    lines += ["", "Pretraining wall time: " + ", ".join(f"{k} {v:.0f} s" for k, v in wall.items()) + ".", "",
              "ROC curves (background rejection vs signal efficiency), one plot per label fraction:", ""]
    lines += [f"![ROC, {f:.0%} labels](results/roc_f{f:g}.png)" for f in args.fractions]
    lines += ["", "## Commands", "", "```", f"python scripts/benchmark.py {shlex.join(sys.argv[1:])}", "```", "",
              "Each step's exact command is in the study log (`study.log` in the work directory):", "", "```"]
    lines += [l[2:].replace(" ".join(ge), "graphevent").replace(f"{ROOT}/", "")
              for l in log.read_text().splitlines() if l.startswith("$ ")]
    lines += ["```", ""]
    args.results.parent.mkdir(parents=True, exist_ok=True)
    from study_label_efficiency import BEGIN, END  # keep the label-efficiency study's leading section

    old = args.results.read_text() if args.results.is_file() else ""
    lead = old[: old.index(END) + len(END)] + "\n\n" if BEGIN in old and END in old else ""
    args.results.write_text(lead + "\n".join(lines))
    (work / "results.json").write_text(json.dumps({f"{k[0]} @ {k[1]}": v for k, v in metrics.items()}, indent=1))
    print(f"wrote {args.results}")


if __name__ == "__main__":
    main()
