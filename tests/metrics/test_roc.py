"""ROC, AUC and rejection on inputs whose answers are worked out by hand."""

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc, binary_roc

from graphevent.metrics import roc

# Hand example with a tie group: signal 0.9, 0.6, 0.6, 0.2; background 0.6, 0.6, 0.3, 0.1.
# Cuts from the top give ROC points (eps_S, eps_B):
#   (0,0) (.25,0) (.75,.5) (.75,.75) (1,.75) (1,1)
# AUC (Mann-Whitney): 0.9 beats 4, each 0.6 beats 2 and ties 2 (3 each), 0.2 beats 1 -> 11/16.
# eps_S = 0.5 lies on the segment (.25,0)-(.75,.5) halfway: eps_B = .25 -> rejection 4.
# eps_S = 0.3 is 1/10 along it: eps_B = .05 -> rejection 20.
HAND_SCORES = np.array([0.9, 0.6, 0.6, 0.2, 0.6, 0.6, 0.3, 0.1])
HAND_SIGNAL = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)


def test_hand_roc_points():
    eff_s, eff_b, thr = roc.roc_curve(HAND_SCORES, HAND_SIGNAL)
    np.testing.assert_allclose(eff_s, [0, 0.25, 0.75, 0.75, 1, 1])
    np.testing.assert_allclose(eff_b, [0, 0, 0.5, 0.75, 0.75, 1])
    np.testing.assert_allclose(thr, [np.inf, 0.9, 0.6, 0.3, 0.2, 0.1])


def test_hand_auc_and_rejection():
    assert roc.binary_auc(HAND_SCORES, HAND_SIGNAL) == pytest.approx(11 / 16)
    assert roc.rejection_at(HAND_SCORES, HAND_SIGNAL, 0.5) == pytest.approx(4.0)
    assert roc.rejection_at(HAND_SCORES, HAND_SIGNAL, 0.3) == pytest.approx(20.0)


def test_perfect_inverted_constant():
    sig = np.array([1, 1, 1, 0, 0, 0], dtype=bool)
    perfect = np.array([0.9, 0.8, 0.7, 0.3, 0.2, 0.1])
    assert roc.binary_auc(perfect, sig) == 1.0
    assert roc.rejection_at(perfect, sig, 0.5) == np.inf  # no background passes: reported as inf
    inverted = 1 - perfect
    assert roc.binary_auc(inverted, sig) == 0.0
    assert roc.rejection_at(inverted, sig, 0.5) == pytest.approx(1.0)  # every background passes first
    constant = np.full(6, 0.5)
    assert roc.binary_auc(constant, sig) == 0.5
    # one tie group: the ROC is the diagonal (0,0)-(1,1), so eps_B = eps_S
    assert roc.rejection_at(constant, sig, 0.3) == pytest.approx(1 / 0.3)


def test_undefined_without_both_classes():
    assert np.isnan(roc.binary_auc(np.array([0.1, 0.2]), np.array([True, True])))
    assert np.isnan(roc.rejection_at(np.array([0.1, 0.2]), np.array([False, False]), 0.5))


def test_matches_torchmetrics_with_ties():
    rng = np.random.default_rng(1)
    sig = rng.random(3000) < 0.4
    scores = np.round(np.clip(rng.normal(0.5 + 0.15 * sig, 0.2), 0, 1), 2)  # many ties
    expected = float(binary_auroc(torch.tensor(scores), torch.tensor(sig.astype(int))))
    assert roc.binary_auc(scores, sig) == pytest.approx(expected, abs=1e-6)
    fpr, tpr, _ = binary_roc(torch.tensor(scores), torch.tensor(sig.astype(int)))
    eff_s, eff_b, _ = roc.roc_curve(scores, sig)
    np.testing.assert_allclose(eff_s, tpr.numpy(), atol=1e-6)
    np.testing.assert_allclose(eff_b, fpr.numpy(), atol=1e-6)


def test_rejection_on_continuous_scores_matches_definition():
    """Without ties, eps_B at eps_S is the background fraction above the k-th best signal score."""
    rng = np.random.default_rng(2)
    sig = rng.random(501) < 0.5
    scores = rng.normal(sig * 1.0, 1.0)
    sig_sorted = np.sort(scores[sig])[::-1]
    for target in (0.3, 0.5, 0.77):
        k = int(np.ceil(target * sig.sum() - 1e-9))  # cut that first reaches eps_S >= target
        eff_b = np.mean(scores[~sig] > sig_sorted[k - 1])
        assert roc.rejection_at(scores, sig, target) == pytest.approx(1.0 / eff_b)


def test_weights_equal_explicit_repetition():
    """A count row gives the same AUC and rejection as the events repeated that many times."""
    rng = np.random.default_rng(3)
    sig = rng.random(200) < 0.5
    scores = np.round(rng.normal(sig * 0.8, 1.0), 1)
    counts = rng.integers(0, 4, size=(5, 200)).astype(float)
    ss = roc.SortedScores.from_scores(scores)
    tp, fp = roc.roc_counts(ss, sig, counts)
    aucs = roc.auc_rows(tp, fp)
    rej = roc.rejection(roc.background_efficiency_at(tp, fp, 0.5))
    for r in range(5):
        rep = counts[r].astype(int)
        s_rep, y_rep = np.repeat(scores, rep), np.repeat(sig, rep)
        assert aucs[r] == pytest.approx(roc.binary_auc(s_rep, y_rep), abs=1e-12)
        assert rej[r] == pytest.approx(roc.rejection_at(s_rep, y_rep, 0.5), rel=1e-12)


def test_bad_working_point():
    with pytest.raises(ValueError, match="signal efficiency must be in"):
        roc.rejection_at(HAND_SCORES, HAND_SIGNAL, 0.0)
