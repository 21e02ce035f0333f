"""``graphevent train`` end to end on the tiny dataset: files written, fine-tuning, bad input."""

from __future__ import annotations

import json
from pathlib import Path
import shutil

import pytest
import torch

from train_helpers import LABEL, main_cli, write_experiment
from graphevent.nn.checkpoint import load_checkpoint, load_run, model_from_checkpoint, transfer_encoders


def test_pretrain_run_writes_every_file(pretrain_run, tiny_dataset):
    names = {p.relative_to(pretrain_run).as_posix() for p in pretrain_run.rglob("*") if p.is_file()}
    for expected in ("config.yaml", "env.json", "dataset.json", "launch.json", "metrics.jsonl",
                     "checkpoints/last.pt", "checkpoints/best.pt"):
        assert expected in names
    assert any(n.startswith("tensorboard/events.out.tfevents") for n in names)
    assert not any(".tmp" in n for n in names)

    records = [json.loads(line) for line in (pretrain_run / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert [r["step"] for r in records] == [7, 14]  # 55 train events, batch 8
    for r in records:
        assert r["events_per_s"] > 0 and r["train_events"] == 55 and r["val_loss"] > 0 and "train_recon" in r

    env = json.loads((pretrain_run / "env.json").read_text())
    assert env["world_size"] == 1 and env["backend"] is None and env["torch"] == torch.__version__
    dataset = json.loads((pretrain_run / "dataset.json").read_text())
    assert dataset["info"]["classes"] == ["quark", "gluon"] and len(dataset["manifest_sha256"]) == 64

    last = load_checkpoint(pretrain_run / "checkpoints" / "last.pt")  # weights_only=True
    assert (last["epoch"], last["step"], last["batch_in_epoch"]) == (2, 14, 0)
    assert {"model", "optimizer", "scheduler", "scaler", "rng", "model_config", "dataset_info", "tasks", "config"} <= set(last)
    model, cfg, info = load_run(pretrain_run)
    assert cfg.stage == "pretrain" and info.num_node_features == 3 and not model.training


def test_finetune_moves_encoder_exactly_and_freeze_keeps_it(pretrain_run, tiny_dataset, tmp_path, capsys):
    pre = load_checkpoint(pretrain_run / "checkpoints" / "best.pt")
    pre_encoder = model_from_checkpoint(pre).encoder_modules()["masked_gt"].state_dict()

    cfg = write_experiment(tmp_path / "ft.yaml", "finetune", "multitask", tasks=LABEL, epochs=1)
    from graphevent.config.experiment import load_experiment
    from graphevent.data.info import DatasetInfo
    from graphevent.nn.registry import build_model

    exp = load_experiment(cfg)
    fresh = build_model(exp.model, DatasetInfo.from_dir(tiny_dataset), exp.tasks)
    assert transfer_encoders(fresh, pretrain_run) == ["masked_gt"]
    moved = fresh.encoder_modules()["masked_gt"].state_dict()
    assert all(torch.equal(moved[k], pre_encoder[k]) for k in pre_encoder)

    out = tmp_path / "ft"
    rc = main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--init-from", pretrain_run,
                   "--freeze-encoder", "--label-fraction", "0.5", "--no-progress"])
    assert rc == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"--init-from {pretrain_run.resolve()}: loaded encoder masked_gt ({len(pre_encoder)} tensors, frozen)" in lines
    assert "--label-fraction 0.5: the heads train on 28 of 55 labelled train events (seed 1)" in lines  # the experiment seed
    last = load_checkpoint(out / "checkpoints" / "last.pt")
    tuned = model_from_checkpoint(last)
    after = tuned.encoder_modules()["masked_gt"].state_dict()
    assert all(torch.equal(after[k], pre_encoder[k]) for k in pre_encoder)  # frozen: bit-identical
    assert last["frozen_encoders"] == ["masked_gt"]
    assert last["train_events"] == 28  # round(0.5 * 55) labelled events
    record = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert record["train_events"] == 28 and 0.0 <= record["val_label_auc"] <= 1.0
    heads_before = {k: v for k, v in fresh.state_dict().items() if not k.startswith("masked_gt")}
    heads_after = tuned.state_dict()
    assert any(not torch.equal(v, heads_after[k]) for k, v in heads_before.items() if v.is_floating_point())


def test_run_dir_is_refused_unless_resume_or_overwrite(pretrain_run, tiny_dataset, tmp_path, capsys):
    cfg = write_experiment(tmp_path / "pre.yaml", "pretrain", "masked_gt_ae", epochs=1)
    out = tmp_path / "run"
    shutil.copytree(pretrain_run, out)
    assert main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--no-progress"]) == 2
    assert "directory exists and is not empty; use --resume" in capsys.readouterr().err
    # resuming a finished run with more epochs continues it
    assert main_cli(["train", "-d", tiny_dataset, "-o", out, "--resume", "--epochs", "3", "--no-progress"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3]
    env = json.loads((out / "env.json").read_text())
    assert env["resumed"] and len(env["previous"]) == 1
    # changing anything else is refused
    assert main_cli(["train", "-d", tiny_dataset, "-o", out, "--resume", "--set", "train.lr=0.5", "--no-progress"]) == 2
    assert "--set train.lr=0.5: train.lr is 0.5 but the run was started with 0.003" in capsys.readouterr().err


def _one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


@pytest.mark.parametrize(
    "case", ["missing_data", "bad_checksum", "unknown_model", "unknown_task", "unknown_task_type", "gpus", "bad_metric"]
)
def test_bad_input_gives_one_line_and_exit_2(case, tiny_dataset, tmp_path, capsys):
    data = tiny_dataset
    cfg = write_experiment(tmp_path / "exp.yaml", "supervised", "particlenet", tasks=LABEL)
    extra: list[str] = []
    if case == "missing_data":
        data, expected = tmp_path / "nowhere", "nowhere: dataset directory not found"
    elif case == "bad_checksum":
        data = tmp_path / "ds"
        shutil.copytree(tiny_dataset, data)
        manifest = json.loads((data / "manifest.json").read_text())
        shard = data / next(s["path"] for s in manifest["shards"] if s["split"] == "train")
        raw = bytearray(shard.read_bytes())
        raw[-100] ^= 0xFF
        shard.write_bytes(bytes(raw))
        expected = "checksum does not match manifest.json"
    elif case == "unknown_model":
        cfg = write_experiment(tmp_path / "exp.yaml", "supervised", {"name": "transformer9000"}, tasks=LABEL)
        expected = "model.name: unknown model 'transformer9000'; registered models:"
    elif case == "unknown_task":
        cfg = write_experiment(tmp_path / "exp.yaml", "supervised", "particlenet",
                               tasks=[{"name": "mass", "type": "regression", "target": "jet_mass"}])
        expected = "'jet_mass' is not a target of this dataset; available: m0, pt"
    elif case == "unknown_task_type":
        cfg = write_experiment(tmp_path / "exp.yaml", "supervised", "particlenet",
                               tasks=[{"name": "seg", "type": "segmentation"}])
        expected = "tasks[0].type: invalid value 'segmentation'; expected one of 'classification', 'regression'"
    elif case == "gpus":
        if torch.cuda.is_available():
            pytest.skip("this machine has a GPU")
        extra, expected = ["--gpus", "2"], "--gpus 2: only 0 CUDA devices visible"
    else:
        cfg = write_experiment(tmp_path / "exp.yaml", "supervised", "particlenet", tasks=LABEL,
                               early_stopping_metric="val_mass_auc")
        expected = "early_stopping_metric: invalid value 'val_mass_auc'; expected one of val_loss, val_label_auc"
    out = tmp_path / "run"
    assert main_cli(["train", "-c", cfg, "-d", data, "-o", out, "--no-progress", *extra]) == 2
    err = _one_line_error(capsys)
    assert expected in err
    assert not out.exists()  # nothing half-written


def test_init_from_two_pretraining_runs_moves_both_encoders(tmp_path, tiny_dataset):
    """multitask(encoder=both) takes masked_gt from one run and edgeconv from another, exactly."""
    import torch

    from graphevent.cli.app import main
    from graphevent.nn.checkpoint import load_run

    root = Path(__file__).resolve().parents[2] / "graphevent" / "configs" / "experiments"
    common = ["--data", str(tiny_dataset), "--epochs", "1", "--batch-size", "16", "--no-progress", "--set", "train.num_workers=0"]
    small_gt = ["--set", "model.depth=1", "--set", "model.dim=16", "--set", "model.heads=2"]
    assert main(["train", "-c", str(root / "masked_gt_pretrain.yaml"), "--out", str(tmp_path / "gt"), *common, *small_gt]) == 0
    assert main(["train", "-c", str(root / "edgeconv_ae_pretrain.yaml"), "--out", str(tmp_path / "ec"), *common]) == 0
    code = main(["train", "-c", str(root / "multitask_finetune.yaml"), "--out", str(tmp_path / "ft"), *common,
                 "--set", "model.masked_gt.depth=1", "--set", "model.masked_gt.dim=16", "--set", "model.masked_gt.heads=2",
                 "--init-from", str(tmp_path / "gt"), "--init-from", str(tmp_path / "ec"), "--freeze-encoder"])
    assert code == 0
    ft, _, _ = load_run(tmp_path / "ft", "last")
    for name, run in (("masked_gt", "gt"), ("edgeconv", "ec")):
        src, _, _ = load_run(tmp_path / run, "best")
        a = src.encoder_modules()[name].state_dict()
        b = ft.encoder_modules()[name].state_dict()
        assert a.keys() == b.keys()
        for k in a:
            assert torch.equal(a[k], b[k]), (name, k)


def test_resume_of_an_init_from_run_needs_no_options_again(pretrain_run, tiny_dataset, tmp_path, capsys):
    cfg = write_experiment(tmp_path / "ft.yaml", "finetune", "multitask", tasks=LABEL, epochs=1)
    out = tmp_path / "ft"
    assert main_cli(["train", "-c", cfg, "-d", tiny_dataset, "-o", out, "--init-from", pretrain_run,
                     "--label-fraction", "0.5", "--no-progress"]) == 0
    capsys.readouterr()
    # alone: the recorded config, data and initialisation; --epochs extends the run
    assert main_cli(["train", "-o", out, "--resume", "--epochs", "2", "--no-progress"]) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert len(lines) == 1 and lines[0].startswith("epoch 2 | train_loss ") and lines[0].endswith(" events/s")
    # the config file given again: --init-from and --label-fraction are still the run's
    assert main_cli(["train", "-c", cfg, "-o", out, "--resume", "--epochs", "3", "--no-progress"]) == 0
    records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2, 3] and {r["train_events"] for r in records} == {28}
    # given again with another value: refused
    assert main_cli(["train", "-o", out, "--resume", "--label-fraction", "0.9", "--no-progress"]) == 2
    assert "--label-fraction 0.9: train.label_fraction is 0.9 but the run was started with 0.5" in capsys.readouterr().err
    # a new run still needs --data
    assert main_cli(["train", "-c", cfg, "-o", tmp_path / "new", "--no-progress"]) == 2
    assert "--data: required for a new run" in capsys.readouterr().err
