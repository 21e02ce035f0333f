#!/usr/bin/env python
"""Label-efficiency study: does self-supervised pretraining on unlabelled events pay when labels are scarce?

One command simulates (or reuses) two independent pools of Pythia 8 quark/gluon jets,

* an UNLABELLED pool (--unlabelled N, seed --unlabelled-seed): pretraining runs on it; the
  labels in its file are never read (tests/train/test_pretrain_labels.py shows that
  pretraining on the same events with permuted labels gives bit-identical weights);
* a LABELLED pool (--labelled N, seed --labelled-seed), split into train/val/test;

pretrains each encoder once on the unlabelled pool, then fine-tunes every configuration of
MODELS at every label fraction (--fractions) with --seeds seeds. Seed s draws its own labelled
subset (`--label-seed s`, at least train.min_labels_per_class events per class) and its own
initialisation (`--set seed=s`); the baseline with seed s sees the same subset, so differences
are paired by seed. All runs of a (fraction, seed) are evaluated by one `graphevent eval` on the
same test events. The report gives, per configuration and fraction, AUC and background
rejection 1/eps_B at eps_S = 0.5 (mean, std and min-max over seeds), the paired difference to
the baseline and pretrained minus scratch (t-interval over seeds; paired bootstrap over test
events, pooled over seeds), a figure against the label fraction, and it writes the section
that leads docs/results.md (the rest of the page is kept).

Sizes (--size):
  smoke  a few minutes: 400 labelled + 300 unlabelled jets, 1 epoch; checks the pipeline,
         its numbers mean nothing.
  cpu    about an hour on a 2-core CPU with --parallel 2 (docs/results.md gives the measured
         step times): the 2,000-jet shipped sample as the labelled pool, 3,000 unlabelled jets,
         graphs capped at 48 nodes, 10 pretraining / 20 fine-tuning epochs, the shipped model
         sizes (--encoders small: those of docs/pretraining_study.md, ParticleNet unchanged), at
         least 5 optimizer steps per fine-tuning epoch. With fewer epochs and
         no step minimum a 1%-label run made 3 optimizer steps (an epoch of 12 jets is one
         step), which measures the initialisation, not the model.
  full   60,000 labelled-pool jets (48,000 train) + 100,000 unlabelled, 96 nodes; for one
         H200-class GPU, in parts of about 12 minutes each. These durations are ESTIMATES scaled
         from the H100 run in docs/results_gpu_full.md (about 1,500 training events/s per run
         with 6 runs sharing the GPU), not measured with this script; --parallel 6 assumed:
           --part data           simulate + preprocess (CPU; use --sim-procs to go faster)
           --part pretrain       both encoders on the unlabelled pool
           --part finetune --fractions 1            the 100% runs
           --part finetune --fractions 0.005 0.01 0.05 0.1
           --part report         eval + tables + figure + docs/results.md
         Each part reuses what earlier parts wrote (work directory + stamps), so parts can
         run in separate sessions; a finished step is skipped when its command is unchanged.

Configurations are the MODELS table below: (name, experiment config, --set overrides,
pretraining runs it initialises from). A new model is one entry (and, if it needs its own
pretraining, one PRETRAIN entry).

Examples:
  python scripts/study_label_efficiency.py --size smoke
  python scripts/study_label_efficiency.py --size cpu --dry-run
  python scripts/study_label_efficiency.py --size cpu --fractions 0.01 0.1 1 --seeds 3
  python scripts/study_label_efficiency.py --size full --gpus 1 --parallel 6 --part pretrain
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchmark import device_name, sh, versions  # noqa: E402  (the study scripts share these)

CONFIGS = ROOT / "graphevent" / "configs"  # the shipped configs
EXPERIMENTS = CONFIGS / "experiments"


@dataclass(frozen=True)
class Pretrain:
    """One pretraining run on the unlabelled pool."""

    config: str  # file in configs/experiments
    sets: tuple[str, ...] = ()


@dataclass(frozen=True)
class Model:
    """One configuration of the study.

    Args:
        name: row name in tables and figures.
        config: experiment file in configs/experiments.
        sets: ``--set`` overrides.
        init: PRETRAIN keys whose runs initialise it (``--init-from``); empty = from scratch.
        family: models with the same family and settings, with and without ``init``, are
            compared as pretrained minus scratch (default: the name's first word).
    """

    name: str
    config: str
    sets: tuple[str, ...] = ()
    init: tuple[str, ...] = ()
    family: str = ""

    @property
    def tag(self) -> str:
        return self.name.replace(" ", "_").replace("+", "_")

    @property
    def group(self) -> str:
        return self.family or self.name.split()[0]


PRETRAIN = {
    "edgeconv": Pretrain("edgeconv_ae_pretrain.yaml"),
    "masked_gt": Pretrain("masked_gt_pretrain.yaml"),
}
MT = "multitask_finetune.yaml"
BOTH = ("model.encoder=both", "model.fusion=cross_attention")
MODELS = [
    Model("particlenet", "particlenet.yaml"),
    Model("edgeconv scratch", MT, ("model.encoder=edgeconv",)),
    Model("edgeconv pretrained", MT, ("model.encoder=edgeconv",), ("edgeconv",)),
    Model("masked_gt scratch", MT, ("model.encoder=masked_gt",)),
    Model("masked_gt pretrained", MT, ("model.encoder=masked_gt",), ("masked_gt",)),
    Model("multitask scratch", MT, BOTH),
    Model("multitask pretrained", MT, BOTH, ("edgeconv", "masked_gt")),
]
BASELINE = "particlenet"
FRACTIONS = (0.005, 0.01, 0.05, 0.1, 1.0)
METRICS = {"auc": "AUC", "rejection_at_0.5": "1/eps_B @ eps_S=0.5"}

SIZES = {
    # labelled / unlabelled: jets simulated (labelled None: the 2,000-jet shipped sample, seed 1)
    "smoke": dict(labelled=400, unlabelled=300, split=(0.5, 0.1, 0.4), pre_split=(0.9, 0.1, 0.0), pre_epochs=1, epochs=1,
                  max_nodes=24, batch=64, fractions=(0.02, 1.0), seeds=2, min_steps=0),
    "cpu": dict(labelled=None, unlabelled=3000, split=(0.6, 0.1, 0.3), pre_split=(0.9, 0.1, 0.0), pre_epochs=10, epochs=20,
                max_nodes=48, batch=64, fractions=FRACTIONS, seeds=3, min_steps=5),
    "full": dict(labelled=60000, unlabelled=100000, split=(0.8, 0.03, 0.17), pre_split=(0.97, 0.03, 0.0), pre_epochs=8,
                 epochs=5, max_nodes=96, batch=256, fractions=FRACTIONS, seeds=3, min_steps=20),
}
# Encoder sizes (--encoders): --set overrides per experiment file. "small" is the size of
# docs/pretraining_study.md: masked_gt dim 32, depth 2, k 8; edgeconv k 8, channels [[16,16],[32,32]],
# dim 32; the same in pretraining and fine-tuning, so --init-from finds every weight. ParticleNet,
# the baseline, keeps its shipped size.
ENCODER_SIZES = {
    "shipped": {},
    "small": {
        "masked_gt_pretrain.yaml": ("model.dim=32", "model.depth=2", "model.k=8"),
        "edgeconv_ae_pretrain.yaml": ("model.k=8", "model.channels=[[16,16],[32,32]]", "model.dim=32"),
        MT: ("model.masked_gt.dim=32", "model.masked_gt.depth=2", "model.masked_gt.k=8", "model.edgeconv.k=8",
             "model.edgeconv.channels=[[16,16],[32,32]]", "model.edgeconv.dim=32"),
    },
}
ENCODER_TEXT = {
    "shipped": "the shipped configs' sizes",
    "small": "small (masked_gt dim 32, depth 2, k 8; edgeconv k 8, channels [[16,16],[32,32]], dim 32; "
             "the same in pretraining and fine-tuning); ParticleNet at its shipped size",
}
PARTS = ("data", "pretrain", "finetune", "report")
BEGIN = "<!-- label-efficiency study: begin (written by scripts/study_label_efficiency.py; the page continues below) -->"
END = "<!-- label-efficiency study: end -->"


# --------------------------------------------------------------------------------------------
# planning


@dataclass
class Job:
    key: str
    cmd: list
    out: Path
    deps: list[str] = field(default_factory=list)
    cached: bool = False  # done whenever ``out`` exists (simulated files in --cache)


def pool_files(cache: Path, n: int, seed: int, procs: int) -> list[tuple[Path, int, int]]:
    """(file, events, seed) of the pieces of a simulated pool: ``procs`` files, seeds seed + 1000 i."""
    sizes = [n // procs + (i < n % procs) for i in range(procs)]
    return [(cache / f"qg_{k}_seed{seed + 1000 * i}.h5", k, seed + 1000 * i) for i, k in enumerate(sizes)]


def fraction_tag(f: float) -> str:
    return f"f{f:g}"


def plan(args, size: dict) -> dict[str, list[Job]]:
    """Every command of the study, by part."""
    ge = [sys.executable, "-m", "graphevent.cli.app"]
    w = args.workdir
    train_opts = ["--no-progress", "--gpus", args.gpus] + [x for kv in args.train_set for x in ("--set", kv)]
    parts: dict[str, list[Job]] = {p: [] for p in PARTS}

    # data: two pools from different seeds, each preprocessed into its own dataset
    datasets = {}
    for pool, n, seed, given in (("labelled", size["labelled"], args.labelled_seed, args.labelled_input),
                                 ("unlabelled", size["unlabelled"], args.unlabelled_seed, args.unlabelled_input)):
        if given:
            files = list(given)
        elif n is None:
            from graphevent.simulate.qg import sample_path

            files = [sample_path()]
        else:
            files = []
            for path, k, s in pool_files(args.cache, n, seed, args.sim_procs):
                files.append(path)
                parts["data"].append(Job(f"simulate {path.name}", ge + ["simulate", "qg", "--events", k, "--seed", s, "--out", path,
                                                                        "--workers", args.workers, "--no-particles"], path, cached=True))
        tr, va, te = size["split" if pool == "labelled" else "pre_split"]
        ds = w / f"data_{pool}"
        datasets[pool] = ds
        parts["data"].append(Job(f"preprocess {pool}", ge + [
            "preprocess", *files, "-c", CONFIGS / "data/ml4sci_qg_hdf5.yaml", "-o", ds, "--workers", args.workers,
            "--overwrite", "--no-summary", "--set", f"graph.max_nodes={size['max_nodes']}",
            "--set", f"split.train={tr}", "--set", f"split.val={va}", "--set", f"split.test={te}"], ds,
            deps=[j.key for j in parts["data"] if j.key.startswith("simulate") and j.out in files]))

    models = selected_models(args.models)
    needed = sorted({k for m in models for k in m.init})
    for key in needed:
        p = PRETRAIN[key]
        run = w / "pretrain" / key
        parts["pretrain"].append(Job(f"pretrain {key}", ge + [
            "train", "-c", EXPERIMENTS / p.config, "--data", datasets["unlabelled"], "--out", run, "--overwrite",
            "--epochs", size["pre_epochs"], "--batch-size", size["batch"], *train_opts,
            *[x for s in p.sets + encoder_sets(size, p.config) for x in ("--set", s)]], run))

    for frac in sorted(args.fractions, reverse=True):  # the longest runs first
        for seed in args.seed_list:
            for m in models:
                run = run_dir(w, m, frac, seed)
                cmd = ge + ["train", "-c", EXPERIMENTS / m.config, "--data", datasets["labelled"], "--out", run, "--overwrite",
                            "--epochs", size["epochs"], "--batch-size", size["batch"], "--label-fraction", frac,
                            "--label-seed", seed, "--set", f"seed={seed}", *train_opts]
                if size["min_steps"]:  # few labels still get enough optimizer steps (every model alike)
                    cmd += ["--set", f"train.min_steps_per_epoch={size['min_steps']}"]
                cmd += [x for s in m.sets + encoder_sets(size, m.config) for x in ("--set", s)]
                cmd += [x for k in m.init for x in ("--init-from", w / "pretrain" / k)]
                parts["finetune"].append(Job(f"{m.name} @ {frac:g} seed {seed}", cmd, run, deps=[f"pretrain {k}" for k in m.init]))
    for frac in args.fractions:
        for seed in args.seed_list:
            out = eval_dir(w, frac, seed)
            parts["report"].append(Job(f"eval {frac:g} seed {seed}", ge + [
                "eval", *[run_dir(w, m, frac, seed) for m in models], "--data", datasets["labelled"], "--split", "test",
                "--out", out, "--bootstrap", 0, "--no-progress", "--overwrite"], out))
    return parts


def encoder_sets(size: dict, config: str) -> tuple[str, ...]:
    """The ``--set`` overrides that give ``config``'s encoders the size's encoder size."""
    return ENCODER_SIZES[size.get("encoders", "shipped")].get(config, ())


def run_dir(work: Path, m: Model, frac: float, seed: int) -> Path:
    return work / "finetune" / f"{fraction_tag(frac)}_s{seed}" / m.tag


def eval_dir(work: Path, frac: float, seed: int) -> Path:
    return work / "eval" / f"{fraction_tag(frac)}_s{seed}"


def selected_models(names: list[str] | None) -> list[Model]:
    """MODELS in table order, restricted to ``names`` (the baseline is always included)."""
    if not names:
        return list(MODELS)
    known = {m.name: m for m in MODELS} | {m.tag: m for m in MODELS}
    unknown = [n for n in names if n not in known]
    if unknown:
        sys.exit(f"--models: unknown {unknown}; expected names from: {', '.join(m.tag for m in MODELS)}")
    chosen = {known[n].name for n in names} | {BASELINE}
    return [m for m in MODELS if m.name in chosen]


# --------------------------------------------------------------------------------------------
# running (a finished step is skipped while its command is unchanged)


def stamp_path(work: Path, job: Job) -> Path:
    return work / "stamps" / (job.key.replace(" ", "_").replace("/", "_") + ".json")


def shown(cmd: list) -> str:
    text = " ".join(shlex.quote(str(c)) for c in cmd)
    return text.replace(f"{sys.executable} -m graphevent.cli.app", "graphevent").replace(f"{ROOT}/", "")


def is_done(work: Path, job: Job) -> bool:
    if job.cached:
        return job.out.exists()
    st = stamp_path(work, job)
    return st.is_file() and job.out.exists() and json.loads(st.read_text()).get("cmd") == shown(job.cmd)


def run_jobs(jobs: list[Job], parallel: int, work: Path, log: Path, force: bool) -> dict[str, float]:
    """Run jobs (at most ``parallel`` at once, each once its deps are done); skip finished ones."""
    from concurrent.futures import FIRST_COMPLETED, ThreadPoolExecutor, wait

    done = {j.key for j in jobs if not force and is_done(work, j)}
    if done:
        print(f"  {len(done)} of {len(jobs)} steps already done (same command, or a cached file), skipped")
    logs_dir = work / "logs"
    logs_dir.mkdir(parents=True, exist_ok=True)

    def one(job: Job) -> float:
        path = logs_dir / (stamp_path(work, job).stem + ".log")
        path.unlink(missing_ok=True)
        dt = sh(job.cmd, path)
        with open(log, "a") as f:
            f.write(path.read_text())
        st = stamp_path(work, job)
        st.parent.mkdir(parents=True, exist_ok=True)
        st.write_text(json.dumps({"cmd": shown(job.cmd), "wall_s": dt}))
        return dt

    waiting = [j for j in jobs if j.key not in done]
    running, wall = {}, {}
    with ThreadPoolExecutor(max(parallel, 1)) as pool:
        while waiting or running:
            for job in list(waiting):
                if len(running) >= max(parallel, 1):
                    break
                if all(d in wall or d in done or d not in {j.key for j in jobs} for d in job.deps):
                    waiting.remove(job)
                    running[pool.submit(one, job)] = job.key
            if not running:
                sys.exit(f"steps wait on steps that never ran: {[j.key for j in waiting]}")
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in finished:
                wall[running.pop(fut)] = fut.result()
    return wall


# --------------------------------------------------------------------------------------------
# results


def signal_scores(pred_file: Path) -> tuple:
    """(event_id, is_signal, signal score) of a predictions file; signal = class index 1."""
    import pyarrow.parquet as pq

    from graphevent.evaluate.predictions import read_predictions

    meta = json.loads(pq.read_schema(pred_file).metadata[b"graphevent"])
    cols = read_predictions(pred_file)
    cls = meta["classes"][1]
    key = next(k for k in (f"score_{cls}", f"label_score_{cls}") if k in cols)
    return cols["event_id"], cols["label"] == 1, cols[key].astype("float64")


def collect(args, models: list[Model]) -> dict:
    """Per (model, fraction, seed): metrics from the predictions on the test events; checks that
    every run saw the same test events and that the AUC agrees with `graphevent eval`'s."""
    import numpy as np

    from graphevent.evaluate.runner import file_stem
    from graphevent.metrics.seeds import metric_rows
    from graphevent.nn.checkpoint import load_checkpoint

    res: dict = {"runs": {}, "scores": {}, "truth": None, "event_ids": None, "train_events": {}}
    for frac in args.fractions:
        for seed in args.seed_list:
            out = eval_dir(args.workdir, frac, seed)
            doc = json.loads((out / "metrics.json").read_text())
            for m in models:
                ids, sig, score = signal_scores(out / f"predictions-{file_stem(m.tag)}.parquet")
                order = np.argsort(ids, kind="stable")
                ids, sig, score = ids[order], sig[order], score[order]
                if res["event_ids"] is None:
                    res["event_ids"], res["truth"] = ids, sig
                elif not (np.array_equal(ids, res["event_ids"]) and np.array_equal(sig, res["truth"])):
                    sys.exit(f"{out}: {m.name} was evaluated on other test events than the first run")
                vals = {k: float(metric_rows(score, sig, None, k)[0]) for k in METRICS}
                eval_auc = doc["runs"][m.tag]["label"]["auc"]
                if abs(vals["auc"] - float(eval_auc)) > 1e-6:
                    sys.exit(f"{out}: {m.name}: AUC from predictions {vals['auc']:.6f} != graphevent eval's {eval_auc}")
                res["runs"][(m.name, frac, seed)] = vals
                res["scores"][(m.name, frac, seed)] = score
                ck = load_checkpoint(run_dir(args.workdir, m, frac, seed) / "checkpoints" / "last.pt")
                res["train_events"][(m.name, frac, seed)] = int(ck["train_events"])
    return res


def summarise(res: dict, models: list[Model], fractions, seeds, resamples: int) -> dict:
    """Spread over seeds and paired differences (to the baseline; pretrained - scratch)."""
    from graphevent.metrics.seeds import paired_seed_difference, pooled_paired_bootstrap, seed_summary

    names = [m.name for m in models]
    rows, vs_base, vs_scratch = {}, {}, {}
    pairs = scratch_pairs(models)

    def diff(a: str, b: str, frac: float) -> dict:
        out = {}
        for k in METRICS:
            d = paired_seed_difference([res["runs"][(a, frac, s)][k] for s in seeds], [res["runs"][(b, frac, s)][k] for s in seeds])
            d["boot_ci"] = pooled_paired_bootstrap([res["scores"][(a, frac, s)] for s in seeds],
                                                   [res["scores"][(b, frac, s)] for s in seeds], res["truth"], k, resamples)
            out[k] = d
        return out

    for frac in fractions:
        for name in names:
            rows[(name, frac)] = {k: seed_summary([res["runs"][(name, frac, s)][k] for s in seeds]) for k in METRICS}
            rows[(name, frac)]["train_events"] = sorted({res["train_events"][(name, frac, s)] for s in seeds})
            if name != BASELINE:
                vs_base[(name, frac)] = diff(name, BASELINE, frac)
        for pre, scratch in pairs:
            vs_scratch[(pre, frac)] = diff(pre, scratch, frac) | {"scratch": scratch}
    return {"rows": rows, "vs_base": vs_base, "vs_scratch": vs_scratch}


def scratch_pairs(models: list[Model]) -> list[tuple[str, str]]:
    """(pretrained, scratch) names: the same family, config and overrides, with and without init."""
    out = []
    for m in models:
        if m.init:
            twin = next((s for s in models if not s.init and s.group == m.group and s.config == m.config and s.sets == m.sets), None)
            if twin:
                out.append((m.name, twin.name))
    return out


def fmt_spread(s: dict, digits: int) -> str:
    if s["n"] == 0:
        return "n/a"
    f = f"{{:.{digits}f}}"
    text = f.format(s["mean"])
    if s["n"] > 1:
        text += f" ± {f.format(s['std'])} [{f.format(s['min'])}, {f.format(s['max'])}]"
    return text


def fmt_diff(d: dict, digits: int, boot: bool = True) -> str:
    f = f"{{:+.{digits}f}}"
    text = f.format(d["mean"])
    lo, hi = d["ci"]
    text += f" [{f.format(lo)}, {f.format(hi)}]" if lo == lo else " [n/a]"
    if boot:
        lo, hi = d["boot_ci"]
        text += f" ({f.format(lo)}, {f.format(hi)})" if lo == lo else ""
    return text


def tables(summary: dict, models: list[Model], fractions) -> list[str]:
    """The markdown tables: spread per (configuration, fraction), and the paired differences."""
    lines = [
        "| configuration | labels | labelled events | AUC | 1/eps_B @ eps_S=0.5 | AUC - ParticleNet | 1/eps_B - ParticleNet |",
        "|---|---:|---:|---|---|---|---|",
    ]
    for frac in sorted(fractions):
        for m in models:
            r = summary["rows"][(m.name, frac)]
            d = summary["vs_base"].get((m.name, frac))
            n = "/".join(f"{x:,}" for x in r["train_events"])
            lines.append(f"| {m.name} | {frac:.1%} | {n} | {fmt_spread(r['auc'], 3)} | {fmt_spread(r['rejection_at_0.5'], 1)} | "
                         f"{fmt_diff(d['auc'], 3) if d else '—'} | {fmt_diff(d['rejection_at_0.5'], 1) if d else '—'} |")
    if summary["vs_scratch"]:
        lines += ["", "Pretrained minus scratch (the same model, seed and labelled subset):", "",
                  "| model | labels | AUC pretrained - scratch | 1/eps_B pretrained - scratch |", "|---|---:|---|---|"]
        for frac in sorted(fractions):
            for (pre, f), d in summary["vs_scratch"].items():
                if f == frac:
                    lines.append(f"| {pre} - {d['scratch']} | {frac:.1%} | {fmt_diff(d['auc'], 3)} | {fmt_diff(d['rejection_at_0.5'], 1)} |")
    return lines


def figure(summary: dict, models: list[Model], fractions, path: Path, title: str) -> Path:
    """AUC and 1/eps_B at eps_S = 0.5 against label fraction (log x), mean with a min-max band."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fr = sorted(fractions)
    groups = list(dict.fromkeys([m.group for m in MODELS if m.name != BASELINE] + [m.group for m in models]))  # stable colours
    colours = {g: plt.get_cmap("tab10")(i) for i, g in enumerate(groups)}
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, (key, label) in zip(axes, METRICS.items()):
        for m in models:
            s = [summary["rows"][(m.name, f)][key] for f in fr]
            mean = [x["mean"] for x in s]
            style = dict(color="black", ls="--", marker="s") if m.name == BASELINE else \
                dict(color=colours[m.group], ls="-" if m.init else ":", marker="o" if m.init else "^")
            ax.plot(fr, mean, label=m.name, lw=1.6, ms=4, **style)
            ax.fill_between(fr, [x["min"] for x in s], [x["max"] for x in s], color=style["color"], alpha=0.1, lw=0)
        ax.set_xscale("log")
        ax.set_xticks(fr, [f"{f * 100:g}%" for f in fr])
        ax.minorticks_off()
        ax.set_xlabel("label fraction")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    axes[0].legend(fontsize=8, loc="lower right")
    fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def lead_results(results: Path, section: str) -> None:
    """Put ``section`` at the top of ``results`` between the markers; keep the rest of the page."""
    old = results.read_text() if results.is_file() else ""
    if BEGIN in old and END in old:
        old = old[: old.index(BEGIN)] + old[old.index(END) + len(END):]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(f"{BEGIN}\n{section.rstrip()}\n{END}\n\n{old.lstrip()}")


def report(args, size: dict, models: list[Model], log: Path, t0: float) -> None:
    res = collect(args, models)
    summary = summarise(res, models, args.fractions, args.seed_list, args.bootstrap)
    manifest = {p: json.loads((args.workdir / f"data_{p}" / "manifest.json").read_text()) for p in ("labelled", "unlabelled")}
    lab, unl = manifest["labelled"], manifest["unlabelled"]
    fig_path = args.figure_dir / f"label_efficiency_{args.size}.png"
    rel_fig = os.path.relpath(fig_path, args.results.parent)
    title = {"smoke": "SMOKE RUN (pipeline check: tiny pools, 1 epoch; the numbers mean nothing)",
             "cpu": f"label efficiency, CPU size (graphs <= {size['max_nodes']} nodes, {size['epochs']} fine-tuning epochs)"
             }.get(args.size, "label efficiency") + f"; lines: mean of {len(args.seed_list)} seeds, bands: min-max"
    figure(summary, models, args.fractions, fig_path, title)
    n_ev = len(res["event_ids"])
    planned = plan(args, size)
    cmds = [shown(j.cmd) for p in PARTS for j in planned[p]]
    stamps = [stamp_path(args.workdir, j) for p in PARTS for j in planned[p]]
    step_s = sum(json.loads(st.read_text())["wall_s"] for st in stamps if st.is_file())
    sec = [
        f"# Label efficiency: pretraining on unlabelled jets, fine-tuning on a fraction of labels (size: {args.size})",
        "",
    ]
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
    if len(args.seed_list) != size["seeds"]:
        reduced.append(f"{len(args.seed_list)} seeds (default {size['seeds']})")
    if len(models) != len(MODELS):
        reduced.append(f"configurations {', '.join(m.name for m in models)} (of {len(MODELS)})")
    if reduced:
        sec += ["**Reduced study: " + "; ".join(reduced) + ".**", ""]
    sec += [
        f"Labelled pool: {lab['n_events']:,} jets ({describe_pool(args, size, 'labelled')}); "
        f"{lab['splits']['train']:,} train / {lab['splits']['val']:,} val / {lab['splits']['test']:,} test. "
        f"Unlabelled pool: {unl['n_events']:,} jets ({describe_pool(args, size, 'unlabelled')}), "
        f"{unl['splits']['train']:,} of them for pretraining ({unl['splits']['val']:,} for its validation loss); "
        "its labels are never read. "
        f"Graphs capped at {size['max_nodes']} nodes; pretraining epochs: {size['pre_epochs']}, fine-tuning epochs: {size['epochs']}, "
        f"batch {size['batch']}"
        + (f", at least {size['min_steps']} optimizer steps per fine-tuning epoch (`train.min_steps_per_epoch`: a small "
           "labelled subset is passed over several times per epoch, each pass shuffled)" if size["min_steps"] else "")
        + "; the checkpoint with the best validation AUC (full labelled val split) is evaluated. "
        f"Encoders: {ENCODER_TEXT[size.get('encoders', 'shipped')]}.",
        f"Seeds {', '.join(map(str, args.seed_list))}: seed s draws its own labelled subset (`--label-seed s`, at least 5 "
        "events per class) and initialisation (`--set seed=s`); every model with seed s sees the same subset. "
        f"All runs are evaluated on the same {n_ev:,} test jets (quark 0 vs gluon 1, gluon = signal).",
        f"Device: {device_name(args.gpus)}. Step times summed: {step_s / 60:.1f} min (simulation excluded when cached; "
        f"with --parallel {args.parallel}, up to {args.parallel} steps ran at once); this invocation {(time.perf_counter() - t0) / 60:.1f} min.",
        *([args.note] if args.note else []),
        f"Versions: {versions()}.",
        "",
        f"![label efficiency]({rel_fig})",
        "",
        "Lines: mean over seeds; bands: min-max over seeds. Table: mean ± std [min, max] over seeds. "
        "Differences are paired by seed (same labelled subset, same test jets): mean over seeds of the per-seed "
        "difference, [95% Student-t interval over seeds] (the seed-to-seed spread: subset drawn and initialisation), "
        f"({args.bootstrap}-resample paired bootstrap over test jets, the same draw for every seed and both models; "
        "it holds the trained models fixed, so it shows only whether the test set resolves the difference).",
        "",
        *tables(summary, models, args.fractions),
        "",
        "## Commands",
        "",
        "```",
        f"python scripts/study_label_efficiency.py {' '.join(shlex.quote(a) for a in study_argv(sys.argv[1:]))}",
        "```",
        "",
        "<details><summary>every step of the study (finished steps are skipped when rerun)</summary>",
        "",
        "```",
        *cmds,
        "```",
        "",
        "</details>",
    ]
    section = "\n".join(sec) + "\n"
    (args.workdir / "label_efficiency.md").write_text(section)
    (args.workdir / "label_efficiency.json").write_text(json.dumps({
        "runs": {f"{k[0]} @ {k[1]:g} seed {k[2]}": v for k, v in res["runs"].items()},
        "summary": {f"{k[0]} @ {k[1]:g}": v for k, v in summary["rows"].items()},
        "vs_baseline": {f"{k[0]} @ {k[1]:g}": v for k, v in summary["vs_base"].items()},
        "pretrained_minus_scratch": {f"{k[0]} @ {k[1]:g}": v for k, v in summary["vs_scratch"].items()},
    }, indent=1, default=float))
    if args.results:
        lead_results(args.results, section)
        print(f"wrote {args.results} (leading section) and {fig_path}")
    print("\n".join(tables(summary, models, args.fractions)))


def study_argv(argv: list[str]) -> list[str]:
    """The options that define the study: ``argv`` without --part, --note, --force and --dry-run."""
    out, skip = [], False
    for a in argv:
        if skip:
            skip = False
        elif a in ("--part", "--note"):
            skip = True
        elif not (a.startswith(("--part=", "--note=")) or a in ("--force", "--dry-run")):
            out.append(a)
    return out


def describe_pool(args, size: dict, pool: str) -> str:
    given = args.labelled_input if pool == "labelled" else args.unlabelled_input
    if given:
        return "files " + ", ".join(p.name for p in given)
    n = size[pool]
    if n is None:
        return "the 2,000-jet sample shipped with graphevent, simulation seed 1"
    seed = args.labelled_seed if pool == "labelled" else args.unlabelled_seed
    seeds = [s for _, _, s in pool_files(args.cache, n, seed, args.sim_procs)]
    return f"`graphevent simulate qg`, seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))}"


# --------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", choices=list(SIZES), default="cpu")
    ap.add_argument("--labelled", type=int, help="jets simulated for the labelled pool (default: per size)")
    ap.add_argument("--unlabelled", type=int, help="jets simulated for the unlabelled pretraining pool (default: per size)")
    ap.add_argument("--labelled-seed", type=int, default=1, help="simulation seed of the labelled pool")
    ap.add_argument("--unlabelled-seed", type=int, default=2, help="simulation seed of the unlabelled pool")
    ap.add_argument("--labelled-input", type=Path, action="append", default=[], metavar="FILE", help="use these image files as the labelled pool")
    ap.add_argument("--unlabelled-input", type=Path, action="append", default=[], metavar="FILE", help="use these image files as the unlabelled pool")
    ap.add_argument("--sim-procs", type=int, default=1, help="simulate each pool as this many files side by side (seeds seed + 1000 i)")
    ap.add_argument("--fractions", type=float, nargs="+", help=f"label fractions (default {' '.join(map(str, FRACTIONS))}; smoke: 0.02 1)")
    ap.add_argument("--seeds", type=int, help="seeds per fraction, 0..N-1 (default 3; smoke: 2)")
    ap.add_argument("--models", nargs="+", help=f"configurations to run (the baseline always runs): {', '.join(m.tag for m in MODELS)}")
    ap.add_argument("--part", choices=PARTS, action="append", help="run only these parts (repeatable; default: all, in order)")
    ap.add_argument("--epochs", type=int, help="override fine-tuning epochs")
    ap.add_argument("--pre-epochs", type=int, help="override pretraining epochs")
    ap.add_argument("--max-nodes", type=int, help="override the node cap per graph")
    ap.add_argument("--batch-size", type=int, help="override the batch size")
    ap.add_argument("--min-steps", type=int, help="override the least optimizer steps per fine-tuning epoch (train.min_steps_per_epoch)")
    ap.add_argument("--encoders", choices=sorted(ENCODER_SIZES), help="encoder sizes (default shipped; small: masked_gt dim 32 depth 2, edgeconv dim 32)")
    ap.add_argument("--gpus", type=int, default=0, help="GPUs per training run (0 = CPU)")
    ap.add_argument("--parallel", type=int, default=1, help="training runs at once (GPU: several share one device)")
    ap.add_argument("--workers", type=int, default=2, help="processes for simulation and preprocessing")
    ap.add_argument("--train-set", action="append", default=[], metavar="KEY=VALUE", help="extra --set for every training run (repeatable)")
    ap.add_argument("--cache", type=Path, default=Path(os.environ.get("GRAPHEVENT_CACHE", Path.home() / ".cache/graphevent")))
    ap.add_argument("--workdir", type=Path, help="default: runs/label_efficiency_<size>")
    ap.add_argument("--results", type=Path, default=ROOT / "docs/results.md", help="page whose leading section the study writes")
    ap.add_argument("--figure-dir", type=Path, default=ROOT / "docs/results")
    ap.add_argument("--bootstrap", type=int, default=1000, help="resamples of the paired bootstrap over test events")
    ap.add_argument("--note", help="a line added to the results section (e.g. what else ran on the machine)")
    ap.add_argument("--force", action="store_true", help="rerun steps even when their command is unchanged")
    ap.add_argument("--dry-run", action="store_true", help="print every command of the selected parts and stop")
    args = ap.parse_args(argv)
    size = dict(SIZES[args.size])
    for k, v in (("labelled", args.labelled), ("unlabelled", args.unlabelled), ("epochs", args.epochs),
                 ("pre_epochs", args.pre_epochs), ("max_nodes", args.max_nodes), ("batch", args.batch_size),
                 ("encoders", args.encoders), ("min_steps", args.min_steps)):
        if v is not None:
            size[k] = v
    args.fractions = list(args.fractions or size["fractions"])
    if not all(0 < f <= 1 for f in args.fractions):
        ap.error(f"--fractions {args.fractions}: expected values in (0, 1]")
    args.seed_list = list(range(args.seeds or size["seeds"]))
    args.workdir = args.workdir or ROOT / "runs" / f"label_efficiency_{args.size}"
    if not (args.labelled_input or args.unlabelled_input) and args.labelled_seed == args.unlabelled_seed:
        ap.error("--labelled-seed and --unlabelled-seed are equal: the two pools would hold the same jets")
    if size["labelled"] is None and args.unlabelled_seed == 1 and not args.unlabelled_input:
        ap.error("--unlabelled-seed 1 repeats the shipped sample's jets (the labelled pool at this size)")
    args.parts = args.part or list(PARTS)
    return args, size


def main(argv: list[str] | None = None) -> None:
    args, size = parse_args(argv)
    parts = plan(args, size)
    if args.dry_run:
        for p in args.parts:
            for j in parts[p]:
                print(f"[{p}] {shown(j.cmd)}")
        return
    t0 = time.perf_counter()
    args.workdir.mkdir(parents=True, exist_ok=True)
    args.cache.mkdir(parents=True, exist_ok=True)
    log = args.workdir / "study.log"
    for p in PARTS:
        if p not in args.parts:
            continue
        print(f"[{p}] {len(parts[p])} steps")
        jobs = parts[p]
        if p == "data":  # simulations side by side, then the two preprocessing steps
            run_jobs([j for j in jobs if j.key.startswith("simulate")], args.sim_procs * 2, args.workdir, log, args.force)
            run_jobs([j for j in jobs if j.key.startswith("preprocess")], 1, args.workdir, log, args.force)
        elif p == "report":
            run_jobs(jobs, min(args.parallel, len(jobs)), args.workdir, log, args.force)
            report(args, size, selected_models(args.models), log, t0)
        else:
            run_jobs(jobs, args.parallel, args.workdir, log, args.force)


if __name__ == "__main__":
    main()
