"""A study's results: what ``graphevent eval`` wrote, statistics over seeds, tables, figure, docs section.

:func:`collect` reads each ``(fraction, seed)``'s ``metrics.json`` (and, for the bootstrap over
test events, the signal scores of its prediction files); :func:`summarise` gives the spread over
seeds per configuration and fraction and the differences paired by seed to the reference and
of pretrained minus scratch (:mod:`graphevent.studies.stats`); :func:`tables` and :func:`figure`
render them; :func:`lead_results` puts a generated section at the top of a docs page.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from graphevent.errors import OutputError
from graphevent.studies.plan import Config, Plan, eval_dir, probe_file
from graphevent.studies.stats import paired_comparison, seed_summary, t_interval

def signal_scores(pred_file: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(event_id, is_signal, signal score)`` of a predictions file, by event id; signal = class index 1."""
    import pyarrow.parquet as pq

    from graphevent.evaluate.predictions import read_predictions

    cls = json.loads(pq.read_schema(pred_file).metadata[b"graphevent"])["classes"][1]
    cols = read_predictions(pred_file)
    key = next(k for k in (f"score_{cls}", f"label_score_{cls}") if k in cols)
    order = np.argsort(cols["event_id"], kind="stable")
    return cols["event_id"][order], (cols["label"] == 1)[order], cols[key].astype("float64")[order]


def collect(plan: Plan, work: Path, scores: bool = True) -> dict:
    """Per ``(config name, fraction, seed)``: the ``plan.metrics`` of ``graphevent eval``'s metrics.json.

    With ``scores``, also each run's signal scores (for :func:`summarise`'s bootstrap), checking
    that every run was scored on the same test events.

    Raises:
        OutputError: an evaluation is missing, or saw other test events than the first.
    """
    from graphevent.metrics.plots import file_stem

    res: dict = {"runs": {}, "scores": {}, "truth": None, "event_ids": None}
    for frac in plan.fractions:
        for seed in plan.seed_list(frac):
            out = eval_dir(work, frac, seed)
            if not (out / "metrics.json").is_file():
                raise OutputError(f"{out / 'metrics.json'}: not found; run the study's eval stage first")
            doc = json.loads((out / "metrics.json").read_text())
            for c in plan.configs:
                label = doc["runs"][c.tag]["label"]
                res["runs"][(c.name, frac, seed)] = {k: float(label[k]) for k, _, _ in plan.metrics}
                if not scores:
                    continue
                ids, sig, score = signal_scores(out / f"predictions-{file_stem(c.tag)}.parquet")
                if res["event_ids"] is None:
                    res["event_ids"], res["truth"] = ids, sig
                elif not (np.array_equal(ids, res["event_ids"]) and np.array_equal(sig, res["truth"])):
                    raise OutputError(f"{out}: {c.name} was evaluated on other test events than the first run")
                res["scores"][(c.name, frac, seed)] = score
    return res


def collect_probes(plan: Plan, work: Path) -> dict[tuple[str, str, float], list[dict]]:
    """Per ``(run, init, fraction)``: the rows ``graphevent probe`` wrote for each of the fraction's seeds, in seed order.

    Raises:
        OutputError: a probe file is missing.
    """
    out: dict[tuple[str, str, float], list[dict]] = {}
    for frac in plan.fractions:
        for seed in plan.seed_list(frac):
            file = probe_file(work, frac, seed)
            if not file.is_file():
                raise OutputError(f"{file}: not found; run the study's probe stage first")
            for row in json.loads(file.read_text())["rows"]:
                out.setdefault((row["run"], row["init"], frac), []).append(row)
    return out


def probe_table(probes: dict[tuple[str, str, float], list[dict]]) -> list[str]:
    """Markdown: per run, initialisation and fraction, each probe column's mean ± std [min, max]
    over seeds (a value ``graphevent probe`` could not fit, ``None``, is left out)."""
    from graphevent.evaluate.probes import PROBE_COLUMNS, TABLE_HEADERS

    lines = [f"| run | init | labels | labelled events | {' | '.join(TABLE_HEADERS[k].replace(chr(10), ' ') for k in PROBE_COLUMNS)} |",
             "|---|---|---:|---:|" + "---|" * len(PROBE_COLUMNS)]
    for (run, init, frac), rows in sorted(probes.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1] != "trained")):
        labelled = ", ".join(dict.fromkeys(f"{r['labelled']:,}" for r in rows))
        cells = [fmt_spread(seed_summary([r[k] for r in rows if r.get(k) is not None]), 3) for k in PROBE_COLUMNS]
        lines.append(f"| {run} | {init} | {frac:.1%} | {labelled} | {' | '.join(cells)} |")
    return lines


def scratch_pairs(configs: list[Config] | tuple[Config, ...]) -> list[tuple[str, str]]:
    """``(pretrained, scratch)`` names: the same family, experiment and overrides, with and without init."""
    out = []
    for c in configs:
        twin = next((s for s in configs if c.init and not s.init and (s.group, s.experiment, s.sets) == (c.group, c.experiment, c.sets)), None)
        if twin:
            out.append((c.name, twin.name))
    return out


def summarise(res: dict, plan: Plan, resamples: int = 0) -> dict:
    """Spread over seeds (with ``ci``, the t-interval of the mean), and differences paired by
    seed: to the reference, pretrained - scratch, and each ablation minus its ``versus``.

    A difference is :func:`~graphevent.studies.stats.paired_comparison`'s (``wins``, and
    ``boot_ci`` with ``resamples`` > 0 and scores collected).
    """

    def diff(a: str, b: str, frac: float) -> dict:
        seeds, out = plan.seed_list(frac), {}
        scores = (([res["scores"][(a, frac, s)] for s in seeds], [res["scores"][(b, frac, s)] for s in seeds], res["truth"])
                  if res["scores"] else None)
        for k, _, _ in plan.metrics:
            out[k] = paired_comparison([res["runs"][(a, frac, s)][k] for s in seeds], [res["runs"][(b, frac, s)][k] for s in seeds],
                                       k, scores, resamples)
        return out

    rows, vs_ref, vs_scratch, ablations = {}, {}, {}, {}
    for frac in plan.fractions:
        for c in plan.configs:
            values = {k: [res["runs"][(c.name, frac, s)][k] for s in plan.seed_list(frac)] for k, _, _ in plan.metrics}
            rows[(c.name, frac)] = {k: seed_summary(v) | {"ci": t_interval(v)} for k, v in values.items()}
            if c.name != plan.reference:
                vs_ref[(c.name, frac)] = diff(c.name, plan.reference, frac)
            if c.versus:
                ablations[(c.name, frac)] = diff(c.name, c.versus, frac) | {"versus": c.versus}
        for pre, scratch in scratch_pairs(plan.configs):
            vs_scratch[(pre, frac)] = diff(pre, scratch, frac) | {"scratch": scratch}
    return {"rows": rows, "vs_ref": vs_ref, "vs_scratch": vs_scratch, "ablations": ablations}


def fmt_spread(s: dict, digits: int) -> str:
    """``mean ± std [min, max]`` over seeds (the mean alone for one seed)."""
    if s["n"] == 0:
        return "n/a"
    f = f"{{:.{digits}f}}"
    text = f.format(s["mean"])
    if s["n"] > 1:
        text += f" ± {f.format(s['std'])} [{f.format(s['min'])}, {f.format(s['max'])}]"
    return text


def fmt_diff(d: dict, digits: int) -> str:
    """``mean [t-interval over seeds] (bootstrap interval over test events) wins/seeds``."""
    f = f"{{:+.{digits}f}}"
    (lo, hi), (blo, bhi) = d["ci"], d["boot_ci"]
    text = f.format(d["mean"]) + (f" [{f.format(lo)}, {f.format(hi)}]" if lo == lo else " [n/a]")
    text += f" ({f.format(blo)}, {f.format(bhi)})" if blo == blo else ""
    return f"{text} {d['wins']}/{d['n']}"


def tables(summary: dict, plan: Plan, events: dict[tuple[str, float], str] | None = None) -> list[str]:
    """Markdown: the spread per (configuration, fraction) with the difference to the reference,
    pretrained minus scratch, and the ablations, for each of ``plan.metrics``. ``events``: a
    "labelled events" column, by (name, fraction)."""
    ev, ms = events is not None, plan.metrics
    diffs = lambda d: " | ".join(fmt_diff(d[k], n) for k, _, n in ms)  # noqa: E731
    lines = [f"| configuration | labels |{' labelled events |' * ev} {' | '.join(h for _, h, _ in ms)} | "
             + " | ".join(f"{h.split(' @')[0]} - {plan.reference}" for _, h, _ in ms) + " |",
             f"|---|---:|{'---:|' * ev}" + "---|" * 2 * len(ms)]
    for frac in sorted(plan.fractions):
        for c in plan.configs:
            r, d = summary["rows"][(c.name, frac)], summary["vs_ref"].get((c.name, frac))
            n = f" {events[(c.name, frac)]} |" if ev else ""
            lines.append(f"| {c.name} | {frac:.1%} |{n} {' | '.join(fmt_spread(r[k], n_) for k, _, n_ in ms)} | "
                         + (diffs(d) if d else " | ".join("—" for _ in ms)) + " |")
    heads = " | ".join(h.split(" @")[0] for _, h, _ in ms)
    for key, intro, first in (("vs_scratch", "Pretrained minus scratch (the same model, seed and labelled subset):", "model"),
                              ("ablations", "Ablations: each configuration minus the one it changes one ingredient of "
                                            "(same seed and labelled subset):", "ablation")):
        if summary.get(key):
            lines += ["", intro, "", f"| {first} | labels | {heads} |", "|---|---:|" + "---|" * len(ms)]
            for frac in sorted(plan.fractions):
                lines += [f"| {name} - {d.get('scratch') or d['versus']} | {frac:.1%} | {diffs(d)} |"
                          for (name, f), d in summary[key].items() if f == frac]
    return lines


def figure(summary: dict, plan: Plan, path: Path, title: str) -> Path:
    """Save :func:`draw_figure` to ``path`` (PNG)."""
    fig = draw_figure(summary, plan, title)  # selects the Agg backend before pyplot is imported
    import matplotlib.pyplot as plt

    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def draw_figure(summary: dict, plan: Plan, title: str):
    """Each of ``plan.metrics`` against the label fraction (log x): mean over seeds with
    t-interval error bars; the reference dashed, pretrained solid, scratch dotted; the
    configurations side by side at each fraction. The legend sits below the panels, where it
    cannot cover an error bar."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fr = sorted(plan.fractions)
    groups = list(dict.fromkeys(c.group for c in plan.configs if c.name != plan.reference))
    columns = min(len(plan.configs), 3)
    legend_rows = -(-len(plan.configs) // columns)
    row = 0.22  # inches per legend row at fontsize 8
    height = 4.2 + row * legend_rows  # the panels, then the legend below them
    fig, axes = plt.subplots(1, len(plan.metrics), figsize=(5.5 * len(plan.metrics), height), squeeze=False)
    for ax, (key, label, _) in zip(axes[0], plan.metrics):
        for i, c in enumerate(plan.configs):
            # each configuration a little to the side (log x), so that error bars do not hide each other
            x = np.array(fr) * 1.04 ** (i - (len(plan.configs) - 1) / 2)
            mean = np.array([summary["rows"][(c.name, f)][key]["mean"] for f in fr])
            lo, hi = np.array([summary["rows"][(c.name, f)][key]["ci"] for f in fr]).T
            style = dict(color="black", ls="--", marker="s") if c.name == plan.reference else \
                dict(color=plt.get_cmap("tab10")(groups.index(c.group) % 10), ls="-" if c.init else ":", marker="o" if c.init else "^")
            err = np.nan_to_num(np.abs(np.stack([mean - lo, hi - mean])))
            ax.errorbar(x, mean, yerr=err, label=c.name, lw=1.6, ms=4, capsize=3, **style)
        ax.set_xscale("log")
        ax.set_xticks(fr, [f"{f * 100:g}%" for f in fr])
        ax.minorticks_off()
        ax.set_xlabel("label fraction")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, fontsize=8, loc="lower center", ncol=columns, frameon=False)
    fig.suptitle(title, fontsize=10)
    fig.tight_layout(rect=(0, (row * legend_rows + 0.1) / height, 1, 1))  # panels above the legend's rows
    return fig


def lead_results(results: Path, section: str, begin: str, end: str) -> None:
    """Put ``section`` at the top of ``results`` between the ``begin`` and ``end`` markers; keep the rest."""
    old = results.read_text() if results.is_file() else ""
    if begin in old and end in old:
        old = old[: old.index(begin)] + old[old.index(end) + len(end):]
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(f"{begin}\n{section.rstrip()}\n{end}\n\n{old.lstrip()}")


def device_name(gpus: int) -> str:
    """The GPU a study's runs used (``gpus`` > 0 and one there), else the CPU."""
    import torch

    if gpus and torch.cuda.is_available():
        return f"{torch.cuda.get_device_name(0)} x{gpus}"
    from graphevent.train.rundir import cpu_name

    return f"CPU: {cpu_name()}, {os.cpu_count()} cores"


def versions() -> str:
    """``name version`` of graphevent and the packages its numbers depend on (those installed)."""
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for pkg in ("graphevent", "torch", "torch-geometric", "torchmetrics", "pythia8mc", "fastjet", "numpy", "h5py"):
        try:
            out.append(f"{pkg} {version(pkg)}")
        except PackageNotFoundError:
            continue
    return ", ".join(out)
