"""scripts/study_label_efficiency.py: the plans it builds (no training)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from graphevent.config.experiment import load_experiment
from graphevent.studies.plan import jobs

ROOT = Path(__file__).resolve().parents[2]
spec = importlib.util.spec_from_file_location("study_label_efficiency", ROOT / "scripts" / "study_label_efficiency.py")
study = importlib.util.module_from_spec(spec)
spec.loader.exec_module(study)


def opt(cmd: list, name: str) -> list[str]:
    """Every value of option ``name`` in a command."""
    return [cmd[i + 1] for i, c in enumerate(cmd) if c == name]


def planned(tmp_path, *argv: str) -> dict[str, list]:
    args, size = study.parse_args([*argv, "--workdir", str(tmp_path), "--cache", str(tmp_path / "cache")])
    out: dict[str, list] = {}
    for j in jobs(study.build_plan(args, size), args.workdir, args.cache):
        out.setdefault(j.stage, []).append(j)
    return out


def test_cpu_plan_runs_every_model_fraction_and_seed(tmp_path):
    parts = planned(tmp_path, "--size", "cpu")
    assert [len(parts[p]) for p in ("data", "pretrain", "finetune", "eval")] == [3, 2, 7 * 5 * 3, 5 * 3]
    labelled, unlabelled = tmp_path / "data_labelled", tmp_path / "data_unlabelled"
    sim = next(j.cmd for j in parts["data"] if j.cached)
    assert opt(sim, "--seed") == ["2"] and opt(sim, "--events") == ["3000"]
    pre_lab, pre_unl = (j.cmd for j in parts["data"] if not j.cached)
    assert str(ROOT / "graphevent/sample/qg_sample.h5") in pre_lab  # labelled pool: shipped sample, seed 1
    assert str(tmp_path / "cache/qg_3000_seed2.h5") in pre_unl
    for job in parts["pretrain"]:
        assert opt(job.cmd, "--data") == [str(unlabelled)] and "--label-fraction" not in job.cmd
    seen = set()
    for job in parts["finetune"]:
        assert opt(job.cmd, "--data") == [str(labelled)]
        seed = opt(job.cmd, "--label-seed")[0]
        assert f"seed={seed}" in opt(job.cmd, "--set")  # subset and initialisation vary together, paired across models
        assert not any(s.startswith("model.encoder=") for s in opt(job.cmd, "--set"))  # the deprecated key is gone
        model = next(m for m in study.PLANS["encoders"] if job.out.name == m.tag)
        assert opt(job.cmd, "--init-from") == [str(tmp_path / "pretrain" / k) for k in model.init]
        seen.add((model.name, float(opt(job.cmd, "--label-fraction")[0]), int(seed)))
    assert len(seen) == 105 and {s for _, _, s in seen} == {0, 1, 2}
    assert {f for _, f, _ in seen} == {0.005, 0.01, 0.05, 0.1, 1.0}
    for job in parts["eval"]:
        runs = [c for c in job.cmd if c.startswith(str(tmp_path / "finetune"))]
        assert len(runs) == 7 and runs[0].endswith("/particlenet") and len({Path(r).parent for r in runs}) == 1


def test_issue22_plan_sizes_configurations_and_seeds(tmp_path):
    parts = planned(tmp_path, "--plan", "issue22")
    sims = [j.cmd for j in parts["data"] if j.cached]
    assert [opt(c, "--events") for c in sims] == [["17000"], ["20000"]]  # labelled pool, unlabelled pool
    lab = next(j.cmd for j in parts["data"] if j.key == "preprocess labelled")
    assert opt(lab, "--set")[1:] == ["split.train=0.6", "split.val=0.1", "split.test=0.3"]  # 10,200 train, 5,100 test jets
    names = {j.out.name for j in parts["finetune"]}
    assert names == {"particlenet", "resnet15", "multitask_scratch", "multitask_pretrained", "multitask_pretrained_pairwise",
                     "multitask_pretrained_joint", "multitask_pretrained_head50x", "multitask_pretrained_layerdecay",
                     "multitask_pretrained_frozen", "multitask_pretrained_layerdecay_rotate", "multitask_pretrained_layerdecay_flip",
                     "multitask_pretrained_flip", "multitask_scratch_flip", "multitask_pretrained_flip_joint",
                     "multitask_pretrained_flip_pairwise", "multitask_pretrained_layerdecay_flip_pairwise"}
    pairwise = next(j.cmd for j in parts["finetune"] if j.out.name == "multitask_pretrained_pairwise")
    assert opt(pairwise, "--init-from") == [str(tmp_path / "pretrain/edgeconv"), str(tmp_path / "pretrain/masked_gt_pairwise")]
    assert "model.masked_gt.pairwise=true" in opt(pairwise, "--set")
    pre = next(j.cmd for j in parts["pretrain"] if j.out.name == "masked_gt_pairwise")
    assert opt(pre, "--set") == ["model.pairwise=true"]  # the pairwise encoder's weights come from a pairwise pretraining
    assert "model.masked_loss_weight=1.0" in opt(next(j.cmd for j in parts["finetune"] if j.out.name == "multitask_pretrained_joint"), "--set")
    for name, setting in (("head50x", "train.encoder_lr_scale=0.02"), ("layerdecay", "train.encoder_layer_decay=0.75"),
                          ("frozen", "train.encoder_frozen_epochs=2")):
        assert setting in opt(next(j.cmd for j in parts["finetune"] if j.out.name == f"multitask_pretrained_{name}"), "--set")
    shipped = next(j for j in parts["finetune"] if j.out.name == "multitask_pretrained_layerdecay")
    for name in ("rotate", "flip"):  # each augmentation is one setting on top of the shipped recipe
        augmented = next(j for j in parts["finetune"] if j.out.name == f"multitask_pretrained_layerdecay_{name}")
        assert [c for c in augmented.cmd if c not in shipped.cmd] == [str(augmented.out), f"model.augment_{name}=true"]
    recipe_job, flipped, scratch_flipped = (next(j for j in parts["finetune"] if j.out == tmp_path / "finetune/f1_s0" / n)
                                            for n in ("multitask_pretrained", "multitask_pretrained_flip", "multitask_scratch_flip"))
    # the flip without layer decay: one setting on the recipe; and the same run without --init-from
    assert [c for c in flipped.cmd if c not in recipe_job.cmd] == [str(flipped.out), "model.augment_flip=true"]
    assert opt(flipped.cmd, "--init-from") == opt(recipe_job.cmd, "--init-from") and "--init-from" not in scratch_flipped.cmd
    without_init = [c for i, c in enumerate(flipped.cmd) if "--init-from" not in (c, flipped.cmd[i - 1])]
    assert without_init == [str(flipped.out) if c == str(scratch_flipped.out) else c for c in scratch_flipped.cmd]
    joint = next(j for j in parts["finetune"] if j.out == tmp_path / "finetune/f1_s0/multitask_pretrained_flip_joint")
    assert [c for c in joint.cmd if c not in flipped.cmd] == [str(joint.out), "model.masked_loss_weight=1.0"]  # +flip and one setting
    paired = next(j for j in parts["finetune"] if j.out == tmp_path / "finetune/f1_s0/multitask_pretrained_flip_pairwise")
    assert [c for c in paired.cmd if c not in flipped.cmd] == [str(paired.out), "model.masked_gt.pairwise=true",
                                                               str(tmp_path / "pretrain/masked_gt_pairwise")]  # +flip, pair biases
    assert [c for c in flipped.cmd if c not in paired.cmd] == [str(flipped.out), str(tmp_path / "pretrain/masked_gt")]
    shipped_flip, decayed = (next(j for j in parts["finetune"] if j.out == tmp_path / "finetune/f1_s0" / n)
                             for n in ("multitask_pretrained_layerdecay_flip", "multitask_pretrained_layerdecay_flip_pairwise"))
    # the pair biases on the shipped recipe: the one setting and the pairwise-pretrained masked_gt
    assert [c for c in decayed.cmd if c not in shipped_flip.cmd] == [str(decayed.out), "model.masked_gt.pairwise=true",
                                                                     str(tmp_path / "pretrain/masked_gt_pairwise")]
    assert [c for c in shipped_flip.cmd if c not in decayed.cmd] == [str(shipped_flip.out), str(tmp_path / "pretrain/masked_gt")]
    seeds = {}
    for j in parts["finetune"]:
        seeds.setdefault(float(opt(j.cmd, "--label-fraction")[0]), set()).add(int(opt(j.cmd, "--label-seed")[0]))
    assert seeds == {0.005: set(range(5)), 0.01: set(range(5)), 0.05: {0, 1, 2}, 0.1: {0, 1, 2}, 1.0: {0, 1, 2}}
    recipe = next(j.cmd for j in parts["finetune"] if j.out.name == "multitask_pretrained")
    assert opt(recipe, "--init-from") == [str(tmp_path / "pretrain/edgeconv"), str(tmp_path / "pretrain/masked_gt")]
    assert opt(recipe, "--set")[-4:] == ["model.encoders=[masked_gt,edgeconv]", "model.fusion=cross_attention",
                                         "train.encoder_layer_decay=1.0", "model.augment_flip=false"]
    full = planned(tmp_path, "--plan", "issue22", "--size", "full", "--gpus", "4", "--sim-procs", "2")
    events = [int(opt(j.cmd, "--events")[0]) for j in full["data"] if j.cached]
    assert events == [30000, 30000, 50000, 50000]  # 60,000 labelled (48,000 train) + 100,000 unlabelled, 2 pieces each
    assert all(opt(j.cmd, "--gpus") == ["4"] for j in full["pretrain"] + full["finetune"])


def test_runs_measured_before_layer_decay_became_the_default_keep_it_off(tmp_path):
    """multitask_finetune ships layer decay 0.75 (it won issue 22); every multitask configuration
    of the plans measured before the switch runs at 1.0 as it did, so its finished runs still count,
    and the +layerdecay ablation still differs from the recipe in that one setting."""
    assert load_experiment(ROOT / "graphevent/configs/experiments/multitask_finetune.yaml").train.encoder_layer_decay == 0.75
    for plan in ("issue22", "encoders"):
        for j in planned(tmp_path, "--plan", plan)["finetune"]:
            if j.out.name in ("particlenet", "resnet15"):
                continue
            decay = [s for s in opt(j.cmd, "--set") if s.startswith("train.encoder_layer_decay=")]
            assert decay == [f"train.encoder_layer_decay={0.75 if 'layerdecay' in j.out.name else 1.0}"], (plan, j.out)
    finetunes = planned(tmp_path, "--plan", "issue22")["finetune"]
    recipe, decayed = (next(j for j in finetunes if j.out.name == name) for name in ("multitask_pretrained", "multitask_pretrained_layerdecay"))
    assert [c for c in decayed.cmd if c not in recipe.cmd] == [str(decayed.out), "train.encoder_layer_decay=0.75",
                                                               "train.encoder_layer_decay_max_labels=0"]


def test_runs_measured_with_layer_decay_keep_it_at_every_label_count(tmp_path):
    """multitask_finetune turns layer decay off from 1,000 labelled training events; every
    configuration of the plans that fine-tunes with layer decay (the shipped 0.75 or a pinned
    one) pins that limit off, so at 10% and 100% labels it still runs as it was measured."""
    cfg = load_experiment(ROOT / "graphevent/configs/experiments/multitask_finetune.yaml").train
    assert (cfg.encoder_layer_decay_max_labels, cfg.layer_decay_for(999), cfg.layer_decay_for(1000)) == (1000, 0.75, 1.0)
    checked = 0
    for plan in ("issue22", "encoders", "objectives"):
        for j in planned(tmp_path, "--plan", plan)["finetune"]:
            if j.out.name in ("particlenet", "resnet15") or "train.encoder_layer_decay=1.0" in opt(j.cmd, "--set"):
                continue
            assert "train.encoder_layer_decay_max_labels=0" in opt(j.cmd, "--set"), (plan, j.out)
            checked += 1
    # issue22: 4 configurations with layer decay x 19 runs (5 seeds at 0.5% and 1%, 3 elsewhere);
    # objectives: 6 with the shipped 0.75 x 15 runs (3 seeds, 5 fractions)
    assert checked == 4 * 19 + 6 * 15


def test_runs_measured_before_the_flip_augmentation_became_the_default_keep_it_off(tmp_path):
    """multitask_finetune ships augment_flip (it won issue 22 at 5% and 10% labels); every multitask
    configuration measured before the switch pins it off, in every plan; +flip turns it on."""
    assert load_experiment(ROOT / "graphevent/configs/experiments/multitask_finetune.yaml").model["augment_flip"] is True
    for plan in ("issue22", "encoders", "objectives"):
        for j in planned(tmp_path, "--plan", plan)["finetune"]:
            if j.out.name in ("particlenet", "resnet15"):
                continue
            flips = [s for s in opt(j.cmd, "--set") if s.startswith("model.augment_flip=")]
            assert flips == [f"model.augment_flip={'true' if '_flip' in j.out.name else 'false'}"], (plan, j.out)


@pytest.mark.parametrize("size", list(study.SIZES))
def test_every_config_file_a_plan_names_exists(tmp_path, size):
    parts = planned(tmp_path, "--size", size, "--plan", "issue22" if size == "medium" else "encoders")
    configs = [opt(j.cmd, "-c")[0] for part in parts.values() for j in part if "-c" in j.cmd]
    assert len(configs) > 3 and all(Path(c).is_file() for c in configs), [c for c in configs if not Path(c).is_file()]


def test_small_encoders_are_the_same_in_pretraining_and_fine_tuning(tmp_path):
    """--encoders small shrinks the encoders identically in pretraining and fine-tuning (so
    --init-from finds every weight); ParticleNet keeps its shipped size; the default is shipped."""
    parts = planned(tmp_path, "--size", "cpu", "--encoders", "small")
    pre = {j.key: opt(j.cmd, "--set") for j in parts["pretrain"]}
    assert pre["pretrain masked_gt"] == ["model.dim=32", "model.depth=2", "model.k=8"]
    assert pre["pretrain edgeconv"] == ["model.k=8", "model.channels=[[16,16],[32,32]]", "model.dim=32"]
    for job in parts["finetune"]:
        sets = opt(job.cmd, "--set")
        assert opt(job.cmd, "--epochs") == ["20"] and "train.min_steps_per_epoch=5" in sets
        if job.out.name == "particlenet":
            assert not any(s.startswith(("model.masked_gt.", "model.edgeconv.")) for s in sets)
        else:
            assert set(study.ENCODER_SIZES["small"]["multitask_finetune"]) <= set(sets)
    parts = planned(tmp_path, "--size", "cpu")
    assert all(not any(s.startswith("model.") for s in opt(j.cmd, "--set")) for j in parts["pretrain"])


def test_full_plan_simulates_both_pools_from_different_seeds(tmp_path):
    parts = planned(tmp_path, "--size", "full", "--sim-procs", "3", "--fractions", "0.01", "1", "--seeds", "4",
                    "--models", "masked_gt_pretrained")
    seeds = [int(opt(j.cmd, "--seed")[0]) for j in parts["data"] if j.cached]
    assert seeds == [1, 1001, 2001, 2, 1002, 2002]
    assert [j.key for j in parts["pretrain"]] == ["pretrain masked_gt"]  # only what the chosen models need
    assert len(parts["finetune"]) == 2 * 4 * 2  # the baseline always runs, for the paired differences


def test_bad_options(capsys):
    with pytest.raises(SystemExit):
        study.parse_args(["--size", "full", "--labelled-seed", "5", "--unlabelled-seed", "5"])
    capsys.readouterr()
    with pytest.raises(SystemExit) as e:
        study.selected_models(["resnet"])
    assert e.value.code == 2
    assert capsys.readouterr().err.startswith("--models: unknown ['resnet']; expected names from: particlenet, edgeconv_scratch")


def test_dry_run_prints_the_commands():
    r = subprocess.run([sys.executable, str(ROOT / "scripts/study_label_efficiency.py"), "--size", "smoke", "--dry-run",
                        "--part", "pretrain", "--part", "report"], capture_output=True, text=True, timeout=120)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and len(lines) == 2 + 4, r.stderr
    assert lines[0].startswith("[pretrain] graphevent train -c graphevent/configs/experiments/edgeconv_ae_pretrain.yaml --data runs/label_efficiency_smoke/data_unlabelled")
    assert all(line.startswith("[eval] graphevent eval ") for line in lines[2:])


def test_the_page_shows_the_command_that_reproduces_the_study():
    argv = ["--size", "cpu", "--part", "report", "--seeds", "3", "--note", "busy machine", "--force", "--part=finetune"]
    assert study.study_argv(argv) == ["--size", "cpu", "--seeds", "3"]


def test_objectives_plan_pretrains_each_encoder_with_foldingnet_beside_its_own_objective(tmp_path):
    parts = planned(tmp_path, "--plan", "objectives", "--size", "cpu")
    pre = {j.out.name: j.cmd for j in parts["pretrain"]}
    assert sorted(pre) == ["edgeconv", "foldingnet_edgeconv", "foldingnet_masked_gt", "masked_gt"]
    assert opt(pre["foldingnet_edgeconv"], "-c")[0].endswith("foldingnet_pretrain.yaml")
    assert opt(pre["foldingnet_edgeconv"], "--set") == ["model.encoder=edgeconv"] and opt(pre["foldingnet_masked_gt"], "--set") == []
    names = {j.out.name for j in parts["finetune"]}
    assert names == {"particlenet", "masked_gt_scratch", "masked_gt_pretrained", "masked_gt_foldingnet",
                     "edgeconv_scratch", "edgeconv_pretrained", "edgeconv_foldingnet"}
    for enc in ("masked_gt", "edgeconv"):
        fold = next(j.cmd for j in parts["finetune"] if j.out.name == f"{enc}_foldingnet")
        assert opt(fold, "--init-from") == [str(tmp_path / f"pretrain/foldingnet_{enc}")]
        assert f"model.encoders=[{enc}]" in opt(fold, "--set")
    config = next(c for c in study.PLANS["objectives"] if c.name == "edgeconv foldingnet")
    assert config.versus == "edgeconv pretrained" and config.group == "edgeconv"


def test_probe_adds_one_probe_of_every_pretrained_encoder_per_fraction_and_seed(tmp_path):
    assert "probe" not in planned(tmp_path, "--plan", "objectives", "--size", "cpu", "--fractions", "0.1")
    parts = planned(tmp_path, "--plan", "objectives", "--size", "cpu", "--fractions", "0.1", "--probe")
    assert [opt(j.cmd, "--seed") for j in parts["probe"]] == [["0"], ["1"], ["2"]]
    cmd = parts["probe"][0].cmd
    assert cmd[cmd.index("probe") + 1: cmd.index("--data")] == [str(tmp_path / "pretrain" / k) for k in
                                                                ("edgeconv", "foldingnet_edgeconv", "foldingnet_masked_gt", "masked_gt")]
    assert "--random-init" in cmd and parts["probe"][0].deps == [f"pretrain {k}" for k in
                                                                  ("edgeconv", "foldingnet_edgeconv", "foldingnet_masked_gt", "masked_gt")] + ["preprocess labelled"]


def test_the_labelled_events_column_counts_labels_read_not_events_trained_on(tmp_path):
    """A semi-supervised run trains on every event but reads the labels of its subset only: the
    column gives the labels, then what it trained on; runs saved before `labelled_events` existed
    give their train_events."""
    from graphevent.nn.checkpoint import save_checkpoint
    from graphevent.studies.plan import Config, Plan, Pool, run_dir

    configs = (Config("particlenet", "p"), Config("mt joint", "m", ("model.masked_loss_weight=1.0",)))
    plan = Plan(configs=configs, reference="particlenet", fractions=(0.05,), seeds=(0, 1), labelled=Pool(dataset=tmp_path))
    saved = {("particlenet", 0): {"train_events": 509}, ("particlenet", 1): {"train_events": 511},
             ("mt joint", 0): {"train_events": 10178, "labelled_events": 509},
             ("mt joint", 1): {"train_events": 10178, "labelled_events": 511}}
    for (name, seed), counts in saved.items():
        config = next(c for c in configs if c.name == name)
        save_checkpoint({"model": {}, **counts}, run_dir(tmp_path, config, 0.05, seed) / "checkpoints" / "last.pt")
    assert study.event_counts(tmp_path, plan) == {("particlenet", 0.05): "509/511",
                                                  ("mt joint", 0.05): "509/511 (of 10,178 trained on)"}


def test_a_configuration_without_its_versus_chain_is_refused_in_one_line_exit_2(tmp_path):
    r = subprocess.run([sys.executable, str(ROOT / "scripts" / "study_label_efficiency.py"), "--plan", "issue22", "--fractions", "0.01",
                        "--models", "particlenet", "multitask pretrained+layerdecay+flip", "--workdir", str(tmp_path / "w"), "--dry-run"],
                       capture_output=True, text=True)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr == ("configuration 'multitask pretrained+layerdecay+flip': versus 'multitask pretrained+layerdecay' is not a "
                        "configuration of the plan; expected one of: particlenet, multitask pretrained+layerdecay+flip\n")
    unknown = subprocess.run([sys.executable, str(ROOT / "scripts" / "study_label_efficiency.py"), "--plan", "issue22",
                              "--models", "particlenet", "multitask pretraind", "--workdir", str(tmp_path / "w"), "--dry-run"],
                             capture_output=True, text=True)
    assert unknown.returncode == 2 and unknown.stderr.startswith("--models: unknown ['multitask pretraind']; expected names from: ")
    assert unknown.stderr.count("\n") == 1 and not (tmp_path / "w").exists()


def test_only_runs_the_matched_jobs_and_what_they_need(tmp_path):
    cmd = [sys.executable, str(ROOT / "scripts" / "study_label_efficiency.py"), "--size", "smoke", "--dry-run", "--workdir", str(tmp_path / "w")]
    r = subprocess.run([*cmd, "--only", "particlenet @ 0.02 seed 1"], capture_output=True, text=True, timeout=120)
    lines = r.stdout.splitlines()
    assert r.returncode == 0 and [line.split()[0] for line in lines] == ["[data]", "[data]", "[finetune]"], r.stdout
    assert "--seed 1 --out" in lines[0] and "preprocess" in lines[1]  # the labelled pool only: no pretraining is needed
    assert "particlenet.yaml" in lines[2] and "/finetune/f0.02_s1/particlenet" in lines[2]
    bad = subprocess.run([*cmd, "--only", "particlenet @ 0.5 seed 1"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stdout == "" and bad.stderr.startswith("--only 'particlenet @ 0.5 seed 1': matches no job")
