"""Classification metrics against values worked out by hand and against torchmetrics."""

import numpy as np
import pytest
import torch
from torchmetrics.functional.classification import binary_auroc, multiclass_auroc

from graphevent.errors import ConfigError
from graphevent.metrics.classification import ClassificationMetrics, resolve_signal

# same hand example as test_roc: AUC 11/16, rejection 20 at eps_S 0.3 and 4 at 0.5,
# accuracy with the cut p_signal > 0.5: 3 of 4 signal and 2 of 4 background right -> 5/8
P_SIGNAL = torch.tensor([0.9, 0.6, 0.6, 0.2, 0.6, 0.6, 0.3, 0.1])
LABELS = torch.tensor([1, 1, 1, 1, 0, 0, 0, 0])


def binary_probs(p_signal, signal=1):
    cols = [1 - p_signal, p_signal] if signal == 1 else [p_signal, 1 - p_signal]
    return torch.stack(cols, dim=1)


def compute(m, **kw):
    return m.compute(resamples=kw.pop("resamples", 0), **kw)


@pytest.mark.parametrize("signal", [1, 0])
def test_binary_hand_values(signal):
    m = ClassificationMetrics(["bkg", "sig"] if signal == 1 else ["sig", "bkg"], signal=signal)
    labels = LABELS if signal == 1 else 1 - LABELS
    m.update(binary_probs(P_SIGNAL, signal), labels)
    out = compute(m)
    assert out["auc"] == pytest.approx(11 / 16)
    assert out["accuracy"] == pytest.approx(5 / 8)
    assert out["rejection_at_0.3"] == pytest.approx(20.0, rel=1e-5)
    assert out["rejection_at_0.5"] == pytest.approx(4.0, rel=1e-5)
    cm = np.array(out["confusion_matrix"])
    # rows true, cols predicted; background: 2 right, 2 called signal; signal: 3 right, 1 missed
    bkg, sig = 1 - signal, signal
    assert cm[bkg, bkg] == 2 and cm[bkg, sig] == 2 and cm[sig, sig] == 3 and cm[sig, bkg] == 1
    assert m.describe() == {"kind": "binary", "classes": m.classes, "signal": "sig", "working_points": [0.3, 0.5]}


def test_perfect_inverted_constant_classifiers():
    y = torch.tensor([0, 0, 0, 1, 1, 1])
    p = torch.tensor([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    cases = {
        "perfect": (p, dict(auc=1.0, accuracy=1.0, r30=np.inf, r50=np.inf)),
        "inverted": (1 - p, dict(auc=0.0, accuracy=0.0, r30=1.0, r50=1.0)),
        # all 0.5: nothing passes p > 0.5 so every event is called background (accuracy 1/2),
        # and the ROC is the diagonal so the rejection is 1/eps_S
        "constant": (torch.full((6,), 0.5), dict(auc=0.5, accuracy=0.5, r30=1 / 0.3, r50=2.0)),
    }
    for name, (scores, want) in cases.items():
        m = ClassificationMetrics(["q", "g"])
        m.update(binary_probs(scores), y)
        out = compute(m)
        assert out["auc"] == pytest.approx(want["auc"]), name
        assert out["accuracy"] == pytest.approx(want["accuracy"]), name
        assert out["rejection_at_0.3"] == pytest.approx(want["r30"], rel=1e-5), name
        assert out["rejection_at_0.5"] == pytest.approx(want["r50"], rel=1e-5), name


def test_multiclass_hand_values():
    probs = torch.tensor([
        [0.7, 0.2, 0.1],  # y0 right
        [0.4, 0.5, 0.1],  # y0 -> 1
        [0.2, 0.6, 0.2],  # y1 right
        [0.1, 0.3, 0.6],  # y1 -> 2
        [0.1, 0.1, 0.8],  # y2 right
        [0.3, 0.3, 0.4],  # y2 right
    ])
    y = torch.tensor([0, 0, 1, 1, 2, 2])
    m = ClassificationMetrics(["a", "b", "c"])
    m.update(probs, y)
    out = compute(m)
    assert out["accuracy"] == pytest.approx(4 / 6)
    assert out["confusion_matrix"] == [[1, 1, 0], [0, 1, 1], [0, 0, 2]]
    # one-vs-rest: class a separates perfectly; b: 0.6 beats 4, 0.3 beats 2 and ties 1 -> 6.5/8;
    # c: 0.8 beats 4, 0.4 beats 3 -> 7/8
    assert out["auc_a"] == pytest.approx(1.0)
    assert out["auc_b"] == pytest.approx(6.5 / 8)
    assert out["auc_c"] == pytest.approx(7 / 8)
    assert out["auc_macro"] == pytest.approx((1 + 6.5 / 8 + 7 / 8) / 3)
    assert m.headline == ("accuracy", "auc_macro", "rejection_a_at_0.3", "rejection_a_at_0.5", "rejection_c_at_0.3", "rejection_c_at_0.5")


def test_multiclass_rejection_of_each_background_by_hand():
    """Signal s = class 1 against each background b alone, scored with p_s / (p_s + p_b)."""
    probs = torch.tensor([
        [0.1, 0.8, 0.1],    # signal: vs a 8/9, vs c 8/9
        [0.3, 0.4, 0.3],    # signal: vs a 4/7, vs c 4/7
        [0.6, 0.2, 0.2],    # a: 0.25
        [0.04, 0.76, 0.2],  # a: 0.95, above both signal events
        [0.5, 0.1, 0.4],    # a: 1/6
        [0.1, 0.5, 0.4],    # c: 5/9, below both signal events
        [0.1, 0.6, 0.3],    # c: 2/3, between them; its p_s/(p_s+p_a) = 6/7 would pass every cut on "a"
    ])
    y = torch.tensor([1, 1, 0, 0, 0, 2, 2])
    m = ClassificationMetrics(["a", "s", "c"], working_points=(0.5, 1.0))
    m.update(probs, y)
    out = compute(m, resamples=50)
    # s vs a: ROC (0, 1/3) (1/2, 1/3) (1, 1/3) (1, 2/3) (1, 1): eps_B = 1/3 at eps_S 0.5 and 1
    assert out["rejection_a_at_0.5"] == pytest.approx(3.0)
    assert out["rejection_a_at_1"] == pytest.approx(3.0)
    # s vs c: ROC (1/2, 0) (1/2, 1/2) (1, 1/2) (1, 1): no c event passes eps_S 0.5, half pass 1
    assert out["rejection_c_at_0.5"] == float("inf")
    assert out["rejection_c_at_1"] == pytest.approx(2.0)
    assert m.backgrounds == ["a", "c"] and m.describe()["signal"] == "s"
    assert "rejection_s_at_0.5" not in out
    # the bootstrap covers the same metrics: every interval brackets its point value
    low, high = out["rejection_a_at_0.5_ci95"]
    assert low <= 3.0 <= high
    # another signal class: "a" against s and c
    m0 = ClassificationMetrics(["a", "s", "c"], signal=0, working_points=(0.5,))
    m0.update(probs, y)
    # a vs s: a scores 3/4, 1/20, 5/6; s scores 1/9, 3/7 -> cut >= 3/4 keeps 2 of 3 a and no s
    assert compute(m0)["rejection_s_at_0.5"] == float("inf")
    # a vs c: a scores 3/4, 1/6, 5/9; c scores 1/5, 1/4 -> eps_S 0.5 between (1/3, 0) and (2/3, 0): inf
    assert compute(m0)["rejection_c_at_0.5"] == float("inf")


def random_probs(n, c, seed):
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, c, (n,), generator=g)
    logits = torch.randn(n, c, generator=g) + 1.5 * torch.nn.functional.one_hot(y, c)
    probs = torch.softmax(torch.round(logits * 4) / 4, dim=1)  # coarse logits: ties in scores
    return probs, y


@pytest.mark.parametrize("c", [2, 4])
def test_streaming_equals_one_shot(c):
    probs, y = random_probs(1000, c, seed=c)
    whole = ClassificationMetrics([f"k{i}" for i in range(c)])
    whole.update(probs, y)
    streamed = ClassificationMetrics([f"k{i}" for i in range(c)])
    for chunk in torch.tensor_split(torch.arange(1000), 7):
        streamed.update(probs[chunk], y[chunk])
    a, b = compute(whole, resamples=30, seed=3), compute(streamed, resamples=30, seed=3)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_allclose(np.asarray(a[key], float), np.asarray(b[key], float), rtol=1e-6, err_msg=key)


def test_fast_auc_equals_torchmetrics():
    """The numpy path used by the bootstrap gives the torchmetrics headline value."""
    for c in (2, 3):
        probs, y = random_probs(2000, c, seed=10 + c)
        m = ClassificationMetrics([f"k{i}" for i in range(c)])
        m.update(probs, y)
        stat = m._statistic()(np.ones((1, len(y))))
        if c == 2:
            expected = float(binary_auroc(probs[:, 1], y))
            assert stat["auc"][0] == pytest.approx(expected, abs=1e-6)
            assert compute(m)["auc"] == pytest.approx(expected, abs=1e-6)
            assert stat["rejection_at_0.5"][0] == pytest.approx(compute(m)["rejection_at_0.5"], rel=1e-5)
        else:
            expected = multiclass_auroc(probs, y, num_classes=3, average=None).numpy()
            np.testing.assert_allclose([stat[f"auc_k{i}"][0] for i in range(3)], expected, atol=1e-6)
            assert stat["auc_macro"][0] == pytest.approx(compute(m)["auc_macro"], abs=1e-6)


def test_intervals_present_for_every_headline_figure():
    probs, y = random_probs(500, 2, seed=0)
    m = ClassificationMetrics(["q", "g"])
    m.update(probs, y)
    out = m.compute(resamples=50, seed=0)
    for name in m.headline:
        lo, hi = out[f"{name}_ci95"]
        assert lo <= out[name] <= hi or np.isinf(out[name]), name


def test_columns_and_roc_curves():
    m = ClassificationMetrics(["bkg", "sig"])
    m.update(binary_probs(P_SIGNAL), LABELS)
    cols = m.columns()
    assert sorted(cols) == ["score_bkg", "score_sig"]
    np.testing.assert_allclose(cols["score_sig"], P_SIGNAL.numpy())
    eff_s, eff_b = m.roc_curves()["sig"]
    np.testing.assert_allclose(eff_s, [0, 0.25, 0.75, 0.75, 1, 1])
    np.testing.assert_allclose(eff_b, [0, 0, 0.5, 0.75, 0.75, 1])


def test_resolve_signal():
    assert resolve_signal(["quark", "gluon"], None) == 1
    assert resolve_signal(["quark", "gluon"], "quark") == 0
    assert resolve_signal(["quark", "gluon"], "0") == 0
    with pytest.raises(ConfigError, match=r"--signal 'top': not a class of this task; expected one of \['quark', 'gluon'\]"):
        resolve_signal(["quark", "gluon"], "top")


def test_paired_auc_differences_by_hand_and_against_unpaired_intervals():
    from graphevent.metrics.classification import paired_auc_differences

    # by hand: signal events 0, 1; background 2, 3.  a: 3 of 4 (signal, background) pairs
    # ordered correctly (0.4 < 0.6), AUC 0.75; b: all 4, AUC 1.0; c = a, difference 0
    is_signal = np.array([True, True, False, False])
    a = np.array([0.9, 0.4, 0.6, 0.1])
    b = np.array([0.9, 0.8, 0.6, 0.1])
    out = paired_auc_differences({"a": a, "b": b, "c": a.copy()}, is_signal, "a", resamples=0)
    assert out == {"b": {"auc_diff": 0.25}, "c": {"auc_diff": 0.0}}

    # correlated runs on 2,000 events: the paired interval of the difference contains the
    # point difference and is far narrower than either run's own AUC interval
    from graphevent.metrics import roc
    from graphevent.metrics.bootstrap import bootstrap

    rng = np.random.default_rng(0)
    truth = rng.random(2000) < 0.5
    base = rng.normal(truth * 1.0, 1.0)
    runs = {"ref": base, "better": base + 0.3 * truth + rng.normal(0, 0.2, 2000)}
    diff = paired_auc_differences(runs, truth, "ref", resamples=200, seed=3)["better"]
    point = roc.binary_auc(runs["better"], truth) - roc.binary_auc(runs["ref"], truth)
    assert diff["auc_diff"] == pytest.approx(point, abs=1e-9)
    lo, hi = diff["auc_diff_ci95"]
    assert lo <= diff["auc_diff"] <= hi and lo > 0
    ss = roc.SortedScores.from_scores(runs["ref"])
    own = bootstrap(2000, lambda w: {"auc": roc.auc_rows(*roc.roc_counts(ss, truth, w))}, 200, seed=3)["auc"]
    assert (hi - lo) < 0.5 * (own[1] - own[0])
