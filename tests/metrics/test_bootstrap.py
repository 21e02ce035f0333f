"""Bootstrap resampling counts, percentile intervals and weighted regression statistics."""

import numpy as np
import pytest

from graphevent.metrics import roc
from graphevent.metrics.bootstrap import bootstrap, percentile_interval, resample_counts, weighted_regression


def test_resample_counts_rows_are_draws_with_replacement():
    rows = np.concatenate(list(resample_counts(50, 23, np.random.default_rng(0), chunk_elements=200)))
    assert rows.shape == (23, 50)
    np.testing.assert_array_equal(rows.sum(axis=1), np.full(23, 50))
    assert rows.min() >= 0
    # the expected count of each event is 1: the grand mean over 23*50 cells is exactly 1
    assert rows.mean() == 1.0


def test_chunking_does_not_change_the_draws():
    a = np.concatenate(list(resample_counts(40, 10, np.random.default_rng(5), chunk_elements=40)))
    b = np.concatenate(list(resample_counts(40, 10, np.random.default_rng(5), chunk_elements=10_000)))
    assert a.shape == b.shape == (10, 40)
    np.testing.assert_array_equal(a.sum(axis=1), b.sum(axis=1))


def test_percentile_interval_known_values():
    lo, hi = percentile_interval(np.arange(101.0))
    assert (lo, hi) == pytest.approx((2.5, 97.5))
    assert (lo, hi) == pytest.approx(tuple(np.percentile(np.arange(101.0), [2.5, 97.5])))
    lo, hi = percentile_interval(np.r_[np.arange(98.0), np.inf, np.inf, np.inf])
    assert lo == pytest.approx(2.5) and hi == np.inf
    lo, hi = percentile_interval(np.r_[np.arange(101.0), np.nan, np.nan])
    assert (lo, hi) == pytest.approx((2.5, 97.5))
    assert all(np.isnan(percentile_interval(np.array([np.nan]))))


def test_weighted_regression_known_bias_and_resolution():
    true = np.array([1.0, 2.0, 4.0, 8.0])
    out = weighted_regression(true + 2.0, true)
    assert out["bias"][0] == pytest.approx(2.0)
    assert out["mae"][0] == pytest.approx(2.0)
    assert out["rmse"][0] == pytest.approx(2.0)
    # (pred - true) / true = 2, 1, 0.5, 0.25: mean 0.9375, mean of squares 1.328125
    assert out["resolution"][0] == pytest.approx(np.sqrt(1.328125 - 0.9375**2))
    scaled = weighted_regression(1.1 * true, true)
    assert scaled["resolution"][0] == pytest.approx(0.0, abs=1e-12)
    assert scaled["bias"][0] == pytest.approx(0.1 * true.mean())


def test_weighted_regression_skips_zero_truth_for_resolution_only():
    out = weighted_regression(np.array([1.0, 3.0, 6.0]), np.array([0.0, 2.0, 4.0]))
    assert out["bias"][0] == pytest.approx(4.0 / 3.0)
    assert out["resolution"][0] == pytest.approx(0.0)  # both non-zero truths give r = 0.5


def test_bootstrap_interval_is_seeded_and_covers_the_estimate():
    rng = np.random.default_rng(0)
    sig = rng.random(4000) < 0.5
    scores = rng.normal(sig * 1.0, 1.0)
    ss = roc.SortedScores.from_scores(scores)

    def stat(w):
        return {"auc": roc.auc_rows(*roc.roc_counts(ss, sig, w))}

    a = bootstrap(len(scores), stat, 100, seed=7)
    b = bootstrap(len(scores), stat, 100, seed=7)
    c = bootstrap(len(scores), stat, 100, seed=8)
    assert a == b and a != c
    point = roc.binary_auc(scores, sig)
    lo, hi = a["auc"]
    assert lo < point < hi
    # standard error of an AUC near 0.76 with 2000 + 2000 events is ~0.0075 (Hanley-McNeil):
    # a 95 % interval is ~4 standard errors wide
    assert 0.015 < hi - lo < 0.045


def test_bootstrap_zero_resamples_gives_no_interval():
    assert bootstrap(10, lambda w: {"x": w.sum(axis=1)}, 0) == {}
