"""A tiny study end to end: real `graphevent` subprocesses, resumed, scored by `graphevent eval`.

(One label fraction to keep it short; the by-hand check of 2 fractions x 2 seeds x 2
configurations is `python scripts/study_label_efficiency.py --size smoke --models multitask_pretrained`.)"""

from __future__ import annotations

import json

import pytest

from graphevent.studies import report
from graphevent.studies.plan import Config, Plan, Pool, jobs
from graphevent.studies.runner import run_plan


@pytest.mark.slow
def test_a_tiny_plan_runs_resumes_and_is_scored(tmp_path, tiny_raw):
    small = ("model.encoders=[edgeconv]", "model.edgeconv.k=4", "model.edgeconv.channels=[[8,8]]", "model.edgeconv.dim=8")
    plan = Plan(configs=(Config("particlenet", "particlenet", ("model.k=4",)), Config("ec pretrained", "multitask_finetune", small, ("ec",))),
                reference="particlenet", fractions=(0.5,), seeds=(0, 1), labelled=Pool(files=(tiny_raw,), split=(0.5, 0.1, 0.4)),
                pretrain={"ec": ("edgeconv_ae_pretrain", ("model.k=4", "model.channels=[[8,8]]", "model.dim=8"))},
                max_nodes=16, epochs=1, pre_epochs=1, batch=16, train_sets=("train.num_workers=0",), workers=1)
    planned = jobs(plan, tmp_path, tmp_path)
    said = []
    wall = run_plan(planned, tmp_path, parallel=2, echo=said.append)
    assert len(wall) == len(planned) == 1 + 1 + 4 + 2  # preprocess, pretrain, 2 configs x 2 seeds, 2 evals
    assert run_plan(planned, tmp_path, parallel=2, echo=said.append) == {}  # resumed: everything is done
    res = report.collect(plan, tmp_path)
    doc = json.loads((tmp_path / "eval/f0.5_s1/metrics.json").read_text())
    assert res["runs"][("ec pretrained", 0.5, 1)]["auc"] == doc["runs"]["ec_pretrained"]["label"]["auc"]
    s = report.summarise(res, plan, resamples=20)
    d = s["vs_ref"][("ec pretrained", 0.5)]["auc"]
    assert d["n"] == 2 and d["diffs"] == pytest.approx([res["runs"][("ec pretrained", 0.5, k)]["auc"] - res["runs"][("particlenet", 0.5, k)]["auc"]
                                                          for k in (0, 1)])
    assert len(report.tables(s, plan)) == 2 + 2
