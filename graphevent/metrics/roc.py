"""ROC curves, AUC and background rejection from per-event scores, optionally weighted.

Everything here is numpy and vectorised over *rows of event weights*: a weight matrix
``(R, N)`` evaluates ``R`` weighted copies of the same ``N`` events at once. Plain
evaluation uses one row of ones; a bootstrap uses rows of resampling counts
(:mod:`graphevent.metrics.bootstrap`). The scores are sorted once, whatever ``R`` is.

Conventions (the jet-tagging literature's):

* ROC points are (eps_S, eps_B) = (signal efficiency, background efficiency) of the cut
  ``score >= t`` for every distinct score ``t``, from the highest down, starting at (0, 0)
  and ending at (1, 1). Tied scores form one point.
* AUC is the trapezoidal area under eps_S(eps_B); it equals the Mann-Whitney statistic
  P(s_signal > s_background) + 0.5 P(tie), the same number as ``torchmetrics`` AUROC.
* The background rejection at a working point eps_S* is 1 / eps_B(eps_S*), with eps_B
  linearly interpolated between the two ROC points that bracket eps_S* (the first point
  with eps_S >= eps_S* and the point before it). A linear segment between two ROC points
  is what a random mix of the two cuts achieves, so the interpolated value is attainable.
  When eps_B(eps_S*) = 0 the rejection is ``inf``, reported as such, never clipped.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class SortedScores:
    """Scores sorted once (descending) and grouped by distinct value.

    Args:
        order: permutation that sorts the events by descending score.
        starts: index (into the sorted events) where each distinct score begins.
        thresholds: the distinct scores, descending.
    """

    order: np.ndarray
    starts: np.ndarray
    thresholds: np.ndarray

    @classmethod
    def from_scores(cls, scores: np.ndarray) -> "SortedScores":
        scores = np.asarray(scores, dtype=np.float64)
        order = np.argsort(-scores, kind="stable")
        s = scores[order]
        if s.size == 0:
            return cls(order=order, starts=np.zeros(0, np.int64), thresholds=s)
        starts = np.flatnonzero(np.r_[True, s[1:] != s[:-1]])
        return cls(order=order, starts=starts, thresholds=s[starts])


def _as_rows(weights: np.ndarray | None, n: int) -> np.ndarray:
    if weights is None:
        return np.ones((1, n), dtype=np.float64)
    weights = np.asarray(weights)
    if weights.dtype not in (np.float32, np.float64):
        weights = weights.astype(np.float64)
    return weights[None, :] if weights.ndim == 1 else weights


def roc_counts(
    sorted_scores: SortedScores, is_signal: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Cumulative (weighted) signal and background counts passing each distinct cut.

    Cumulative sums run over the sorted events and are read at the last event of each
    group of tied scores. Weights keep their dtype: float32 bootstrap counts are summed
    exactly (integers below 2**24), anything else is float64.

    Args:
        sorted_scores: the scores, sorted once with :meth:`SortedScores.from_scores`.
        is_signal: boolean per event.
        weights: ``None`` (all ones), ``(N,)`` or ``(R, N)`` event weights.

    Shapes:
        -> ``tp, fp``: ``(R, G + 1)`` with ``G`` distinct scores; column 0 is the empty cut.
    """
    n = sorted_scores.order.size
    w = _as_rows(weights, n)
    rows = w.shape[0]
    zeros = np.zeros((rows, 1), dtype=w.dtype)
    if n == 0:
        return zeros, zeros
    w = w[:, sorted_scores.order]
    sig = np.asarray(is_signal, dtype=bool)[sorted_scores.order]
    tp = np.cumsum(w * sig, axis=1)
    total = np.cumsum(w, axis=1)
    if sorted_scores.starts.size < n:  # ties: keep the last event of each group
        ends = np.r_[sorted_scores.starts[1:], n] - 1
        tp, total = tp[:, ends], total[:, ends]
    fp = total - tp
    return np.concatenate([zeros, tp], axis=1), np.concatenate([zeros, fp], axis=1)


def _rates(tp: np.ndarray, fp: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = tp / tp[:, -1:]
        fpr = fp / fp[:, -1:]
    return tpr, fpr


def roc_curve(
    scores: np.ndarray, is_signal: np.ndarray, weights: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ROC curve of the cut ``score >= t``.

    Args:
        scores: ``(N,)`` signal scores (probabilities or any monotone score).
        is_signal: ``(N,)`` booleans.
        weights: optional ``(N,)`` event weights.

    Returns:
        ``(eps_s, eps_b, thresholds)``: ``(G + 1,)`` each; point 0 is (0, 0) with threshold
        ``inf``, then one point per distinct score, descending.
    """
    ss = SortedScores.from_scores(scores)
    tp, fp = roc_counts(ss, is_signal, None if weights is None else np.asarray(weights)[None, :])
    tpr, fpr = _rates(tp, fp)
    return tpr[0], fpr[0], np.r_[np.inf, ss.thresholds]


def auc_rows(tp: np.ndarray, fp: np.ndarray) -> np.ndarray:
    """Trapezoidal AUC per row from cumulative counts (``nan`` if a row lacks either class).

    Shapes:
        ``tp, fp: (R, G + 1)`` -> ``(R,)``
    """
    tpr, fpr = _rates(tp, fp)
    return np.sum(np.diff(fpr, axis=1) * (tpr[:, 1:] + tpr[:, :-1]) * 0.5, axis=1)


def background_efficiency_at(tp: np.ndarray, fp: np.ndarray, eff_s: float) -> np.ndarray:
    """eps_B at signal efficiency ``eff_s`` per row, linear between the bracketing ROC points.

    Shapes:
        ``tp, fp: (R, G + 1)`` -> ``(R,)`` (``nan`` for rows without signal or background).
    """
    if not 0.0 < eff_s <= 1.0:
        raise ValueError(f"signal efficiency must be in (0, 1], got {eff_s}")
    tpr, fpr = _rates(tp, fp)
    valid = np.isfinite(tpr[:, -1]) & np.isfinite(fpr[:, -1])
    reached = np.nan_to_num(tpr, nan=1.0) >= eff_s - 1e-12
    k = np.argmax(reached, axis=1)  # first point with eps_S >= target; k >= 1 since tpr[:, 0] = 0
    k = np.maximum(k, 1)
    rows = np.arange(tpr.shape[0])
    x0, x1 = tpr[rows, k - 1], tpr[rows, k]
    y0, y1 = fpr[rows, k - 1], fpr[rows, k]
    with np.errstate(invalid="ignore", divide="ignore"):
        frac = np.where(x1 > x0, (eff_s - x0) / (x1 - x0), 1.0)
    out = y0 + np.clip(frac, 0.0, 1.0) * (y1 - y0)
    return np.where(valid, out, np.nan)


def rejection(eff_b: np.ndarray | float) -> np.ndarray:
    """Background rejection 1 / eps_B; ``inf`` where eps_B == 0, ``nan`` stays ``nan``."""
    eff_b = np.asarray(eff_b, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return np.where(eff_b == 0, np.inf, 1.0 / eff_b)


def binary_auc(scores: np.ndarray, is_signal: np.ndarray) -> float:
    """Unweighted AUC (Mann-Whitney with ties counted 1/2); ``nan`` without both classes."""
    tp, fp = roc_counts(SortedScores.from_scores(scores), is_signal)
    return float(auc_rows(tp, fp)[0])


def rejection_at(scores: np.ndarray, is_signal: np.ndarray, eff_s: float) -> float:
    """Unweighted background rejection 1/eps_B at signal efficiency ``eff_s``."""
    tp, fp = roc_counts(SortedScores.from_scores(scores), is_signal)
    return float(rejection(background_efficiency_at(tp, fp, eff_s))[0])
