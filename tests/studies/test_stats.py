import numpy as np
import pytest

from graphevent.studies.stats import metric_rows, paired_seed_difference, pooled_paired_bootstrap, seed_summary, t_interval


def test_seed_summary_by_hand():
    s = seed_summary([0.80, 0.82, 0.84])
    assert s["n"] == 3 and s["mean"] == pytest.approx(0.82) and s["std"] == pytest.approx(0.02)
    assert (s["min"], s["max"]) == (0.80, 0.84)
    one = seed_summary([0.7])
    assert one["mean"] == 0.7 and np.isnan(one["std"])


def test_t_interval_by_hand():
    lo, hi = t_interval([1.0, 2.0, 3.0])
    half = 4.302652729911275 / np.sqrt(3)  # t(0.975, 2 dof) * std 1 / sqrt(3)
    assert (lo, hi) == pytest.approx((2 - half, 2 + half))
    assert all(np.isnan(t_interval([1.0])))


def test_paired_seed_difference_by_hand():
    d = paired_seed_difference([0.80, 0.70, 0.90], [0.75, 0.72, 0.86])
    assert d["diffs"] == pytest.approx([0.05, -0.02, 0.04]) and d["mean"] == pytest.approx(0.07 / 3)
    assert d["ci"] == pytest.approx(t_interval([0.05, -0.02, 0.04]))
    with pytest.raises(ValueError, match="3 values against 2"):
        paired_seed_difference([1, 2, 3], [1, 2])


def test_metric_rows_by_hand_and_for_logits():
    scores = np.array([0.1, 0.4, 0.35, 0.8])
    sig = np.array([0, 0, 1, 1], bool)
    assert metric_rows(scores, sig, None, "auc")[0] == pytest.approx(0.75)
    assert metric_rows(scores, sig, None, "rejection_at_0.75")[0] == pytest.approx(2.0)
    assert metric_rows(scores, sig, None, "rejection_at_0.5")[0] == np.inf  # no background above the cut
    logits = np.log(scores / (1 - scores))  # a monotone transform: the same ROC
    assert metric_rows(logits, sig, None, "auc")[0] == pytest.approx(0.75)
    with pytest.raises(ValueError, match="metric 'acc'"):
        metric_rows(scores, sig, None, "acc")


def test_pooled_paired_bootstrap():
    rng = np.random.default_rng(0)
    sig = rng.random(400) < 0.5
    noise = [rng.normal(size=400) for _ in range(3)]
    good = [sig * 1.5 + n for n in noise]
    weak = [sig * 0.5 + n for n in noise]
    lo, hi = pooled_paired_bootstrap(good, weak, sig, "auc", resamples=200)
    point = np.mean([metric_rows(g, sig, None, "auc")[0] - metric_rows(w, sig, None, "auc")[0] for g, w in zip(good, weak)])
    assert 0 < lo < point < hi
    same = pooled_paired_bootstrap(good, [np.exp(g) for g in good], sig, "auc", resamples=50)  # monotone: identical ROC
    assert same == (0.0, 0.0)
    assert all(np.isnan(pooled_paired_bootstrap(good, weak, sig, resamples=0)))
