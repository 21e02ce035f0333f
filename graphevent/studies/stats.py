"""Statistics over training seeds: spread of a metric, and paired differences between models.

A label-efficiency study trains every configuration several times per label fraction; seed
``s`` draws its own labelled subset and initialisation, and the baseline trained with the
same seed sees the same subset. Two sources of uncertainty then matter:

* the **seed** (which events were labelled, which initialisation): at 1% labels it
  dominates. :func:`seed_summary` gives mean, standard deviation and min-max over seeds;
  :func:`paired_seed_difference` gives the mean of the per-seed differences
  ``metric(model, s) - metric(baseline, s)`` with a Student-t interval over seeds.
* the **test events**: :func:`pooled_paired_bootstrap` resamples the test events (the same
  draw for every seed and both models) and recomputes the seed-averaged difference. It
  holds the trained models fixed, so it does not see the seed spread; it says whether the
  test set is large enough to resolve the difference of these particular models.

Metrics are computed from per-event scores with :mod:`graphevent.metrics.roc` (numpy; any
monotonic score works, probabilities or logits alike).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from graphevent.metrics import roc
from graphevent.metrics.bootstrap import percentile_interval, resample_counts


def seed_summary(values: Sequence[float] | np.ndarray) -> dict[str, float]:
    """Mean, sample standard deviation (ddof=1; ``nan`` for one seed), min and max.

    Returns:
        ``{"n", "mean", "std", "min", "max"}``; ``inf`` values propagate to mean and max.
    """
    v = np.asarray(values, dtype=np.float64)
    if v.size == 0:
        return {"n": 0, "mean": float("nan"), "std": float("nan"), "min": float("nan"), "max": float("nan")}
    with np.errstate(invalid="ignore"):
        std = float(np.std(v, ddof=1)) if v.size > 1 else float("nan")
    return {"n": int(v.size), "mean": float(np.mean(v)), "std": std, "min": float(np.min(v)), "max": float(np.max(v))}


def t_interval(values: Sequence[float] | np.ndarray, confidence: float = 0.95) -> tuple[float, float]:
    """Student-t interval for the mean of ``values`` (``nan`` with fewer than two values)."""
    from scipy import stats

    v = np.asarray(values, dtype=np.float64)
    if v.size < 2 or not np.all(np.isfinite(v)):
        return float("nan"), float("nan")
    half = float(stats.t.ppf(0.5 + confidence / 2, v.size - 1) * np.std(v, ddof=1) / np.sqrt(v.size))
    m = float(np.mean(v))
    return m - half, m + half


def paired_seed_difference(
    model: Sequence[float] | np.ndarray, reference: Sequence[float] | np.ndarray, confidence: float = 0.95
) -> dict[str, object]:
    """Per-seed differences ``model[s] - reference[s]``, their mean and a t-interval over seeds.

    Args:
        model, reference: one value per seed, in the same seed order.

    Returns:
        ``{"diffs": [...], "mean": float, "ci": (low, high), "n": int}``.
    """
    a, b = np.asarray(model, dtype=np.float64), np.asarray(reference, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"paired_seed_difference: {a.size} values against {b.size}; expected one per seed for both")
    with np.errstate(invalid="ignore"):
        d = a - b
    return {"diffs": d.tolist(), "mean": float(np.mean(d)) if d.size else float("nan"), "ci": t_interval(d, confidence), "n": int(d.size)}


def metric_rows(scores: np.ndarray, is_signal: np.ndarray, weights: np.ndarray | None, metric: str) -> np.ndarray:
    """``auc`` or ``rejection_at_<eps_S>`` of one model per row of event weights.

    Shapes:
        scores, is_signal: ``(N,)``; weights: ``None`` or ``(R, N)`` -> ``(R,)`` (``(1,)`` for ``None``).
    """
    tp, fp = roc.roc_counts(roc.SortedScores.from_scores(scores), is_signal, weights)
    if metric == "auc":
        return roc.auc_rows(tp, fp)
    if metric.startswith("rejection_at_"):
        return roc.rejection(roc.background_efficiency_at(tp, fp, float(metric.removeprefix("rejection_at_"))))
    raise ValueError(f"metric {metric!r}: expected 'auc' or 'rejection_at_<eps_S>'")


def pooled_paired_bootstrap(
    model: Sequence[np.ndarray],
    reference: Sequence[np.ndarray],
    is_signal: np.ndarray,
    metric: str = "auc",
    resamples: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> tuple[float, float]:
    """Percentile interval of the seed-averaged difference under resampling of test events.

    Each resample draws the test events with replacement once and weights every seed's
    model and reference scores with the same draw; the statistic is
    ``mean_s(metric(model_s) - metric(reference_s))``.

    Args:
        model, reference: per seed, ``(N,)`` scores over the same test events (same order).
        is_signal: ``(N,)`` truth.
        metric: ``auc`` or ``rejection_at_<eps_S>``.
        resamples: bootstrap resamples.

    Returns:
        ``(low, high)``; ``(nan, nan)`` without resamples or seeds.
    """
    if len(model) != len(reference):
        raise ValueError(f"pooled_paired_bootstrap: {len(model)} model seeds against {len(reference)} reference seeds")
    is_signal = np.asarray(is_signal, dtype=bool)
    n = is_signal.size
    if resamples < 1 or not model:
        return float("nan"), float("nan")
    out = []
    for w in resample_counts(n, resamples, np.random.default_rng(seed)):
        with np.errstate(invalid="ignore"):
            d = sum(metric_rows(a, is_signal, w, metric) - metric_rows(b, is_signal, w, metric) for a, b in zip(model, reference))
        out.append(d / len(model))
    return percentile_interval(np.concatenate(out), confidence)


def paired_comparison(
    model: Sequence[float], reference: Sequence[float], metric: str,
    scores: tuple[Sequence[np.ndarray], Sequence[np.ndarray], np.ndarray] | None = None, resamples: int = 0,
) -> dict[str, object]:
    """:func:`paired_seed_difference` of one metric's per-seed values, with ``wins`` (seeds where
    ``model`` is higher) and ``boot_ci``: :func:`pooled_paired_bootstrap` of ``scores`` = (model's
    per-seed scores, reference's, truth) with ``resamples`` > 0, ``(nan, nan)`` otherwise."""
    d = paired_seed_difference(model, reference)
    d["wins"] = int(sum(x > 0 for x in d["diffs"]))
    d["boot_ci"] = pooled_paired_bootstrap(*scores, metric, resamples) if scores and resamples else (float("nan"), float("nan"))
    return d
