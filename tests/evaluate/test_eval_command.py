"""`graphevent eval` end to end on tiny trained runs, through the real CLI entry point."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from PIL import Image

from graphevent.cli.app import main
from graphevent.data.dataset import GraphDataset
from graphevent.evaluate.predictions import read_predictions
from graphevent.metrics.roc import binary_auc, rejection_at
from graphevent.metrics.schema import validate_document


def run(capsys, *args):
    code = main([str(a) for a in args])
    out = capsys.readouterr()
    return code, out.out, out.err


def assert_png(path, min_bytes=10_000):
    assert path.is_file(), path
    assert path.stat().st_size > min_bytes, (path, path.stat().st_size)
    with Image.open(path) as im:
        im.verify()
    with Image.open(path) as im:
        assert im.format == "PNG" and im.width >= 400 and im.height >= 300
        assert np.asarray(im.convert("L")).std() > 5


@pytest.fixture(scope="module")
def comparison(tmp_path_factory, trained_runs, tiny_dataset):
    """eval of both runs with --explain (one call shared by the tests below)."""
    out = tmp_path_factory.mktemp("eval") / "cmp"
    code = main(["eval", str(trained_runs["mt"]), str(trained_runs["ae"]), "--data", str(tiny_dataset), "--out", str(out),
                 "--bootstrap", "50", "--explain", "--no-progress"])
    assert code == 0
    return out


def test_eval_writes_every_file(comparison):
    out = comparison
    expected = ["metrics.json", "metrics.md", "metrics.csv", "predictions-mt.parquet", "predictions-ae.parquet",
                "explain.md"]
    for name in expected:
        assert (out / name).is_file(), name
    pngs = ["roc-label.png", "scores-mt-label.png", "response-mt-m0.png", "training-mt.png", "training-ae.png",
            "reconstruction.png", "explain/events-mt.png", "explain/reconstruction-ae.png", "explain/pca.png"]
    for name in pngs:
        assert_png(out / name)
    explain = (out / "explain.md").read_text()
    for name in ("explain/events-mt.png", "explain/reconstruction-ae.png", "explain/pca.png"):
        assert f"]({name})" in explain
    md = (out / "metrics.md").read_text()
    assert "](roc-label.png)" in md and "| mt |" in md and "| ae |" in md
    assert not list(out.glob(".staging-*"))
    marker = json.loads((out / ".graphevent.json").read_text())
    assert marker["kind"] == "eval" and marker["status"] == "complete"
    on_disk = sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file() and not p.name.startswith(".graphevent"))
    assert marker["files"] == on_disk


def test_metrics_json_matches_schema_and_predictions(comparison, tiny_dataset):
    doc = json.loads((comparison / "metrics.json").read_text())
    validate_document(doc)
    assert list(doc["runs"]) == ["mt", "ae"]
    assert set(doc["runs"]["mt"]) == {"label", "m0"} and set(doc["runs"]["ae"]) == {"reconstruction"}
    assert doc["run_info"]["mt"]["tasks"]["label"]["signal"] == "gluon"
    assert doc["run_info"]["ae"]["stage"] == "pretrain"

    test = GraphDataset(tiny_dataset, "test")
    n = len(test)
    assert doc["dataset"]["n_events"] == n
    pred = read_predictions(comparison / "predictions-mt.parquet")
    assert set(pred) == {"event_id", "source", "source_file", "index", "label", "true_m0", "true_pt", "score_quark",
                         "score_gluon", "pred_m0"}
    order = np.argsort(test.event_ids)
    np.testing.assert_array_equal(pred["event_id"], test.event_ids[order])
    # source file and index in it: as the shards store them
    np.testing.assert_array_equal(pred["index"], test._column("index")[order])
    np.testing.assert_array_equal(pred["source"], test._column("source")[order])
    assert set(pred["source_file"]) == {f"{tiny_dataset.name}-raw.h5"}
    np.testing.assert_array_equal(pred["label"], test.labels()[order])
    true_m0 = np.array([float(test[i].targets[0, 0]) for i in range(n)])[order]
    np.testing.assert_allclose(pred["true_m0"], true_m0, rtol=1e-6)
    np.testing.assert_allclose(pred["score_quark"] + pred["score_gluon"], 1.0, atol=1e-5)

    # the reported figures are those of the written predictions
    label, m0 = doc["runs"]["mt"]["label"], doc["runs"]["mt"]["m0"]
    sig = pred["label"] == 1
    assert label["auc"] == pytest.approx(binary_auc(pred["score_gluon"], sig), abs=1e-6)
    r50 = rejection_at(pred["score_gluon"], sig, 0.5)
    assert (label["rejection_at_0.5"] == "inf") if np.isinf(r50) else label["rejection_at_0.5"] == pytest.approx(r50, rel=1e-5)
    assert label["accuracy"] == pytest.approx(np.mean((pred["score_gluon"] > 0.5) == sig), abs=1e-6)
    assert m0["mae"] == pytest.approx(np.mean(np.abs(pred["pred_m0"] - pred["true_m0"])), rel=1e-5)
    lo, hi = label["auc_ci95"]
    assert lo <= label["auc"] <= hi

    rec = read_predictions(comparison / "predictions-ae.parquet")
    assert {"recon_error_tracks", "recon_error_ecal", "recon_error_hcal"} <= set(rec)
    assert doc["runs"]["ae"]["reconstruction"]["recon_error_ecal"] == pytest.approx(rec["recon_error_ecal"].mean(), rel=1e-5)


def test_root_format_and_no_bootstrap(tmp_path, trained_runs, tiny_dataset, capsys):
    # no --data: the dataset the run records in dataset.json
    code, out, _ = run(capsys, "eval", trained_runs["mt"], "--out", tmp_path / "e",
                       "--format", "root", "--bootstrap", "0", "--split", "val", "--checkpoint", "last", "--no-progress")
    assert code == 0, out
    assert out.splitlines()[0] == f"dataset: {tiny_dataset.resolve()} (recorded by the run)"
    assert "graphevent eval: mt" in out and "AUC" in out
    pred = read_predictions(tmp_path / "e" / "predictions-mt.root")
    assert len(pred["event_id"]) == len(GraphDataset(tiny_dataset, "val"))
    np.testing.assert_array_equal(pred["index"], pred["event_id"])  # one input: the index is the event id
    doc = json.loads((tmp_path / "e" / "metrics.json").read_text())
    validate_document(doc)
    assert doc["checkpoint"] == "last" and doc["dataset"]["split"] == "val"
    assert doc["dataset"]["path"] == str(tiny_dataset.resolve())
    assert not any(k.endswith("_ci95") for k in doc["runs"]["mt"]["label"])


def one_line_error(capsys, args, match):
    code, _, err = run(capsys, *args)
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and "Traceback" not in err, err
    assert match in lines[0], lines[0]


def test_bad_inputs_exit_2_with_one_line(tmp_path, trained_runs, tiny_dataset, capsys):
    empty = tmp_path / "empty-run"
    empty.mkdir()
    one_line_error(capsys, ["eval", empty, "--data", tiny_dataset, "--out", tmp_path / "o1"],
                   "empty-run: no checkpoints/best.pt")
    assert not (tmp_path / "o1").exists()

    one_line_error(capsys, ["eval", trained_runs["mt"], "--data", tiny_dataset, "--split", "holdout", "--out", tmp_path / "o2"],
                   "split 'holdout' does not exist")
    assert not (tmp_path / "o2").exists()

    other = tmp_path / "other-classes"
    shutil.copytree(tiny_dataset, other)
    manifest = json.loads((other / "manifest.json").read_text())
    manifest["classes"] = ["light", "top"]
    (other / "manifest.json").write_text(json.dumps(manifest))
    one_line_error(capsys, ["eval", trained_runs["mt"], "--data", other, "--out", tmp_path / "o3"],
                   "dataset classes ['light', 'top'] differ from the classes ['quark', 'gluon'] run mt was trained on")
    assert not (tmp_path / "o3").exists() and not list(tmp_path.glob(".o3*"))

    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    one_line_error(capsys, ["eval", trained_runs["mt"], "--data", tiny_dataset, "--out", tmp_path / "taken"],
                   "taken: holds notes.txt but no .graphevent.json marker of graphevent output")
    one_line_error(capsys, ["eval", trained_runs["mt"], "--data", tiny_dataset, "--signal", "top", "--out", tmp_path / "o4"],
                   "--signal 'top': not a class of this task")
    one_line_error(capsys, ["eval", trained_runs["mt"], "--data", tiny_dataset, "--bootstrap", "-1", "--out", tmp_path / "o5"],
                   "--bootstrap -1")


def test_eval_without_data_needs_runs_that_agree_on_their_dataset(tmp_path, trained_runs, tiny_dataset, capsys):
    moved = tmp_path / "mt-elsewhere"
    shutil.copytree(trained_runs["mt"], moved)
    record = json.loads((moved / "dataset.json").read_text())
    (moved / "dataset.json").write_text(json.dumps({**record, "path": str(tmp_path / "qg-copy")}))
    one_line_error(capsys, ["eval", trained_runs["mt"], moved, "--out", tmp_path / "o6"],
                   f"--data not given and the runs were trained on different datasets ({trained_runs['mt']} on "
                   f"{tiny_dataset.resolve()}, {moved} on {tmp_path / 'qg-copy'}); pass --data")
    one_line_error(capsys, ["eval", moved, "--out", tmp_path / "o7"],
                   f"--data not given: {tmp_path / 'qg-copy'}, the dataset recorded in {moved / 'dataset.json'}, "
                   "does not exist; pass --data")
    (moved / "dataset.json").unlink()
    one_line_error(capsys, ["eval", moved, "--out", tmp_path / "o8"], f"{moved / 'dataset.json'}: no readable dataset record; pass --data")
    assert not any((tmp_path / o).exists() for o in ("o6", "o7", "o8"))


def test_two_classifiers_get_a_paired_auc_comparison(tmp_path, trained_runs, tiny_dataset, capsys):
    """A copy of a run scores every event exactly like it: paired difference 0, interval [0, 0],
    written to metrics.json, .md and .csv; a pretraining run takes no part."""
    copy = tmp_path / "mt_copy"
    shutil.copytree(trained_runs["mt"], copy)
    out = tmp_path / "cmp"
    code = main(["eval", str(trained_runs["mt"]), str(copy), str(trained_runs["ae"]), "--data", str(tiny_dataset),
                 "--out", str(out), "--bootstrap", "30", "--no-progress"])
    assert code == 0
    printed = capsys.readouterr().out.splitlines()  # the terminal shows the paired difference too
    paired = next(line for line in printed if "ΔAUC paired" in line)
    assert [c.strip() for c in paired.split("│")[2:4]] == ["reference", "0"]
    doc = json.loads((out / "metrics.json").read_text())
    validate_document(doc)
    assert doc["comparison"] == {"label": {"reference": "mt", "runs": {"mt_copy": {"auc_diff": 0.0, "auc_diff_ci95": [0.0, 0.0]}}}}
    assert doc["runs"]["mt"]["label"]["auc"] == doc["runs"]["mt_copy"]["label"]["auc"]
    md = (out / "metrics.md").read_text()
    assert "## label: AUC difference to `mt` (paired bootstrap)" in md and "| mt_copy | 0 " in md
    assert "mt_copy,label,auc_diff_vs_mt,0,0,0" in (out / "metrics.csv").read_text()


class RecordingProgress:
    """Records what a library call reports: ``("start", total, description)``, advances, stops."""

    def __init__(self):
        self.calls = []

    def start(self, total, description=""):
        self.calls.append(["start", total, description, 0])

    def advance(self, n=1):
        self.calls[-1][3] += n

    def stop(self):
        self.calls.append(["stop"])


def test_explain_reports_its_progress(tmp_path, trained_runs, tiny_dataset):
    from graphevent.evaluate import EvalOptions, evaluate

    progress = RecordingProgress()
    evaluate([trained_runs["mt"]], tiny_dataset, EvalOptions(bootstrap=0, explain=True, explain_events=2, split="val"),
             tmp_path / "e", progress=progress)
    n = len(GraphDataset(tiny_dataset, "val"))
    labels = GraphDataset(tiny_dataset, "val").labels()
    drawn = sum(min(2, int((labels == c).sum())) for c in (0, 1))
    # the inference bar, then one bar over the drawn events and the embedding pass, each done in full
    assert progress.calls == [["start", n, "eval mt", n], ["stop"], ["start", drawn + n, "explain mt", drawn + n], ["stop"]]
