"""graphevent.studies.report: metrics read from `graphevent eval`'s metrics.json, paired statistics, tables, figure."""

from __future__ import annotations

import json

import numpy as np
import pytest

from graphevent.errors import OutputError
from graphevent.studies import report
from graphevent.studies.plan import Config, Plan, Pool, eval_dir
from graphevent.studies.stats import metric_rows

CONFIGS = (Config("particlenet", "p"), Config("enc scratch", "m", ("a=1",)), Config("enc pretrained", "m", ("a=1",), ("enc",)))


def study(tmp_path, aucs: dict[str, list[float]], configs: tuple[Config, ...] = CONFIGS) -> Plan:
    """A plan of ``configs``, one fraction (100%) and three seeds whose eval outputs hold ``aucs`` per configuration."""
    plan = Plan(configs=configs, reference="particlenet", fractions=(1.0,), labelled=Pool(dataset=tmp_path), pretrain={"enc": ("x", ())})
    for seed in plan.seeds:
        out = eval_dir(tmp_path, 1.0, seed)
        out.mkdir(parents=True)
        runs = {c.tag: {"label": {"auc": aucs[c.name][seed], "rejection_at_0.5": 4.0 + seed}} for c in configs}
        (out / "metrics.json").write_text(json.dumps({"runs": runs}))
    return plan


def test_paired_differences_over_seeds_by_hand(tmp_path):
    plan = study(tmp_path, {"particlenet": [0.80, 0.70, 0.90], "enc scratch": [0.75, 0.72, 0.86], "enc pretrained": [0.81, 0.72, 0.91]})
    res = report.collect(plan, tmp_path, scores=False)
    assert res["runs"][("enc scratch", 1.0, 1)] == {"auc": 0.72, "rejection_at_0.5": 5.0}
    s = report.summarise(res, plan)
    row = s["rows"][("particlenet", 1.0)]["auc"]
    assert (row["mean"], row["std"], row["min"], row["max"]) == pytest.approx((0.8, 0.1, 0.7, 0.9))
    half = 4.302652729911275 * 0.1 / np.sqrt(3)  # t(0.975, 2 dof) * std / sqrt(n)
    assert row["ci"] == pytest.approx((0.8 - half, 0.8 + half))
    d = s["vs_ref"][("enc scratch", 1.0)]["auc"]  # diffs -0.05, +0.02, -0.04: mean -0.07/3, std 0.0378
    assert d["diffs"] == pytest.approx([-0.05, 0.02, -0.04]) and d["mean"] == pytest.approx(-0.07 / 3) and d["wins"] == 1
    half = 4.302652729911275 * 0.0378594 / np.sqrt(3)
    assert d["ci"] == pytest.approx((-0.07 / 3 - half, -0.07 / 3 + half), abs=1e-6)
    assert np.isnan(d["boot_ci"][0])
    p = s["vs_scratch"][("enc pretrained", 1.0)]
    assert p["scratch"] == "enc scratch" and p["auc"]["diffs"] == pytest.approx([0.06, 0.0, 0.05]) and p["auc"]["wins"] == 2
    assert s["vs_ref"][("enc pretrained", 1.0)]["rejection_at_0.5"]["diffs"] == [0.0, 0.0, 0.0]
    lines = report.tables(s, plan)
    assert lines[0] == "| configuration | labels | AUC | 1/eps_B @ eps_S=0.5 | AUC - particlenet | 1/eps_B - particlenet |"
    assert lines[2] == "| particlenet | 100.0% | 0.800 ± 0.100 [0.700, 0.900] | 5.0 ± 1.0 [4.0, 6.0] | — | — |"
    assert lines[3] == "| enc scratch | 100.0% | 0.777 ± 0.074 [0.720, 0.860] | 5.0 ± 1.0 [4.0, 6.0] | -0.023 [-0.117, +0.071] 1/3 | +0.0 [+0.0, +0.0] 0/3 |"
    assert lines[-1] == "| enc pretrained - enc scratch | 100.0% | +0.037 [-0.043, +0.117] 2/3 | +0.0 [+0.0, +0.0] 0/3 |"
    png = report.figure(s, plan, tmp_path / "fig.png", "test")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_ablation_is_paired_with_the_configuration_it_changes(tmp_path):
    configs = CONFIGS + (Config("enc pretrained+x", "m", ("a=1", "x=1"), ("enc",), family="x", versus="enc pretrained"),)
    plan = Plan(configs=configs, reference="particlenet", fractions=(1.0,), labelled=Pool(dataset=tmp_path), pretrain={"enc": ("x", ())})
    aucs = {"particlenet": [0.80, 0.70, 0.90], "enc scratch": [0.75, 0.72, 0.86], "enc pretrained": [0.81, 0.72, 0.91],
            "enc pretrained+x": [0.84, 0.71, 0.93]}
    for seed in plan.seeds:
        out = eval_dir(tmp_path, 1.0, seed)
        out.mkdir(parents=True)
        runs = {c.tag: {"label": {"auc": aucs[c.name][seed], "rejection_at_0.5": 4.0 + seed}} for c in configs}
        (out / "metrics.json").write_text(json.dumps({"runs": runs}))
    s = report.summarise(report.collect(plan, tmp_path, scores=False), plan)
    d = s["ablations"][("enc pretrained+x", 1.0)]
    assert d["versus"] == "enc pretrained" and d["auc"]["diffs"] == pytest.approx([0.03, -0.01, 0.02]) and d["auc"]["wins"] == 2
    assert list(s["ablations"]) == [("enc pretrained+x", 1.0)]  # only configurations with a versus
    half = 4.302652729911275 * np.std([0.03, -0.01, 0.02], ddof=1) / np.sqrt(3)
    assert report.tables(s, plan)[-1] == (f"| enc pretrained+x - enc pretrained | 100.0% | +0.013 [{0.04 / 3 - half:+.3f}, {0.04 / 3 + half:+.3f}] 2/3 "
                                          "| +0.0 [+0.0, +0.0] 0/3 |")


def test_a_missing_evaluation_is_named(tmp_path):
    plan = study(tmp_path, {c.name: [0.7, 0.7, 0.7] for c in CONFIGS})
    (eval_dir(tmp_path, 1.0, 2) / "metrics.json").unlink()
    with pytest.raises(OutputError, match=rf"^{tmp_path}/eval/f1_s2/metrics.json: not found; run the study's eval stage first$"):
        report.collect(plan, tmp_path, scores=False)


def test_the_bootstrap_over_test_events_pairs_seeds_and_models():
    """Two seeds, 8 test events whose AUCs are known by hand: 13/16 and 12/16."""
    sig = np.array([0, 0, 0, 0, 1, 1, 1, 1], bool)
    good = np.array([0.1, 0.2, 0.3, 0.7, 0.4, 0.5, 0.6, 0.9])
    fair = np.array([0.1, 0.2, 0.3, 0.95, 0.4, 0.5, 0.6, 0.9])
    plan = Plan(configs=CONFIGS[:2], reference="particlenet", fractions=(1.0,), seeds=(0, 1), labelled=Pool())
    scores = {("particlenet", 1.0, 0): fair, ("particlenet", 1.0, 1): fair, ("enc scratch", 1.0, 0): fair, ("enc scratch", 1.0, 1): good}
    runs = {k: {m: float(metric_rows(v, sig, None, m)[0]) for m, _, _ in plan.metrics} for k, v in scores.items()}
    assert runs[("enc scratch", 1.0, 1)] == {"auc": 0.8125, "rejection_at_0.5": 4.0}
    d = report.summarise({"runs": runs, "scores": scores, "truth": sig}, plan, resamples=50)["vs_ref"][("enc scratch", 1.0)]["auc"]
    assert d["diffs"] == [0.0, 0.0625] and d["wins"] == 1
    lo, hi = d["boot_ci"]
    assert lo <= 0.03125 <= hi
    assert report.fmt_diff(d, 3).startswith("+0.031 [-0.366, +0.428] (")


def test_the_generated_section_replaces_its_earlier_self(tmp_path):
    page = tmp_path / "results.md"
    page.write_text("# older study\n\ntable\n")
    report.lead_results(page, "# label efficiency\nfirst\n", "<!-- b -->", "<!-- e -->")
    report.lead_results(page, "# label efficiency\nsecond\n", "<!-- b -->", "<!-- e -->")
    assert page.read_text() == "<!-- b -->\n# label efficiency\nsecond\n<!-- e -->\n\n# older study\n\ntable\n"


def test_a_plan_reports_the_metrics_it_names(tmp_path):
    metrics = (("auc_macro", "macro AUC", 3), ("accuracy", "accuracy", 2), ("rejection_diphoton_at_0.5", "1/eps_B diphoton @ eps_S=0.5", 1))
    plan = Plan(configs=CONFIGS[:2], reference="particlenet", fractions=(1.0,), seeds=(0, 1), labelled=Pool(dataset=tmp_path), metrics=metrics)
    for seed in plan.seeds:
        out = eval_dir(tmp_path, 1.0, seed)
        out.mkdir(parents=True)
        runs = {c.tag: {"label": {"auc_macro": 0.8 + 0.02 * i + 0.01 * seed, "accuracy": 0.6 + 0.1 * i, "auc_hgg": 0.5,
                                  "rejection_diphoton_at_0.5": 3.0 + i}} for i, c in enumerate(plan.configs)}
        (out / "metrics.json").write_text(json.dumps({"runs": runs}))
    s = report.summarise(report.collect(plan, tmp_path, scores=False), plan)
    assert set(s["rows"][("particlenet", 1.0)]) == {"auc_macro", "accuracy", "rejection_diphoton_at_0.5"}
    lines = report.tables(s, plan)
    assert lines[0] == ("| configuration | labels | macro AUC | accuracy | 1/eps_B diphoton @ eps_S=0.5 | macro AUC - particlenet | "
                        "accuracy - particlenet | 1/eps_B diphoton - particlenet |")
    assert lines[1] == "|---|---:|---|---|---|---|---|---|"
    assert lines[3] == ("| enc scratch | 100.0% | 0.825 ± 0.007 [0.820, 0.830] | 0.70 ± 0.00 [0.70, 0.70] | 4.0 ± 0.0 [4.0, 4.0] | "
                        "+0.020 [+0.020, +0.020] 2/2 | +0.10 [+0.10, +0.10] 2/2 | +1.0 [+1.0, +1.0] 2/2 |")
    assert len(plt_axes := report.figure(s, plan, tmp_path / "f.png", "t").read_bytes()) > 1000 and plt_axes[:4] == b"\x89PNG"


def test_probe_rows_are_summarised_over_seeds_by_hand(tmp_path):
    from graphevent.studies.plan import probe_file

    plan = Plan(configs=(), reference="", fractions=(0.1,), seeds=(0, 1), labelled=Pool(dataset=tmp_path), probes=(str(tmp_path),))
    with pytest.raises(OutputError, match=r"f0.1_s0.json: not found; run the study's probe stage first$"):
        report.collect_probes(plan, tmp_path)
    for seed, (auc, r2) in enumerate([(0.70, 0.5), (0.80, None)]):
        rows = [{"run": "mae", "init": init, "labelled": 12, "linear_auc": auc - 0.1 * (init == "random"), "knn_auc": 0.6,
                 "r2_multiplicity": r2, "r2_girth": 0.1, "r2_ptd": 0.2, "r2_mass": 0.3} for init in ("random", "trained")]
        probe_file(tmp_path, 0.1, seed).parent.mkdir(exist_ok=True)
        probe_file(tmp_path, 0.1, seed).write_text(json.dumps({"rows": rows}))
    probes = report.collect_probes(plan, tmp_path)
    assert [r["linear_auc"] for r in probes[("mae", "trained", 0.1)]] == [0.70, 0.80]
    lines = report.probe_table(probes)
    assert lines[0].startswith("| run | init | labels | labelled events | linear AUC | kNN AUC | R² mult |")
    assert lines[2] == "| mae | trained | 10.0% | 12 | 0.750 ± 0.071 [0.700, 0.800] | 0.600 ± 0.000 [0.600, 0.600] | 0.500 | " \
                       "0.100 ± 0.000 [0.100, 0.100] | 0.200 ± 0.000 [0.200, 0.200] | 0.300 ± 0.000 [0.300, 0.300] |"
    assert lines[3].startswith("| mae | random | 10.0% | 12 | 0.650 ± 0.071 [0.600, 0.700] |")


@pytest.mark.parametrize("extra", [0, 4])
def test_the_figure_legend_covers_no_panel(tmp_path, extra):
    """The legend lies below the panels (one row per three configurations), not over an error bar."""
    import matplotlib.pyplot as plt  # only to close the figure it draws

    configs = CONFIGS + tuple(Config(f"enc pretrained+x{i}", "m", ("a=1", f"x={i}"), ("enc",), family=f"x{i}", versus="enc pretrained")
                              for i in range(extra))
    plan = study(tmp_path, {c.name: [0.8 + 0.01 * i + 0.02 * seed for seed in range(3)] for i, c in enumerate(configs)}, configs)
    s = report.summarise(report.collect(plan, tmp_path, scores=False), plan)
    fig = report.draw_figure(s, plan, "t")
    renderer = fig.canvas.get_renderer()
    (legend,) = fig.legends
    box = legend.get_window_extent(renderer)
    assert [t.get_text() for t in legend.get_texts()] == [c.name for c in configs]
    assert len(fig.axes) == 2
    for ax in fig.axes:
        panel = ax.get_tightbbox(renderer)  # the panel with its tick labels and axis label
        assert box.y1 < panel.y0, (box, panel)
    assert box.y0 >= 0  # and inside the figure
    plt.close(fig)
