"""metrics.json schema, tables (rich, Markdown, CSV) and plots built from real metric objects."""

import copy
import csv
import io
import json

import numpy as np
import pytest
import torch
from PIL import Image
from rich.console import Console

from graphevent.errors import DataError
from graphevent.metrics import ClassificationMetrics, RegressionMetrics
from graphevent.metrics import plots
from graphevent.metrics.schema import build_document, decode_value, encode_value, validate_document
from graphevent.metrics.tables import csv_text, markdown, rich_table


def task_info(m):
    return {**m.describe(), "headline": list(m.headline)}


def make_document(runs=("scratch", "pretrained"), perfect=False):
    g = torch.Generator().manual_seed(0)
    out, info = {}, {}
    for r, run in enumerate(runs):
        y = torch.arange(200) % 2
        p = torch.where(y == 1, 0.8, 0.2) if perfect else torch.sigmoid(torch.randn(200, generator=g) + (1.0 + r) * (2 * y - 1))
        cls = ClassificationMetrics(["quark", "gluon"])
        cls.update(torch.stack([1 - p, p], 1), y)
        reg = RegressionMetrics("m0", column="pred_mass")
        true = 50 + 10 * torch.rand(200, generator=g)
        reg.update(true + torch.randn(200, generator=g), true)
        out[run] = {"label": cls.compute(30), "mass": reg.compute(30)}
        info[run] = {"run_dir": f"/runs/{run}", "checkpoint_file": f"/runs/{run}/checkpoints/best.pt", "epoch": 3,
                     "model": "multitask", "stage": "finetune", "n_events": 200,
                     "tasks": {"label": task_info(cls), "mass": task_info(reg)}}
    return build_document(out, info, {"path": "/data/qg", "split": "test", "classes": ["quark", "gluon"], "targets": ["m0"],
                                      "n_events": 200}, "best", {"resamples": 30, "confidence": 0.95, "seed": 0, "method": "percentile"})


def test_document_round_trips_through_json_and_validates():
    doc = make_document()
    again = json.loads(json.dumps(doc))
    validate_document(again)
    assert set(again["runs"]) == {"scratch", "pretrained"}
    label = again["runs"]["scratch"]["label"]
    assert set(label) == {"auc", "auc_ci95", "accuracy", "accuracy_ci95", "rejection_at_0.3", "rejection_at_0.3_ci95",
                          "rejection_at_0.5", "rejection_at_0.5_ci95", "confusion_matrix"}
    assert sum(map(sum, label["confusion_matrix"])) == 200
    assert set(again["runs"]["scratch"]["mass"]) == {"mae", "mae_ci95", "rmse", "rmse_ci95", "bias", "bias_ci95",
                                                    "resolution", "resolution_ci95", "resolution_constant",
                                                    "resolution_constant_ci95"}


def test_infinite_rejection_is_written_as_the_string_inf():
    doc = make_document(runs=("perfect",), perfect=True)
    label = doc["runs"]["perfect"]["label"]
    assert label["rejection_at_0.5"] == "inf" and label["auc"] == 1.0
    assert decode_value(label["rejection_at_0.5"]) == float("inf")
    text = json.dumps(doc, allow_nan=False)  # strict JSON: no Infinity / NaN tokens
    assert '"inf"' in text
    assert encode_value(float("nan")) is None and encode_value([1.0, float("inf")]) == [1.0, "inf"]


@pytest.mark.parametrize("path, value, message", [
    (("schema_version",), 2, "metrics.json: schema_version is 2; expected 1"),
    (("runs", "scratch", "label", "auc"), "0.9", r"metrics.json: runs.scratch.label.auc is '0.9'; expected a number, 'inf' or null"),
    (("runs", "scratch", "label", "auc_ci95"), [0.9], r"runs.scratch.label.auc_ci95 is \[0.9\]; expected \[low, high\]"),
    (("runs", "scratch", "label", "auc_ci95"), [0.9, 0.8], r"runs.scratch.label.auc_ci95 .*expected low <= high"),
    (("runs", "scratch", "label", "confusion_matrix"), [[1, 2]], "expected a square list of lists of non-negative integers"),
    (("run_info", "scratch", "tasks", "label", "kind"), "ranking", "run_info.scratch.tasks.label.kind"),
    (("dataset", "n_events"), "200", "dataset.n_events is '200'; expected int"),
])
def test_schema_violations_name_the_key(path, value, message):
    doc = copy.deepcopy(make_document())
    node = doc
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    with pytest.raises(DataError, match=message):
        validate_document(doc)


def test_schema_rejects_missing_sections_and_orphan_intervals():
    doc = make_document()
    broken = copy.deepcopy(doc)
    del broken["bootstrap"]
    with pytest.raises(DataError, match="missing bootstrap"):
        validate_document(broken)
    broken = copy.deepcopy(doc)
    broken["runs"]["scratch"]["label"]["f1_ci95"] = [0.1, 0.2]
    with pytest.raises(DataError, match="an interval of an existing metric 'f1'"):
        validate_document(broken)
    broken = copy.deepcopy(doc)
    del broken["run_info"]["pretrained"]
    with pytest.raises(DataError, match="run_info"):
        validate_document(broken)


def test_tables_show_every_run_and_headline_value():
    doc = make_document()
    console = Console(record=True, width=200)
    console.print(rich_table(doc))
    text = console.export_text()
    auc = doc["runs"]["pretrained"]["label"]["auc"]
    assert "graphevent eval: label" in text and "graphevent eval: mass" in text
    assert "scratch" in text and "pretrained" in text and f"{auc:.4g}" in text
    single = make_document(runs=("only",))
    console = Console(record=True, width=200)
    console.print(rich_table(single))
    lines = console.export_text().splitlines()
    assert sum("1/εB @ 0.5" in line for line in lines) == 1
    assert any("MAE" in line and f"{single['runs']['only']['mass']['mae']:.4g}" in line for line in lines)

    md = markdown(doc, [("ROC", "roc-label.png")])
    assert "| run | AUC | accuracy | 1/εB @ εS=0.3 | 1/εB @ εS=0.5 |" in md
    assert "| true \\ predicted | quark | gluon |" in md
    assert "![ROC](roc-label.png)" in md
    assert md.count("| scratch |") == 2  # one row per task table


def test_comparison_fits_80_columns_and_shows_the_paired_auc_difference():
    runs = ("scratch", "pretrained_gt", "pretrained_ec", "finetuned_both")
    doc = make_document(runs=runs)
    doc["comparison"] = {"label": {"reference": "scratch", "runs": {
        r: {"auc_diff": 0.0123 * i, "auc_diff_ci95": [0.004 * i, 0.02 * i]} for i, r in enumerate(runs[1:], 1)}}}
    console = Console(record=True, width=80)
    console.print(rich_table(doc))
    lines = console.export_text().splitlines()
    assert max(map(len, lines)) <= 80 and not any("…" in line for line in lines)
    header = next(line for line in lines if "scratch" in line and "finetuned_both" in line)
    assert all(r in header for r in runs)  # runs are columns
    paired = next(i for i, line in enumerate(lines) if "ΔAUC paired" in line)
    assert [c.strip() for c in lines[paired].split("│")[2:6]] == ["reference", "0.0123", "0.0246", "0.0369"]
    assert "[0.004,0.02]" in lines[paired + 1] and "[0.012,0.06]" in lines[paired + 1]
    for r in runs:  # every AUC with its interval below it
        auc = doc["runs"][r]["label"]["auc"]
        assert any(f"{auc:.4g}" in line for line in lines)
    assert "AUC minus that of scratch on the same resampled events" in " ".join(lines)


def test_csv_is_long_form_with_intervals():
    doc = make_document(runs=("perfect",), perfect=True)
    rows = list(csv.DictReader(io.StringIO(csv_text(doc))))
    assert list(rows[0]) == ["run", "task", "metric", "value", "ci95_low", "ci95_high", "unit"]
    by = {(r["task"], r["metric"]): r for r in rows}
    assert len(rows) == 9  # 4 classification + 5 regression metrics (resolution_constant included)
    assert by[("label", "rejection_at_0.5")]["value"] == "inf"
    assert {m: by[("mass", m)]["unit"] for m in ("mae", "rmse", "bias", "resolution")} == {
        "mae": "GeV", "rmse": "GeV", "bias": "GeV", "resolution": ""}
    assert by[("label", "auc")]["unit"] == ""
    assert float(by[("label", "auc")]["value"]) == 1.0
    assert float(by[("mass", "mae")]["ci95_low"]) <= float(by[("mass", "mae")]["value"]) <= float(by[("mass", "mae")]["ci95_high"])


def test_tables_give_the_unit_of_a_target_in_physical_units():
    single = make_document(runs=("only",))
    mae = single["runs"]["only"]["mass"]["mae"]
    assert single["run_info"]["only"]["tasks"]["mass"]["units"] == {"mae": "GeV", "rmse": "GeV", "bias": "GeV"}
    console = Console(record=True, width=200)
    console.print(rich_table(single))
    lines = console.export_text().splitlines()
    assert any(f"MAE [GeV]" in line and f"{mae:.4g}" in line for line in lines)
    assert any("resolution " in line for line in lines) and not any("resolution [" in line for line in lines)
    md = markdown(single)
    assert "| run | MAE [GeV] | RMSE [GeV] | bias [GeV] | resolution | resol. of const. |" in md
    assert "| run | AUC | accuracy |" in md  # classification metrics carry no unit
    console = Console(record=True, width=80)
    console.print(rich_table(make_document()))
    assert "MAE [GeV]" in console.export_text()


def test_a_target_of_unknown_unit_gets_none():
    reg = RegressionMetrics("charge_fraction")
    assert reg.describe() == {"kind": "regression", "target": "charge_fraction"}
    assert plots.with_unit("charge_fraction") == "charge_fraction"


def png_ok(path, min_bytes=15_000):
    assert path.stat().st_size > min_bytes, path
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= 400 and im.height >= 300
        pixels = np.asarray(im.convert("L"))
    assert pixels.std() > 5  # not a blank canvas


def test_plots_write_valid_pngs(tmp_path):
    rng = np.random.default_rng(0)
    sig = rng.random(2000) < 0.5
    s = 1 / (1 + np.exp(-rng.normal(2.0 * sig - 1.0, 1.0)))
    from graphevent.metrics.roc import roc_curve

    curves = {"a": roc_curve(s, sig)[:2], "b": roc_curve(np.sqrt(s), sig)[:2]}
    png_ok(plots.save_figure(plots.roc_figure(curves, "label: signal = gluon"), tmp_path / "roc.png"))
    png_ok(plots.save_figure(plots.score_figure(np.stack([1 - s, s], 1), sig.astype(int), ["q", "g"], "scores", 1), tmp_path / "s.png"))
    t = rng.uniform(20, 200, 2000)
    png_ok(plots.save_figure(plots.response_figure(t * rng.normal(1, 0.1, 2000), t, "m0", "m0"), tmp_path / "r.png"))
    records = [{"epoch": e, "train_loss": 1 / (e + 1), "val_loss": 1.1 / (e + 1), "val_label_auc": 0.7 + 0.01 * e} for e in range(5)]
    png_ok(plots.save_figure(plots.training_figure(records, "training"), tmp_path / "t.png"))
    png_ok(plots.save_figure(plots.reconstruction_figure({"a": {"x": (0.2, (0.1, 0.3))}, "b": {"x": (0.3, None)}}, "recon"), tmp_path / "c.png"), 8_000)
    assert not list(tmp_path.glob(".*.tmp"))  # written under a temporary name, then renamed


def test_roc_figure_marks_infinite_rejection():
    from graphevent.metrics.roc import roc_curve

    sig = np.array([1, 1, 1, 1, 0, 0, 0, 0], dtype=bool)
    scores = np.array([0.9, 0.8, 0.7, 0.3, 0.6, 0.2, 0.1, 0.05])  # no background above 0.7: eps_S <= 0.75 passes none
    fig = plots.roc_figure({"run": roc_curve(scores, sig)[:2]}, "t")
    ax = fig.axes[0]
    dotted = [line for line in ax.get_lines() if line.get_linestyle() == ":"]
    assert len(dotted) == 1
    np.testing.assert_allclose(dotted[0].get_xdata(), [0.75, 0.75])
    assert dotted[0].get_ydata()[0] == pytest.approx(4.0)  # first finite point: eps_B = 1/4 at eps_S = 0.75
    assert [t.get_text() for t in ax.texts] == ["∞"]


def test_roc_figure_tells_eleven_runs_apart():
    """More runs than colours (the study's 11 configurations): every run gets its own
    (colour, line style) pair; the 11th is the first colour dashed."""
    from graphevent.metrics.roc import roc_curve

    rng = np.random.default_rng(0)
    sig = rng.random(200) < 0.5
    curves = {f"run{i}": roc_curve(rng.random(200) + 0.1 * i * sig, sig)[:2] for i in range(11)}
    fig = plots.roc_figure(curves, "t")
    runs = [line for line in fig.axes[0].get_lines() if line.get_label().startswith("run")]
    styles = [(line.get_color(), line.get_linestyle()) for line in runs]
    assert len(runs) == 11 and len(set(styles)) == 11
    assert styles[10] == (styles[0][0], "--") and styles[0][1] == "-"


def test_single_run_caption_wraps_at_the_terminal_width_between_words():
    console = Console(record=True, width=80)
    console.print(rich_table(make_document(runs=("only",))))
    lines = console.export_text().splitlines()
    caption = [line.strip() for line in lines[lines.index(next(l for l in lines if l.startswith("└"))) + 1:]]
    assert " ".join(caption) == ("test split of /data/qg (200 events), best checkpoint; [low, high]: 95% bootstrap interval "
                                 "(30 resamples); 1/εB @ x: background rejection at signal efficiency x")
    assert max(map(len, lines)) <= 80 and len(caption) == 2  # the console's width, not the table's
