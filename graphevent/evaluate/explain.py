"""``--explain``: what a model looks at, and how its embedding space is organised.

For a few events per class (the first ones of the split, so runs show the same events):

* the input in (eta, phi), one panel per channel (nodes with a non-zero value);
* the attention weights of each task head over the nodes (``model.explain(batch)``,
  averaged over heads);
* a gradient saliency map: |d p_true_class / d x| summed over the node features (for a
  regression-only model, |d output / d x|);
* autoencoders: the reconstruction (``model.reconstruct(batch)``) next to the original,
  channel by channel (for masked models, the hidden nodes are outlined);

and, for every run side by side, a 2-D PCA projection of the pooled event embeddings
coloured by class (pretrained vs scratch encoders compare directly).
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator
from torch.utils.data import Subset
from torch_geometric.data import Batch

from graphevent.evaluate.inference import infer
from graphevent.metrics.plots import COLORS, grid_figure, save_figure

PCA_EVENTS = 1000


@dataclass
class ExplainOutput:
    """What :func:`explain_run` produced: figures ``(title, path)``, the embedding sample for
    the PCA panel, and notes on what could not be drawn."""

    figures: list[tuple[str, Path]] = field(default_factory=list)
    embedding: tuple[np.ndarray, np.ndarray] | None = None
    notes: list[str] = field(default_factory=list)


def select_events(labels: np.ndarray, num_classes: int, per_class: int) -> list[int]:
    """Positions of the first ``per_class`` events of each class, class by class."""
    out: list[int] = []
    for c in range(num_classes):
        out += np.flatnonzero(labels == c)[:per_class].tolist()
    return out


def saliency(model: Any, batch: Batch, task: str) -> torch.Tensor:
    """|gradient| of each event's true-class probability (or regression output) w.r.t. ``x``,
    summed over node features.

    ``predict`` may be decorated with ``torch.no_grad``; :func:`inspect.unwrap` reaches the
    undecorated method so the gradient flows. Model weights get no gradient.

    Shapes:
        -> ``(num_nodes,)``
    """
    predict = inspect.unwrap(type(model).predict)
    data = batch.clone()
    data.x = batch.x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        out = predict(model, data)[task]
        score = out.gather(1, data.y.view(-1, 1)).sum() if out.ndim == 2 else out.sum()
        if not score.requires_grad:
            raise RuntimeError(f"the output of task {task!r} does not depend differentiably on x")
        (grad,) = torch.autograd.grad(score, data.x)
    return grad.abs().sum(dim=1)


#: attention whose spread over an event's nodes (std / mean) is below this is called near uniform
UNIFORM_SPREAD = 0.1


def _scatter(fig: Figure, ax, pos: np.ndarray, values: np.ndarray, title: str, cmap: str = "viridis",
             vmin: float | None = None, vmax: float | None = None, outline: np.ndarray | None = None,
             label: str = "") -> None:
    sc = ax.scatter(pos[:, 0], pos[:, 1], c=values, s=9, marker="s", cmap=cmap, vmin=vmin, vmax=vmax, linewidths=0)
    if outline is not None and outline.any():
        ax.scatter(pos[outline, 0], pos[outline, 1], s=16, marker="s", facecolors="none", edgecolors="red", linewidths=0.6)
    cb = fig.colorbar(sc, ax=ax, fraction=0.046, pad=0.03)
    cb.ax.yaxis.set_major_locator(MaxNLocator(3))
    cb.ax.tick_params(labelsize=7, length=2)
    if label:
        cb.set_label(label, fontsize=7)
    ax.set_title(title, fontsize=9)
    ax.set_aspect("equal", adjustable="box")
    ax.xaxis.set_major_locator(MaxNLocator(3))
    ax.yaxis.set_major_locator(MaxNLocator(3))
    ax.tick_params(labelsize=7, length=2)


def near_uniform(values: np.ndarray, events: np.ndarray, n_events: int) -> list[int]:
    """Events whose attention varies by less than :data:`UNIFORM_SPREAD` (std / mean) over their nodes."""
    out = []
    for i in range(n_events):
        v = values[events == i]
        if v.size > 1 and v.mean() > 0 and v.std() / v.mean() < UNIFORM_SPREAD:
            out.append(i)
    return out


def _label_outer(axes: np.ndarray) -> None:
    """y tick labels on the left column only (each row shares its limits; fewer texts to draw)."""
    for i, row in enumerate(axes):
        for j, ax in enumerate(row):
            ax.tick_params(labelleft=j == 0)


def _limits(pos: np.ndarray) -> tuple[float, float]:
    r = float(np.abs(pos).max()) if pos.size else 1.0
    return -1.05 * r, 1.05 * r


def event_figure(batch: Batch, classes: Sequence[str], features: Sequence[str], attention: Mapping[str, np.ndarray],
                 sal: np.ndarray | None, title: str, scores: np.ndarray | None = None) -> Figure:
    """Rows = events; columns = input channels, attention per task, saliency."""
    b = batch.batch.cpu().numpy()
    pos = batch.pos.detach().cpu().numpy()
    x = batch.x.detach().cpu().numpy()
    y = batch.y.view(-1).cpu().numpy()
    ids = batch.event_id.view(-1).cpu().numpy()
    cols = len(features) + len(attention) + (sal is not None)
    rows = int(batch.num_graphs)
    fig, axes = grid_figure(rows, cols, (2.3, 2.0), left=0.55, right=0.6, top=0.75, bottom=0.85, wspace=0.75, hspace=0.6)
    for i in range(rows):
        sel = b == i
        p = pos[sel]
        lim = _limits(p)
        j = 0
        head = f"event {ids[i]} ({classes[y[i]]}" + (f", p={scores[i]:.2f})" if scores is not None else ")")
        for f, name in enumerate(features):
            nz = x[sel, f] != 0
            _scatter(fig, axes[i, j], p[nz], x[sel, f][nz], f"{head}\n{name}" if j == 0 else name, label=f"{name} (scaled)")
            j += 1
        for task, att in attention.items():
            _scatter(fig, axes[i, j], p, att[sel], f"attention: {task}", cmap="magma", label="attention weight")
            j += 1
        if sal is not None:
            _scatter(fig, axes[i, j], p, sal[sel], "saliency", cmap="inferno", label="|d score / d x|")
        for ax in axes[i]:
            ax.set_xlim(*lim)
            ax.set_ylim(*lim)
    _label_eta_phi(axes)
    fig.suptitle(title)
    flat = {task: near_uniform(att, b, rows) for task, att in attention.items()}
    flat = {task: ev for task, ev in flat.items() if ev}
    if flat:  # say it, rather than let a flat colour map look like a finding
        text = "; ".join(f"attention of {task} near uniform (spread < {UNIFORM_SPREAD:.0%} of its mean) in "
                         f"{len(ev)} of {rows} events: the head pools their nodes almost equally" for task, ev in flat.items())
        fig.text(0.01, 0.005, text, fontsize=8, ha="left", va="bottom", wrap=True)
    return fig


def _label_eta_phi(axes) -> None:
    """(eta, phi) axis labels on the outer panels of an events-by-panels grid."""
    for row in axes:
        row[0].set_ylabel(r"$\phi$", fontsize=8)
    for ax in axes[-1]:
        ax.set_xlabel(r"$\eta$", fontsize=8)
    _label_outer(axes)


def reconstruction_figure(batch: Batch, rec: Any, classes: Sequence[str], features: Sequence[str], title: str) -> Figure:
    """Rows = events; columns = (original, reconstruction) for each channel, same colour scale."""
    b = batch.batch.cpu().numpy()
    pos, x = batch.pos.cpu().numpy(), batch.x.cpu().numpy()
    y, ids = batch.y.view(-1).cpu().numpy(), batch.event_id.view(-1).cpu().numpy()
    rb, rpos, rval = rec.batch.cpu().numpy(), rec.pos.float().cpu().numpy(), rec.values.float().cpu().numpy()
    hidden = rec.hidden.cpu().numpy() if rec.hidden is not None else None
    rows, cols = int(batch.num_graphs), 2 * len(features)
    fig, axes = grid_figure(rows, cols, (2.3, 2.0), left=0.55, right=0.6, top=0.75, wspace=0.5, hspace=0.6)
    for i in range(rows):
        sel, rsel = b == i, rb == i
        lim = _limits(pos[sel])
        for f, name in enumerate(features):
            orig = x[sel, f]
            recv = rval[rsel, f]
            hi = float(max(orig.max(initial=0.0), np.percentile(recv, 99) if recv.size else 0.0)) or 1.0
            nz = orig != 0
            _scatter(fig, axes[i, 2 * f], pos[sel][nz], orig[nz], f"event {ids[i]} ({classes[y[i]]})\n{name}: original" if f == 0 else f"{name}: original", vmin=0.0, vmax=hi)
            keep = np.abs(recv) > 1e-3 * hi
            outline = hidden[rsel][keep] if hidden is not None else None
            _scatter(fig, axes[i, 2 * f + 1], rpos[rsel][keep], recv[keep], f"{name}: reconstruction", vmin=0.0, vmax=hi, outline=outline)
            for ax in axes[i, 2 * f: 2 * f + 2]:
                ax.set_xlim(*lim)
                ax.set_ylim(*lim)
    _label_eta_phi(axes)
    fig.suptitle(title + ("  (red outline: nodes hidden from the encoder)" if hidden is not None else ""))
    return fig


def pca_2d(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Project rows of ``x`` on their first two principal components.

    Returns:
        ``(projection (N, 2), explained variance ratio (2,))``.
    """
    x = np.asarray(x, np.float64)
    xc = x - x.mean(axis=0)
    _, s, vt = np.linalg.svd(xc, full_matrices=False)
    k = min(2, vt.shape[0])
    proj = np.zeros((x.shape[0], 2))
    proj[:, :k] = xc @ vt[:k].T
    var = s**2
    ratio = np.zeros(2)
    ratio[:k] = var[:k] / var.sum() if var.sum() > 0 else 0.0
    return proj, ratio


def pca_figure(embeddings: Mapping[str, tuple[np.ndarray, np.ndarray]], classes: Sequence[str]) -> Figure:
    """One PCA panel per run (pooled embeddings coloured by true class), side by side."""
    n = len(embeddings)
    fig, axes = grid_figure(1, n, (3.4, 3.0), left=0.95, top=0.9, wspace=1.1)
    axes = axes[0]
    for ax, (run, (pooled, labels)) in zip(axes, embeddings.items()):
        proj, ratio = pca_2d(pooled)
        for c, name in enumerate(classes):
            sel = labels == c
            ax.scatter(proj[sel, 0], proj[sel, 1], s=5, alpha=0.6, color=COLORS[c % len(COLORS)], label=name)
        ax.set_title(f"{run}\n(pooled dim {pooled.shape[1]}, {len(labels)} events)", fontsize=9)
        ax.set_xlabel(f"PC1 ({ratio[0]:.0%} of variance)")
        ax.set_ylabel(f"PC2 ({ratio[1]:.0%})")
        ax.legend(fontsize=7, markerscale=2)
    fig.suptitle("PCA of pooled event embeddings")
    return fig


def _batch(dataset: Any, positions: Sequence[int], device: torch.device) -> Batch:
    return Batch.from_data_list([dataset[int(i)] for i in positions]).to(device)


def explain_events(labels: np.ndarray, num_classes: int, per_class: int) -> int:
    """Events :func:`explain_run` goes through: those it draws, then those of the embedding pass."""
    return len(select_events(labels, num_classes, per_class)) + min(PCA_EVENTS, len(labels))


def explain_run(model: Any, bindings: Sequence[Any], classes: Sequence[str], features: Sequence[str], dataset: Any,
                labels: np.ndarray, per_class: int, batch_size: int, device: torch.device, out_dir: Path,
                run: str, file_stem: str, on_events: Callable[[int], None] | None = None) -> ExplainOutput:
    """Explain figures of one run, written under ``out_dir``.

    Args:
        model: the run's model (eval mode, on ``device``).
        bindings: its task bindings (task names; ``reconstruction`` for autoencoders).
        classes, features: class and node-feature names.
        dataset: the evaluated events (``dataset[i]`` -> Data), in the order of ``labels``.
        labels: ``(N,)`` true class of each event of ``dataset``.
        per_class: events per class to draw.
        batch_size: events per batch of the embedding pass (:func:`~graphevent.evaluate.inference.infer`).
        device: the model's device.
        out_dir: folder of the PNGs.
        run: run name (titles); file_stem: file-safe run name.
        on_events: called with a number of events done (progress): the drawn events once
            their figures are written, then each batch of the embedding pass; in all
            :func:`explain_events` events.
    """
    result = ExplainOutput()
    task_names = [b.name for b in bindings if b.name != "reconstruction"]
    chosen = select_events(labels, len(classes), per_class)
    if chosen:
        batch = _batch(dataset, chosen, device)
        if task_names:
            with torch.no_grad():
                info = model.explain(batch)
            attention = {t: a.float().mean(dim=-1).cpu().numpy() if a.ndim == 2 else a.float().cpu().numpy()
                         for t, a in (info.get("attention") or {}).items()}
            if not attention:
                result.notes.append(f"{run}: the model reports no attention weights (no attention heads)")
            cls_task = next((b.name for b in bindings if b.name != "reconstruction" and hasattr(b.metrics, "classes")), None)
            sal_task = cls_task or task_names[0]
            try:
                sal = saliency(model, batch, sal_task).cpu().numpy()
            except RuntimeError as exc:
                sal = None
                result.notes.append(f"{run}: no saliency map ({exc})")
            scores = None
            if cls_task is not None:
                with torch.no_grad():
                    probs = model.predict(batch)[cls_task]
                scores = probs.gather(1, batch.y.view(-1, 1)).view(-1).cpu().numpy()
            fig = event_figure(batch, classes, features, attention, sal,
                               f"{run}: inputs, attention per task, saliency of {sal_task}"
                               + (" (p = probability of the true class)" if scores is not None else ""), scores)
            path = save_figure(fig, out_dir / f"events-{file_stem}.png", dpi=90)
            result.figures.append((f"{run}: inputs, attention and saliency", path))
        if hasattr(model, "reconstruct"):
            with torch.no_grad():
                rec = model.reconstruct(batch)
            fig = reconstruction_figure(batch, rec, classes, features, f"{run}: reconstruction")
            path = save_figure(fig, out_dir / f"reconstruction-{file_stem}.png", dpi=90)
            result.figures.append((f"{run}: original vs reconstruction", path))
    if on_events is not None:
        on_events(len(chosen))
    pooled, ys = [], []
    sample = Subset(dataset, range(min(PCA_EVENTS, len(labels))))
    for batch, emb in infer(model, sample, lambda m, b: m.explain(b)["pooled"], batch_size, device):
        pooled.append(emb.float().cpu().numpy())
        ys.append(batch.y.view(-1).cpu().numpy())
        if on_events is not None:
            on_events(batch.num_graphs)
    if pooled:
        result.embedding = (np.concatenate(pooled), np.concatenate(ys))
    return result
