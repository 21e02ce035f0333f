"""Figure labelling: units and colour bars, every training metric, error definitions, PCA margins."""

from __future__ import annotations

import numpy as np
import pytest

from graphevent.metrics import plots


def test_response_figure_has_units_and_a_colour_bar():
    rng = np.random.default_rng(0)
    true = rng.uniform(500, 550, 300)
    fig = plots.response_figure(true * rng.normal(1, 0.02, 300), true, "pt", "run: pt")
    ax1, ax2, ax3, cbar = fig.axes
    assert ax1.get_xlabel() == "true pt [GeV]" and ax1.get_ylabel() == "predicted pt [GeV]"
    assert ax2.get_xlabel() == "true pt [GeV]" and cbar.get_ylabel() == "events per bin"
    assert plots.with_unit("score") == "score"


def test_training_figure_shows_every_metric():
    keys = [f"val_metric_{i}" for i in range(9)]
    records = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, **{k: 0.1 * e for k in keys}} for e in (1, 2, 3)]
    fig = plots.training_figure(records, "t")
    titles = [ax.get_title() for ax in fig.axes if ax.get_visible()]
    assert titles == ["loss", *keys]


def test_reconstruction_figure_names_each_error_definition():
    per_run = {"gt": {"tracks": (0.2, (0.1, 0.3))}, "ec": {"tracks": (1.5, None)}}
    fig = plots.reconstruction_figure(per_run, "reconstruction error per channel", {"gt": "masked nodes", "ec": "Chamfer"})
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["gt: masked nodes", "ec: Chamfer"]
    assert "different error definitions" in ax.get_title()
    same = plots.reconstruction_figure(per_run, "r", {"gt": "Chamfer", "ec": "Chamfer"})
    assert same.axes[0].get_title() == "r"


def test_pca_figure_labels_inside_the_figure():
    from graphevent.evaluate.explain import pca_figure

    rng = np.random.default_rng(0)
    emb = {r: (rng.normal(size=(40, 8)) * [1000] + 5000, np.arange(40) % 2) for r in ("a", "b")}
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    fig = pca_figure(emb, ["quark", "gluon"])
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    renderer = canvas.get_renderer()
    for ax in fig.axes:
        box = ax.yaxis.get_tightbbox(renderer)
        assert box.x0 >= 0, box


def test_near_uniform_attention_is_detected():
    from graphevent.evaluate.explain import near_uniform

    events = np.repeat([0, 1, 2], 4)
    att = np.r_[[0.25, 0.25, 0.26, 0.24], [0.7, 0.1, 0.1, 0.1], [0.5, 0.5, 0.5, 0.5]]
    assert near_uniform(att, events, 3) == [0, 2]


def test_training_panels_name_their_y_axis_with_units():
    records = [{"epoch": e, "train_loss": 1.0 / e, "val_loss": 1.1 / e, "val_label_auc": 0.6 + 0.1 * e,
                "val_mass_mae": 20.0 / e} for e in (1, 2, 3)]
    fig = plots.training_figure(records, "t", {"val_mass_mae": "GeV"})
    assert [ax.get_ylabel() for ax in fig.axes if ax.get_visible()] == ["loss", "val_label_auc", "val_mass_mae [GeV]"]
    one = plots.training_figure(records[:1], "t")
    one.canvas.draw()
    assert one.axes[0].get_xlim() == (0.5, 1.5)
    assert [t for t in one.axes[0].get_xticks() if 0.5 <= t <= 1.5] == [1.0]  # whole epochs only


def test_score_histogram_spans_the_scores():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.45, 0.52, 400)
    labels = np.arange(400) % 2
    fig = plots.score_figure(np.stack([1 - p, p], 1), labels, ["quark", "gluon"], "t", signal=1)
    ax = fig.axes[0]
    lo, hi = ax.get_xlim()
    assert lo == pytest.approx(p.min() - 0.02 * np.ptp(p)) and hi == pytest.approx(p.max() + 0.02 * np.ptp(p))
    filled = [int(np.count_nonzero(patch.get_path().vertices[:, 1])) for patch in ax.patches]
    assert all(n > 40 for n in filled)  # the step outline rises in most of the 40 bins, not in 3
    assert len([t for t in ax.get_xticks() if lo <= t <= hi]) <= 6  # tick labels that do not overlap
    assert plots.score_range(np.array([0.0, 1.0])) == (0.0, 1.0)
    assert plots.score_range(np.array([0.5, 0.5])) == (0.499, 0.501)
