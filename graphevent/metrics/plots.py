"""Evaluation figures (matplotlib, object API with the Agg canvas: no display needed).

* :func:`roc_figure` -- ROC curves of several runs overlaid: x = signal efficiency,
  y = background rejection 1/eps_B on a log axis (the jet-tagging convention), with the
  random-guess line 1/eps_S for reference;
* :func:`score_figure` -- distribution of each class score, per true class;
* :func:`response_figure` -- regression response: predicted vs true, median response
  pred/true with its 68 % band in bins of true, and the relative residuals;
* :func:`training_figure` -- losses and validation metrics per epoch from ``metrics.jsonl``;
* :func:`reconstruction_figure` -- per-channel reconstruction error of several runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
import re
from typing import Any

import numpy as np
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from graphevent.config.tasks import TARGET_UNITS, target_unit  # noqa: F401  (TARGET_UNITS: re-exported)


def file_stem(name: str) -> str:
    """File-safe version of a run or class name."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name).strip("_") or "run"


def with_unit(target: str) -> str:
    """``pt`` -> ``pt [GeV]``; unknown targets unchanged."""
    unit = target_unit(target)
    return f"{target} [{unit}]" if unit else target


COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
#: line styles taking turns once the colours run out (an 11th run is dashed, not a second solid blue)
LINESTYLES = ("-", "--", "-.")


def grid_figure(rows: int, cols: int, cell: tuple[float, float], left: float = 0.7, right: float = 0.2,
                top: float = 0.6, bottom: float = 0.55, wspace: float = 0.6, hspace: float = 0.7):
    """A figure of ``rows x cols`` axes with margins fixed in inches.

    Fixed margins instead of a layout engine: constrained layout costs seconds per
    figure on grids with colorbars, and these figures are drawn for every run.

    Args:
        cell: (width, height) of one axes in inches.
        left, right, top, bottom: figure margins in inches.
        wspace, hspace: gaps between axes in inches.

    Returns:
        ``(figure, axes (rows, cols))``.
    """
    width = left + right + cols * cell[0] + (cols - 1) * wspace
    height = top + bottom + rows * cell[1] + (rows - 1) * hspace
    fig = Figure(figsize=(width, height))
    axes = fig.subplots(rows, cols, squeeze=False)
    fig.subplots_adjust(left=left / width, right=1 - right / width, top=1 - top / height, bottom=bottom / height,
                        wspace=wspace / cell[0], hspace=hspace / cell[1])
    return fig, axes


def save_figure(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG (via a temporary name, so a PNG on disk is always complete)."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    fig.savefig(tmp, dpi=dpi, format="png")
    tmp.replace(path)
    return path


def roc_figure(
    curves: Mapping[str, tuple[np.ndarray, np.ndarray]],
    title: str,
    labels: Mapping[str, str] | None = None,
) -> Figure:
    """Background rejection vs signal efficiency, one line per run.

    Where no background passes (rejection infinite, eps_S up to some value), a dotted line
    continues the curve to the top edge, marked ``∞``.

    Args:
        curves: ``{run: (eps_s, eps_b)}`` ROC points (from ``ClassificationMetrics.roc_curves``).
        title: axes title (task and signal class).
        labels: optional legend text per run (e.g. with the AUC).
    """
    fig, axes = grid_figure(1, 1, (5.0, 3.9), left=0.8, top=0.45)
    ax = axes[0, 0]
    ymax = 1.0
    infinite = []  # (colour, eps_S up to which no background passes, rejection right after)
    for i, (run, (eff_s, eff_b)) in enumerate(curves.items()):
        color = COLORS[i % len(COLORS)]
        ls = LINESTYLES[i // len(COLORS) % len(LINESTYLES)]
        ok = (eff_b > 0) & (eff_s > 0)
        rej = 1.0 / eff_b[ok]
        if rej.size:
            ymax = max(ymax, float(rej.max()))
        ax.plot(eff_s[ok], rej, color=color, ls=ls, lw=1.6, label=(labels or {}).get(run, run))
        zero = (eff_b == 0) & (eff_s > 0)
        if zero.any() and rej.size:
            infinite.append((color, float(eff_s[zero].max()), float(rej[0])))
    x = np.linspace(0.01, 1.0, 200)
    ax.plot(x, 1.0 / x, color="0.55", ls="--", lw=1.0, label="random guess")
    top = max(10.0, ymax * 1.5)
    for color, x0, y0 in infinite:  # rejection is infinite left of x0: a dotted line to the top edge
        ax.plot([x0, x0], [y0, top], color=color, lw=1.2, ls=":")
        ax.annotate("∞", (x0, top), xytext=(-4, -11), textcoords="offset points", ha="right", color=color, fontsize=10)
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.9, top)
    ax.set_xlabel(r"signal efficiency $\varepsilon_S$")
    ax.set_ylabel(r"background rejection $1/\varepsilon_B$")
    ax.set_title(title)
    ax.grid(True, which="both", alpha=0.25)
    ax.legend(fontsize=8, loc="best")
    return fig


def score_range(values: np.ndarray) -> tuple[float, float]:
    """Histogram range of probabilities: their min to max with 2 % margins, within [0, 1]
    (scores between 0.45 and 0.52 get all 40 bins, not 3 of a fixed 0-1 range)."""
    values = np.asarray(values, np.float64)
    values = values[np.isfinite(values)]
    if not values.size:
        return 0.0, 1.0
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.02 * (hi - lo), 1e-3)
    return max(0.0, lo - pad), min(1.0, hi + pad)


def score_figure(scores: np.ndarray, labels: np.ndarray, classes: Sequence[str], title: str, signal: int | None = None) -> Figure:
    """Histograms of class scores per true class.

    Args:
        scores: ``(N, C)`` probabilities.
        labels: ``(N,)`` true class indices.
        classes: class names.
        title: figure title.
        signal: binary tasks: plot only the signal-class score (one panel).

    Each panel's x range is that of its scores (:func:`score_range`).
    """
    which = [signal] if signal is not None else list(range(len(classes)))
    fig, axes = grid_figure(1, len(which), (3.9, 3.0), top=0.7)
    axes = axes[0]
    for ax, c in zip(axes, which):
        lo, hi = score_range(scores[:, c])
        bins = np.linspace(lo, hi, 41)
        for k, name in enumerate(classes):
            sel = labels == k
            if not sel.any():
                continue
            ax.hist(scores[sel, c], bins=bins, density=True, histtype="step", lw=1.6,
                    color=COLORS[k % len(COLORS)], label=f"true {name} ({int(sel.sum())})")
        ax.set_xlabel(f"score_{classes[c]}")
        ax.set_ylabel("density")
        ax.set_xlim(lo, hi)
        ax.xaxis.set_major_locator(MaxNLocator(5))  # a narrow range has long tick labels: fewer of them
        ax.legend(fontsize=8)
    fig.suptitle(title)
    return fig


def response_figure(pred: np.ndarray, true: np.ndarray, target: str, title: str, n_bins: int = 10) -> Figure:
    """Regression response: predicted vs true, median pred/true per bin of true, residuals."""
    pred, true = np.asarray(pred, np.float64), np.asarray(true, np.float64)
    fig, axes = grid_figure(1, 3, (3.6, 3.0), top=0.75, wspace=1.3)
    ax1, ax2, ax3 = axes[0]
    lo, hi = np.nanpercentile(np.r_[pred, true], [0.5, 99.5]) if true.size else (0.0, 1.0)
    hi = hi if hi > lo else lo + 1.0
    *_, image = ax1.hist2d(true, pred, bins=40, range=[[lo, hi], [lo, hi]], cmap="Blues", cmin=1)
    fig.colorbar(image, ax=ax1, fraction=0.046, pad=0.03).set_label("events per bin")
    ax1.plot([lo, hi], [lo, hi], color="0.3", ls="--", lw=1.0)
    ax1.set_xlabel(f"true {with_unit(target)}")
    ax1.set_ylabel(f"predicted {with_unit(target)}")
    ax1.set_title("predicted vs true")

    ok = true != 0
    ratio = pred[ok] / true[ok]
    edges = np.unique(np.nanpercentile(true[ok], np.linspace(0, 100, n_bins + 1))) if ok.any() else np.array([0.0, 1.0])
    centers, med, q16, q84 = [], [], [], []
    for a, b in zip(edges[:-1], edges[1:]):
        sel = (true[ok] >= a) & (true[ok] <= b)
        if sel.sum() < 2:
            continue
        centers.append(0.5 * (a + b))
        m, l, h = np.percentile(ratio[sel], [50, 16, 84])
        med.append(m), q16.append(l), q84.append(h)
    ax2.fill_between(centers, q16, q84, color=COLORS[0], alpha=0.25, label="16-84 %")
    ax2.plot(centers, med, "o-", color=COLORS[0], label="median")
    ax2.axhline(1.0, color="0.3", ls="--", lw=1.0)
    ax2.set_xlabel(f"true {with_unit(target)}")
    ax2.set_ylabel("response  pred / true")
    ax2.set_title("response in bins of true (equal counts)")
    ax2.legend(fontsize=8)

    rel = ratio - 1.0
    if rel.size:
        r_lo, r_hi = np.nanpercentile(rel, [0.5, 99.5])
        ax3.hist(rel, bins=50, range=(min(r_lo, -1e-3), max(r_hi, 1e-3)), histtype="stepfilled", color=COLORS[0], alpha=0.6)
        ax3.axvline(0.0, color="0.3", ls="--", lw=1.0)
        ax3.set_title(f"(pred - true) / true: mean {rel.mean():+.3g}, std {rel.std():.3g}")
    ax3.set_xlabel("(pred - true) / true")
    ax3.set_ylabel("events")
    fig.suptitle(title)
    return fig


def training_figure(records: Sequence[Mapping[str, Any]], title: str, units: Mapping[str, str] | None = None) -> Figure:
    """Losses and every validation metric per epoch (one ``metrics.jsonl`` record per
    epoch), three panels per row; each panel's y axis names its value.

    Args:
        units: unit of a validation metric by record key (``{"val_mass_mae": "GeV"}``),
            shown on its y axis; keys not given are unitless.
    """
    epochs = np.array([r.get("epoch", i) for i, r in enumerate(records)], dtype=float)
    loss_keys = [k for k in ("train_loss", "val_loss") if any(isinstance(r.get(k), (int, float)) for r in records)]
    skip = {"epoch", "step", "time", "lr", "events_per_s", *loss_keys}
    metric_keys = []
    for r in records:
        for k, v in r.items():
            if k.startswith("val_") and k not in skip and isinstance(v, (int, float)) and not isinstance(v, bool) and k not in metric_keys:
                metric_keys.append(k)
    panels = 1 + len(metric_keys)
    cols = min(panels, 3)
    rows = int(np.ceil(panels / cols))
    fig, axes = grid_figure(rows, cols, (3.6, 2.5), top=0.75, wspace=0.7)
    axes = axes.ravel()

    def series(key: str) -> np.ndarray:
        return np.array([r.get(key) if isinstance(r.get(key), (int, float)) else np.nan for r in records], dtype=float)

    for i, k in enumerate(loss_keys):
        axes[0].plot(epochs, series(k), "o-", ms=3, color=COLORS[i], label=k)
    axes[0].set_title("loss")
    axes[0].set_xlabel("epoch")
    axes[0].set_ylabel("loss")
    if loss_keys:
        axes[0].legend(fontsize=8)
    for ax, k in zip(axes[1:], metric_keys):
        ax.plot(epochs, series(k), "o-", ms=3, color=COLORS[2])
        ax.set_title(k)
        ax.set_xlabel("epoch")
        unit = (units or {}).get(k)
        ax.set_ylabel(f"{k} [{unit}]" if unit else k)
    for ax in axes[panels:]:
        ax.set_visible(False)
    for ax in axes[:panels]:
        ax.grid(True, alpha=0.25)
        if 0 < np.unique(epochs).size <= 10:  # a tick per epoch (a locator puts 0.96, 0.98 ... round one epoch)
            ax.set_xticks(np.unique(epochs))
            ax.set_xlim(np.nanmin(epochs) - 0.5, np.nanmax(epochs) + 0.5)
        else:
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    return fig


def reconstruction_figure(per_run: Mapping[str, Mapping[str, tuple[float, tuple[float, float] | None]]], title: str,
                          definitions: Mapping[str, str] | None = None) -> Figure:
    """Grouped bars: reconstruction error per channel, one colour per run, 95 % interval whiskers.

    Args:
        per_run: ``{run: {channel: (value, (low, high) | None)}}``.
        definitions: ``{run: what its error measures}`` (models define it differently); shown
            in the legend, and a note says when the runs' errors differ in kind.
    """
    definitions = dict(definitions or {})
    runs = list(per_run)
    channels = list(dict.fromkeys(c for r in runs for c in per_run[r]))
    fig, axes = grid_figure(1, 1, (max(4.0, 0.9 * len(channels) * max(1, len(runs)) + 1.5), 3.0), left=0.8, top=0.45)
    ax = axes[0, 0]
    width = 0.8 / max(1, len(runs))
    x = np.arange(len(channels))
    for i, run in enumerate(runs):
        vals = np.array([per_run[run].get(c, (np.nan, None))[0] for c in channels], dtype=float)
        err = np.zeros((2, len(channels)))
        for j, c in enumerate(channels):
            ci = per_run[run].get(c, (np.nan, None))[1]
            if ci is not None and None not in ci:
                err[:, j] = [max(vals[j] - ci[0], 0.0), max(ci[1] - vals[j], 0.0)]
        label = f"{run}: {definitions[run]}" if run in definitions else run
        ax.bar(x + (i - (len(runs) - 1) / 2) * width, vals, width, yerr=err, capsize=3,
               color=COLORS[i % len(COLORS)], label=label)
    ax.set_xticks(x, channels)
    ax.set_ylabel("reconstruction error (standardised units²)")
    kinds = {definitions.get(r) for r in runs}
    ax.set_title(title + ("\ndifferent error definitions: compare each run with itself, not the bars of two runs"
                          if len(kinds) > 1 else ""), fontsize=9 if len(kinds) > 1 else None)
    ax.legend(fontsize=8)
    ax.grid(True, axis="y", alpha=0.25)
    return fig
