"""Regression and reconstruction metrics: hand values, streaming equals one-shot."""

import numpy as np
import pytest
import torch
from torchmetrics.functional import mean_absolute_error, mean_squared_error

from graphevent.metrics.reconstruction import MIN_BATCHES, ReconstructionMetrics
from graphevent.metrics.regression import RegressionMetrics
from graphevent.metrics.streaming import ColumnMean, RelativeResolution


def test_regression_known_bias():
    true = torch.tensor([1.0, 2.0, 4.0, 8.0])
    m = RegressionMetrics("m0")
    m.update(true + 2.0, true)
    out = m.compute(resamples=0)
    assert list(out) == ["mae", "rmse", "bias", "resolution", "resolution_constant"]
    assert out["mae"] == pytest.approx(2.0)
    assert out["rmse"] == pytest.approx(2.0)
    assert out["bias"] == pytest.approx(2.0)
    # relative residuals 2, 1, 0.5, 0.25 -> population std
    assert out["resolution"] == pytest.approx(np.std([2, 1, 0.5, 0.25]))
    # constant prediction 3.75 (the mean truth): (3.75 - true) / true = 2.75, 0.875, -0.0625, -0.53125
    assert out["resolution_constant"] == pytest.approx(np.std([2.75, 0.875, -0.0625, -0.53125]))


def test_a_narrow_window_target_is_compared_with_the_constant_predictor():
    """pT generated in 500-550 GeV: predicting the mean for every event already gives a
    resolution of about 0.026 (the demo's figure), which the constant baseline exposes."""
    g = torch.Generator().manual_seed(0)
    true = 500 + 50 * torch.rand(4000, generator=g)
    m = RegressionMetrics("pt")
    m.update(torch.full_like(true, float(true.mean())), true)
    out = m.compute(resamples=20)
    assert out["resolution"] == pytest.approx(out["resolution_constant"], rel=1e-5)
    assert 0.025 < out["resolution_constant"] < 0.028
    lo, hi = out["resolution_constant_ci95"]
    assert lo < out["resolution_constant"] < hi


def test_regression_streaming_equals_one_shot_and_torchmetrics():
    g = torch.Generator().manual_seed(0)
    true = 50 + 20 * torch.rand(900, generator=g)
    pred = true * (1 + 0.1 * torch.randn(900, generator=g)) + 1.0
    whole, streamed = RegressionMetrics("m0"), RegressionMetrics("m0")
    whole.update(pred, true)
    for chunk in torch.tensor_split(torch.arange(900), 6):
        streamed.update(pred[chunk], true[chunk])
    a, b = whole.compute(resamples=40, seed=1), streamed.compute(resamples=40, seed=1)
    for key in a:
        np.testing.assert_allclose(a[key], b[key], rtol=1e-5, err_msg=key)
    assert a["mae"] == pytest.approx(float(mean_absolute_error(pred, true)), rel=1e-5)
    assert a["rmse"] == pytest.approx(float(mean_squared_error(pred, true)) ** 0.5, rel=1e-5)
    assert a["bias"] == pytest.approx(float((pred - true).mean()), rel=1e-4)
    rel = ((pred - true) / true).double().numpy()
    assert a["resolution"] == pytest.approx(np.std(rel), rel=1e-6)
    lo, hi = a["resolution_ci95"]
    assert lo < a["resolution"] < hi


def test_relative_resolution_ignores_zero_truth():
    m = RelativeResolution()
    m.update(torch.tensor([5.0, 3.0, 6.0]), torch.tensor([0.0, 2.0, 4.0]))
    assert float(m.compute()) == pytest.approx(0.0)


def test_column_mean_batches():
    x = torch.arange(12.0).reshape(6, 2)
    m = ColumnMean(2)
    m.update(x[:4])
    m.update(x[4:])
    np.testing.assert_allclose(m.compute().numpy(), [5.0, 6.0])


def test_reconstruction_per_channel_and_set_distance():
    m = ReconstructionMetrics(["tracks", "ecal"])
    m.update(torch.tensor([[1.0, 2.0], [3.0, 4.0]]), set_distance=torch.tensor(0.5))
    m.update(torch.tensor([[5.0, 6.0]]), set_distance=2.0)
    out = m.compute(resamples=20)
    assert out["recon_error_tracks"] == pytest.approx(3.0)
    assert out["recon_error_ecal"] == pytest.approx(4.0)
    assert out["recon_error_mean"] == pytest.approx(3.5)
    # event-weighted: (0.5 * 2 + 2.0 * 1) / 3
    assert out["set_distance"] == pytest.approx(1.0)
    assert "set_distance_ci95" not in out  # 2 batches: too few to resample
    assert "recon_error_mean_ci95" in out
    assert sorted(m.columns()) == ["recon_error_ecal", "recon_error_tracks"]
    np.testing.assert_allclose(m.columns()["recon_error_ecal"], [2.0, 4.0, 6.0])


def test_set_distance_interval_resamples_batches():
    m = ReconstructionMetrics(["a"])
    for i in range(MIN_BATCHES):
        m.update(torch.ones(2, 1), set_distance=float(i))  # equal batch sizes: mean of 0..9
    out = m.compute(resamples=200, seed=0)
    assert out["set_distance"] == pytest.approx(4.5)
    lo, hi = out["set_distance_ci95"]
    # the mean of 10 draws from 0..9 (std 2.87) has std 0.91: a 95 % interval of about 4.5 +- 1.8
    assert 2.0 < lo < 4.5 < hi < 7.0
