"""Classification metrics: binary (signal vs background) and multi-class (one-vs-rest).

Binary tasks (two classes) follow the jet-tagging convention: one class is the *signal*
(class index 1 by default, ``signal=`` to change), its softmax probability is the score,
and the figures are ROC AUC, accuracy (cut ``p_signal > 0.5``) and the background
rejection 1/eps_B at signal efficiencies 0.3 and 0.5 (see :mod:`graphevent.metrics.roc`
for the interpolation). Multi-class tasks report accuracy (argmax), per-class and macro
one-vs-rest AUC, the confusion matrix (rows = true class, columns = predicted), and the
rejection of each background class ``b`` at the same signal efficiencies: the signal
class ``s`` (index 1 by default) against the events of ``b`` alone, scored with
``p_s / (p_s + p_b)``, the likelihood-ratio discriminant of the multi-class tagging
benchmarks (JetClass, Qu et al., arXiv:2202.03772); other classes' events are left out.

Headline values come from ``torchmetrics`` (exact, ``thresholds=None``), fed with
probabilities only (binary AUROC would apply a sigmoid to values outside [0, 1]); the
bootstrap intervals come from the vectorised numpy implementation in
:mod:`graphevent.metrics.roc`, which gives the same point values.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchmetrics import MetricCollection
from torchmetrics.classification import (
    BinaryAccuracy,
    BinaryAUROC,
    BinaryROC,
    MulticlassAccuracy,
    MulticlassAUROC,
    MulticlassConfusionMatrix,
)

from graphevent.errors import ConfigError
from graphevent.metrics import roc
from graphevent.metrics.base import EventBuffer, TaskMetrics, register_task_metrics, with_intervals
from graphevent.metrics.bootstrap import bootstrap

WORKING_POINTS: tuple[float, ...] = (0.3, 0.5)


def rejection_key(eff_s: float, background: str | None = None) -> str:
    """Metric name of the background rejection at signal efficiency ``eff_s``: ``rejection_at_0.3``,
    or for one background class of a multi-class task ``rejection_<background>_at_0.3``."""
    return f"rejection_at_{eff_s:g}" if background is None else f"rejection_{background}_at_{eff_s:g}"


def pair_scores(probs: np.ndarray, signal: int, background: int) -> np.ndarray:
    """``p_s / (p_s + p_b)`` per event, the discriminant of signal ``s`` against background ``b``
    (0.5 where both probabilities are 0).

    Shapes:
        ``probs: (N, C)`` -> ``(N,)`` float64
    """
    ps = probs[:, signal].astype(np.float64)
    total = ps + probs[:, background]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, ps / total, 0.5)


def resolve_signal(classes: Sequence[str], signal: str | int | None) -> int:
    """Index of the signal class from a name or index (``None`` -> 1).

    Raises:
        ConfigError: the class is not one of ``classes``.
    """
    if signal is None:
        return 1
    if isinstance(signal, str) and signal in classes:
        return list(classes).index(signal)
    try:
        index = int(signal)
    except (TypeError, ValueError):
        index = -1
    if 0 <= index < len(classes):
        return index
    raise ConfigError(f"--signal {signal!r}: not a class of this task; expected one of {list(classes)} or an index 0..{len(classes) - 1}")


@register_task_metrics("classification")
class ClassificationMetrics(TaskMetrics):
    """Streaming metrics of one classification head.

    Args:
        classes: class names (``probs`` columns, ``target`` values index them).
        signal: index of the signal class (default 1): binary tasks score it, multi-class
            tasks measure the rejection of every other class against it.
        working_points: signal efficiencies at which the rejection is reported.

    Shapes:
        ``update(probs: (B, C), target: (B,))``
    """

    kind = "classification"
    generic_columns = True

    def __init__(self, classes: Sequence[str], signal: int = 1, working_points: Sequence[float] = WORKING_POINTS) -> None:
        self.classes = list(classes)
        if len(self.classes) < 2:
            raise ConfigError(f"classification needs at least 2 classes, got {self.classes}")
        self.binary = len(self.classes) == 2
        self.signal = int(signal)
        if not 0 <= self.signal < len(self.classes):
            raise ConfigError(f"signal class index {self.signal}: expected 0..{len(self.classes) - 1} (classes {self.classes})")
        #: the classes whose rejection a multi-class task reports (every class but the signal)
        self.backgrounds = [] if self.binary else [name for c, name in enumerate(self.classes) if c != self.signal]
        self.working_points = tuple(working_points)
        c = len(self.classes)
        if self.binary:
            self.metrics = MetricCollection({"auc": BinaryAUROC(), "roc": BinaryROC(), "accuracy": BinaryAccuracy(threshold=0.5)})
            self.headline = ("auc", "accuracy", *(rejection_key(e) for e in self.working_points))
        else:
            self.metrics = MetricCollection({
                "accuracy": MulticlassAccuracy(num_classes=c, average="micro"),
                "auc": MulticlassAUROC(num_classes=c, average=None),
            })
            self.headline = (
                "accuracy",
                "auc_macro",
                *(rejection_key(e, b) for b in self.backgrounds for e in self.working_points),
            )
        self.confusion = MulticlassConfusionMatrix(num_classes=c)
        self.scores = EventBuffer(np.float32)
        self.labels = EventBuffer(np.int64)

    @classmethod
    def for_task(cls, task: Any, classes: Sequence[str], targets: Sequence[str], signal: int | str | None = None) -> "ClassificationMetrics":
        return cls(classes, signal=resolve_signal(classes, signal))

    def update_batch(self, pred: torch.Tensor, batch: Any) -> None:
        self.update(pred, batch.y.view(-1))

    def validation_values(self) -> dict[str, float]:
        """``auc`` (the signal class's, or the macro one-vs-rest AUC) and ``accuracy``, in [0, 1]."""
        values = self.metrics.compute()
        if self.binary:
            auc = float(values["auc"])
        else:
            per_class = values["auc"].double().cpu().numpy()
            defined = per_class[~np.isnan(per_class)]  # torchmetrics' macro average skips undefined classes
            auc = float(defined.mean()) if defined.size else float("nan")
        return {"auc": min(max(auc, 0.0), 1.0), "accuracy": min(max(float(values["accuracy"]), 0.0), 1.0)}

    def figures(self, task: str, run: str, out: Path, stem: str) -> list[tuple[str, Path]]:
        from graphevent.metrics import plots

        fig = plots.score_figure(self.scores.array(), self.labels.array(), self.classes, f"{run}: {task} scores",
                                 signal=self.signal if self.binary else None)
        return [(f"{run}: {task} score distributions", plots.save_figure(fig, out / f"scores-{stem}-{task}.png"))]

    @classmethod
    def comparison_figures(cls, task, runs, out, definitions):
        """ROC curves of every run overlaid, one figure per signal class (one vs rest for
        more than two classes), labelled with each run's AUC (and 1/eps_B at eps_S = 0.5)."""
        from graphevent.metrics import plots
        from graphevent.metrics.tables import format_value

        figs = []
        for signal in dict.fromkeys(c for _, _, m in runs for c in m.roc_curves()):
            curves, labels = {}, {}
            for run, vals, m in runs:
                rc = m.roc_curves()
                if signal not in rc:
                    continue
                curves[run] = rc[signal]
                auc = vals.get("auc", vals.get(f"auc_{signal}"))
                extra = f", 1/εB(εS=0.5) = {format_value(vals['rejection_at_0.5'], 3)}" if "rejection_at_0.5" in vals else ""
                labels[run] = f"{run} (AUC {format_value(auc, 4)}{extra})"
            binary = all(m.binary for _, _, m in runs)
            name = f"roc-{task}.png" if binary else f"roc-{task}-{plots.file_stem(signal)}.png"
            title = f"{task}: signal = {signal}" + ("" if binary else " (one vs rest)")
            figs.append((f"ROC {title}", plots.save_figure(plots.roc_figure(curves, title, labels), out / name)))
        return figs

    @property
    def kind_detail(self) -> str:
        return "binary" if self.binary else "multiclass"

    def to(self, device: torch.device | str) -> "ClassificationMetrics":
        self.metrics = self.metrics.to(device)
        self.confusion = self.confusion.to(device)
        return self

    def buffers(self) -> dict[str, EventBuffer]:
        return {"scores": self.scores, "labels": self.labels}

    def predicted_labels(self, probs: torch.Tensor) -> torch.Tensor:
        """Predicted class: ``p_signal > 0.5`` for binary tasks, argmax otherwise."""
        if self.binary:
            other = 1 - self.signal
            return torch.where(probs[:, self.signal] > 0.5, self.signal, other)
        return probs.argmax(dim=1)

    @torch.no_grad()
    def update(self, probs: torch.Tensor, target: torch.Tensor) -> None:
        probs = probs.detach().float().clamp(0.0, 1.0)
        target = target.detach().long().view(-1)
        if probs.ndim != 2 or probs.shape[1] != len(self.classes) or probs.shape[0] != target.shape[0]:
            raise ValueError(
                f"probs {tuple(probs.shape)} / target {tuple(target.shape)}: expected (B, {len(self.classes)}) and (B,)"
            )
        if self.binary:
            self.metrics.update(probs[:, self.signal], (target == self.signal).long())
        else:
            self.metrics.update(probs, target)
        self.confusion.update(self.predicted_labels(probs), target)
        self.scores.append(probs)
        self.labels.append(target)

    def _point_values(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        values = self.metrics.compute()
        if self.binary:
            out["auc"] = float(values["auc"])
            out["accuracy"] = float(values["accuracy"])
            fpr, tpr, _ = values["roc"]
            tpr = tpr.double().cpu().numpy()[None, :]
            fpr = fpr.double().cpu().numpy()[None, :]
            for eff in self.working_points:
                out[rejection_key(eff)] = float(roc.rejection(roc.background_efficiency_at(tpr, fpr, eff))[0])
        else:
            out["accuracy"] = float(values["accuracy"])
            per_class = values["auc"].double().cpu().numpy()
            counts = np.bincount(self.labels.array(), minlength=len(self.classes))
            per_class = np.where(counts > 0, per_class, np.nan)  # AUC undefined without the class
            for name, value in zip(self.classes, per_class):
                out[f"auc_{name}"] = float(value)
            out["auc_macro"] = float(np.mean(per_class))
            scores, labels = self.scores.array(), self.labels.array()
            for b in self.backgrounds:
                pair = self._pair(scores, labels, b)
                tp, fp = roc.roc_counts(pair[0], pair[1])
                for eff in self.working_points:
                    out[rejection_key(eff, b)] = float(roc.rejection(roc.background_efficiency_at(tp, fp, eff))[0])
        return out

    def _pair(self, scores: np.ndarray, labels: np.ndarray, background: str):
        """(sorted ``p_s / (p_s + p_b)``, is-signal, event indices) over the events of the
        signal class and of ``background``."""
        b = self.classes.index(background)
        events = np.flatnonzero((labels == self.signal) | (labels == b))
        ss = roc.SortedScores.from_scores(pair_scores(scores[events], self.signal, b))
        return ss, labels[events] == self.signal, events

    def _statistic(self):
        scores = self.scores.array()
        labels = self.labels.array()
        if self.binary:
            sig = labels == self.signal
            ss = roc.SortedScores.from_scores(scores[:, self.signal])
            correct = ((scores[:, self.signal] > 0.5) == sig).astype(np.float64)

            def stat(w: np.ndarray) -> dict[str, np.ndarray]:
                tp, fp = roc.roc_counts(ss, sig, w)
                out = {"auc": roc.auc_rows(tp, fp), "accuracy": (w @ correct) / w.sum(axis=1)}
                for eff in self.working_points:
                    out[rejection_key(eff)] = roc.rejection(roc.background_efficiency_at(tp, fp, eff))
                return out

            return stat
        correct = (scores.argmax(axis=1) == labels).astype(np.float64)
        sorted_per_class = [roc.SortedScores.from_scores(scores[:, c]) for c in range(len(self.classes))]
        pairs = {b: self._pair(scores, labels, b) for b in self.backgrounds}

        def stat(w: np.ndarray) -> dict[str, np.ndarray]:
            out = {"accuracy": (w @ correct) / w.sum(axis=1)}
            aucs = []
            for c, (name, ss) in enumerate(zip(self.classes, sorted_per_class)):
                tp, fp = roc.roc_counts(ss, labels == c, w)
                aucs.append(roc.auc_rows(tp, fp))
                out[f"auc_{name}"] = aucs[-1]
            out["auc_macro"] = np.mean(aucs, axis=0)
            for b, (ss, is_signal, events) in pairs.items():
                tp, fp = roc.roc_counts(ss, is_signal, w[:, events])
                for eff in self.working_points:
                    out[rejection_key(eff, b)] = roc.rejection(roc.background_efficiency_at(tp, fp, eff))
            return out

        return stat

    def compute(self, resamples: int = 200, seed: int = 0, confidence: float = 0.95) -> dict[str, Any]:
        values = self._point_values()
        intervals = bootstrap(len(self.labels), self._statistic(), resamples, seed, confidence)
        out = with_intervals(values, intervals)
        out["confusion_matrix"] = self.confusion.compute().cpu().long().tolist()
        return out

    def roc_curves(self) -> dict[str, tuple[np.ndarray, np.ndarray]]:
        """Exact ROC curve(s) ``{signal class: (eps_s, eps_b)}``: the signal class for binary
        tasks, every class one-vs-rest for multi-class tasks."""
        scores, labels = self.scores.array(), self.labels.array()
        which = [self.signal] if self.binary else range(len(self.classes))
        out = {}
        for c in which:
            eff_s, eff_b, _ = roc.roc_curve(scores[:, c], labels == c)
            out[self.classes[c]] = (eff_s, eff_b)
        return out

    def columns(self) -> dict[str, np.ndarray]:
        scores = self.scores.array()
        return {f"score_{name}": scores[:, c] for c, name in enumerate(self.classes)}

    def describe(self) -> dict[str, Any]:
        info: dict[str, Any] = {"kind": self.kind_detail, "classes": self.classes}
        info["signal"] = self.classes[self.signal]
        info["working_points"] = list(self.working_points)
        if not self.binary:
            info["backgrounds"] = list(self.backgrounds)
        return info

    def __repr__(self) -> str:
        return f"{type(self).__name__}(classes={self.classes}, signal={self.signal}, events={len(self.labels)})"


def paired_auc_differences(
    scores: dict[str, np.ndarray],
    is_signal: np.ndarray,
    reference: str,
    resamples: int,
    seed: int = 0,
    confidence: float = 0.95,
) -> dict[str, dict[str, Any]]:
    """AUC of each run minus the reference run's on the same events, with a paired bootstrap interval.

    Every resample draws the same events for all runs, so the interval describes the
    difference itself. Two runs scored on the same test events make correlated errors, and
    a difference can be resolved well below the width of either run's own AUC interval.

    Args:
        scores: run -> ``(N,)`` signal scores, all over the same events in the same order.
        is_signal: ``(N,)`` bool truth.
        reference: the run the others are compared with (a key of ``scores``).
        resamples: bootstrap resamples (0: point values only).
        seed, confidence: as for :func:`~graphevent.metrics.bootstrap.bootstrap`.

    Returns:
        ``{run: {"auc_diff": AUC(run) - AUC(reference), "auc_diff_ci95": [low, high]}}`` for
        every run but the reference (no interval without resamples).
    """
    sorted_scores = {name: roc.SortedScores.from_scores(s) for name, s in scores.items()}
    is_signal = np.asarray(is_signal, dtype=bool)

    def aucs(weights: np.ndarray) -> dict[str, np.ndarray]:
        return {name: roc.auc_rows(*roc.roc_counts(ss, is_signal, weights)) for name, ss in sorted_scores.items()}

    def differences(weights: np.ndarray) -> dict[str, np.ndarray]:
        a = aucs(weights)
        return {name: a[name] - a[reference] for name in scores if name != reference}

    point = differences(np.ones((1, is_signal.size)))
    intervals = bootstrap(is_signal.size, differences, resamples, seed, confidence)
    out = {}
    for name, value in point.items():
        out[name] = {"auc_diff": float(value[0])}
        if name in intervals:
            out[name]["auc_diff_ci95"] = [float(v) for v in intervals[name]]
    return out
