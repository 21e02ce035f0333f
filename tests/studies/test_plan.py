"""graphevent.studies.plan: the commands a plan takes (no training)."""

from __future__ import annotations

from pathlib import Path

import pytest

from graphevent.errors import ConfigError
from graphevent.studies.plan import CONFIGS, Config, Plan, Pool, jobs


def opt(cmd: list[str], name: str) -> list[str]:
    """Every value of option ``name`` in a command."""
    return [cmd[i + 1] for i, c in enumerate(cmd) if c == name]


def plan(**kw) -> Plan:
    configs = (Config("particlenet", "particlenet"), Config("mt scratch", "multitask_finetune", ("a=1",)),
               Config("mt pretrained", "multitask_finetune", ("a=1",), ("gt",)))
    return Plan(**{"configs": configs, "reference": "particlenet", "fractions": (0.01, 1.0), "seeds": (0, 1),
                   "small_seeds": (0, 1, 2), "labelled": Pool(events=500, seed=1, pieces=2),
                   "unlabelled": Pool(events=300, seed=2, split=(0.9, 0.1, 0.0)), "pretrain": {"gt": ("masked_gt_pretrain", ("model.k=8",))},
                   "min_steps": 5} | kw)


def test_every_configuration_fraction_and_seed_in_dependency_order(tmp_path):
    js = jobs(plan(), tmp_path, tmp_path / "cache")
    assert [j.stage for j in js] == ["data"] * 5 + ["pretrain"] + ["finetune"] * (3 * 2 + 3 * 3) + ["eval"] * (2 + 3)
    sims = [j for j in js if j.cached]
    assert [(opt(j.cmd, "--events"), opt(j.cmd, "--seed")) for j in sims] == [(["250"], ["1"]), (["250"], ["1001"]), (["300"], ["2"])]
    pre = next(j for j in js if j.stage == "pretrain")
    assert opt(pre.cmd, "--data") == [str(tmp_path / "data_unlabelled")] and opt(pre.cmd, "--set") == ["model.k=8"]
    assert pre.deps == ["preprocess unlabelled"] and opt(pre.cmd, "-c") == [str(CONFIGS / "experiments/masked_gt_pretrain.yaml")]
    seen = []
    for j in (j for j in js if j.stage == "finetune"):
        frac, seed = opt(j.cmd, "--label-fraction")[0], opt(j.cmd, "--label-seed")[0]
        assert j.out == tmp_path / "finetune" / f"f{frac}_s{seed}" / j.out.name
        assert opt(j.cmd, "--set")[:2] == [f"seed={seed}", "train.min_steps_per_epoch=5"]
        pretrained = j.out.name == "mt_pretrained"
        assert opt(j.cmd, "--init-from") == [str(tmp_path / "pretrain/gt")] * pretrained
        assert j.deps == ["pretrain gt"] * pretrained + ["preprocess labelled"]
        seen.append((j.out.name, float(frac), int(seed)))
    assert seen[:3] == [("particlenet", 1.0, 0), ("mt_scratch", 1.0, 0), ("mt_pretrained", 1.0, 0)]  # the longest runs first
    assert {(f, s) for _, f, s in seen} == {(1.0, 0), (1.0, 1), (0.01, 0), (0.01, 1), (0.01, 2)}  # 3 seeds at small fractions
    ev = [j for j in js if j.stage == "eval"][-1]
    assert ev.out == tmp_path / "eval/f0.01_s2" and ev.deps == ["particlenet @ 0.01 seed 2", "mt scratch @ 0.01 seed 2", "mt pretrained @ 0.01 seed 2"]
    assert ev.cmd[ev.cmd.index("eval") + 1: ev.cmd.index("--data")] == [str(tmp_path / "finetune/f0.01_s2" / n) for n in ("particlenet", "mt_scratch", "mt_pretrained")]
    assert opt(ev.cmd, "--data") == [str(tmp_path / "data_labelled")] and opt(ev.cmd, "--split") == ["test"]


def test_an_existing_dataset_and_init_paths_need_no_data_or_pretraining_jobs(tmp_path):
    p = plan(labelled=Pool(dataset=tmp_path / "ds"), unlabelled=None, pretrain={}, test=tmp_path / "big", vary_init=False, min_steps=0,
             configs=(Config("scratch", "x.yaml"), Config("mae", "x.yaml", init=(str(tmp_path),))), reference="scratch")
    js = jobs(p, tmp_path, tmp_path)
    assert {j.stage for j in js} == {"finetune", "eval"}
    ft = next(j for j in js if j.out.name == "mae")
    assert opt(ft.cmd, "--init-from") == [str(tmp_path)] and ft.deps == [] and opt(ft.cmd, "-c") == ["x.yaml"]
    assert opt(ft.cmd, "--set") == [] and opt(ft.cmd, "--data") == [str(tmp_path / "ds")]
    assert all(opt(j.cmd, "--data") == [str(tmp_path / "big")] for j in js if j.stage == "eval")


def test_bad_plans_are_refused_with_what_was_expected(tmp_path):
    with pytest.raises(ConfigError, match=r"^reference 'resnet15': not a configuration of the plan; expected one of: particlenet, mt scratch, mt pretrained$"):
        plan(reference="resnet15")
    with pytest.raises(ConfigError, match=r"^fractions \[0.1, 1.5\]: 1.5 is outside \(0, 1\]$"):
        plan(fractions=(0.1, 1.5))
    with pytest.raises(ConfigError, match=r"^init 'ec': neither a pretraining key \(gt\) nor an existing path$"):
        plan(configs=(Config("particlenet", "particlenet"), Config("x", "m", init=("ec",))))
    with pytest.raises(ConfigError, match=r"^configuration 'x': versus 'mt' is not a configuration of the plan; expected one of: particlenet, x$"):
        plan(configs=(Config("particlenet", "particlenet"), Config("x", "m", versus="mt")))
    assert Path(CONFIGS / "data/ml4sci_qg_hdf5.yaml").is_file()


def test_whole_event_pools_simulate_events_and_preprocess_with_their_data_config(tmp_path):
    js = jobs(plan(labelled=Pool(events=90, seed=1, kind="events"), unlabelled=None, data_config="whole_event_hdf5"), tmp_path, tmp_path / "c")
    sim, pre = js[0], js[1]
    assert sim.cmd[sim.cmd.index("simulate") + 1] == "events" and "--no-particles" not in sim.cmd
    assert sim.out == tmp_path / "c/events_90_seed1.h5" and opt(sim.cmd, "--events") == ["90"]
    assert opt(pre.cmd, "-c") == [str(CONFIGS / "data/whole_event_hdf5.yaml")] and pre.cmd[pre.cmd.index("preprocess") + 1] == str(sim.out)
    qg = jobs(plan(), tmp_path, tmp_path / "c")
    assert "--no-particles" in qg[0].cmd and opt(next(j for j in qg if j.key == "preprocess labelled").cmd, "-c") == [str(CONFIGS / "data/ml4sci_qg_hdf5.yaml")]


def test_pretraining_can_take_its_own_batch_size(tmp_path):
    js = jobs(plan(batch=64, pre_batch=256), tmp_path, tmp_path / "c")
    assert {tuple(opt(j.cmd, "--batch-size")) for j in js if j.stage == "pretrain"} == {("256",)}
    assert {tuple(opt(j.cmd, "--batch-size")) for j in js if j.stage == "finetune"} == {("64",)}
    assert {tuple(opt(j.cmd, "--batch-size")) for j in jobs(plan(batch=32), tmp_path, tmp_path) if j.stage in ("pretrain", "finetune")} == {("32",)}


def test_probes_run_per_fraction_and_seed_after_the_pretraining_they_read(tmp_path):
    js = jobs(plan(probes=("gt", str(tmp_path))), tmp_path, tmp_path / "c")
    assert [j.stage for j in js].count("pretrain") == 1
    probes = [j for j in js if j.stage == "probe"]
    assert [(opt(j.cmd, "--label-fraction"), opt(j.cmd, "--seed")) for j in probes] == \
        [(["1"], ["0"]), (["1"], ["1"]), (["0.01"], ["0"]), (["0.01"], ["1"]), (["0.01"], ["2"])]
    p = probes[-1]
    assert p.cmd[p.cmd.index("probe") + 1: p.cmd.index("--data")] == [str(tmp_path / "pretrain/gt"), str(tmp_path)]
    assert p.out == tmp_path / "probe/f0.01_s2.json" and opt(p.cmd, "--out") == [str(p.out)]
    assert opt(p.cmd, "--pool-events") == ["0"] and "--random-init" in p.cmd and "--test-data" not in p.cmd
    assert p.deps == ["pretrain gt", "preprocess labelled"]
    alone = jobs(Plan(configs=(), reference="", fractions=(0.1,), labelled=Pool(dataset=tmp_path / "ds"), probes=(str(tmp_path),),
                      test=tmp_path / "big", probe_random_init=False), tmp_path, tmp_path)
    assert [j.stage for j in alone] == ["probe"] * 3 and alone[0].deps == []
    assert opt(alone[0].cmd, "--test-data") == [str(tmp_path / "big")] and "--random-init" not in alone[0].cmd


def test_a_probe_of_nothing_known_or_a_plan_of_nothing_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"^probe 'mae': neither a pretraining key \(gt\) nor an existing path$"):
        plan(probes=("mae",))
    with pytest.raises(ConfigError, match=r"^plan: no configurations and no probes; expected at least one of them$"):
        plan(configs=(), reference="")
