"""``graphevent train``: pretraining and fine-tuning, one process or DDP on GPUs, CPUs or nodes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from graphevent.cli.options import OutOpt, OverwriteOpt, ResumeDataDirOpt, SetOpt


def train_cmd(
    out: OutOpt,
    data: ResumeDataDirOpt = None,
    config: Annotated[Path | None, typer.Option("--config", "-c", help="Experiment: a YAML file or a shipped name (particlenet; graphevent/configs/experiments/); optional with --resume.", show_default=False)] = None,
    gpus: Annotated[int | None, typer.Option(help="DDP workers, one per GPU (NCCL). 0 = CPU. Default: every visible GPU, 0 without.", show_default=False)] = None,
    nproc: Annotated[int, typer.Option(help="CPU workers (gloo) when training on CPU.")] = 1,
    nnodes: Annotated[int, typer.Option(help="Nodes taking part (run the same command on each).")] = 1,
    node_rank: Annotated[int, typer.Option(help="This node's rank, 0..nnodes-1.")] = 0,
    master_addr: Annotated[str | None, typer.Option(help="Address of node 0 (multi-node).", show_default=False)] = None,
    master_port: Annotated[int | None, typer.Option(help="Rendezvous port on node 0 (multi-node; default 29500).", show_default=False)] = None,
    epochs: Annotated[int | None, typer.Option(help="Override train.epochs.", show_default=False)] = None,
    batch_size: Annotated[int | None, typer.Option(help="Override train.batch_size (events per worker).", show_default=False)] = None,
    resume: Annotated[bool, typer.Option(help="Continue the run in --out from checkpoints/last.pt.")] = False,
    overwrite: OverwriteOpt = False,
    init_from: Annotated[list[Path] | None, typer.Option(help="Pretraining run (or checkpoint) whose encoder weights initialise the model; repeat for several encoders.", show_default=False)] = None,
    freeze_encoder: Annotated[bool | None, typer.Option("--freeze-encoder/--no-freeze-encoder", help="Keep the encoder weights fixed; train only the heads (default: train.freeze_encoder).", show_default=False)] = None,
    label_fraction: Annotated[float | None, typer.Option(help="Train the heads on this seeded fraction of labelled events (0 < F <= 1).", show_default=False)] = None,
    label_seed: Annotated[int | None, typer.Option(help="Seed of the --label-fraction subset (default: the experiment seed); set it to vary the subset and the initialisation independently.", show_default=False)] = None,
    progress: Annotated[bool, typer.Option("--progress/--no-progress", help="Show the progress bar.")] = True,
    set_: SetOpt = None,
) -> None:
    """Train a model: [bold]pretrain[/] an autoencoder, or [bold]finetune[/]/[bold]supervised[/] task heads.

    Writes RUN_DIR/config.yaml, env.json, dataset.json, metrics.jsonl (one line per epoch),
    checkpoints/last.pt and best.pt, and tensorboard/ logs. Under torchrun or srun each
    started process joins their process group; otherwise --gpus/--nproc start the workers
    with PyTorch's elastic launcher, which restarts failed workers from last.pt.

    [bold]Examples[/]

      graphevent train -c masked_gt_pretrain -d datasets/qg -o runs/pre

      graphevent train -c masked_gt_finetune -d datasets/qg -o runs/ft \\
          --init-from runs/pre --label-fraction 0.1

      graphevent train -c particlenet -d datasets/qg -o runs/pn --gpus 4

      graphevent train -o runs/pn --resume --epochs 40
    """
    from graphevent.cli.console import console
    from graphevent.train.run import TrainOptions, summary_table, train

    overrides, labels = option_overrides(set_, {  # key: (the option as typed, its value or None)
        "train.epochs": (f"--epochs {epochs}", epochs),
        "train.batch_size": (f"--batch-size {batch_size}", batch_size),
        "train.label_fraction": (f"--label-fraction {label_fraction}", label_fraction),
        "train.label_seed": (f"--label-seed {label_seed}", label_seed),
        "train.init_from": (" ".join(f"--init-from {p}" for p in init_from or ()),
                            [str(p.resolve()) for p in init_from] if init_from else None),
        "train.freeze_encoder": ("--freeze-encoder" if freeze_encoder else "--no-freeze-encoder", freeze_encoder),
    })
    result = train(
        TrainOptions(
            data=data, out=out, config=config, overrides=tuple(overrides), option_labels=labels, gpus=gpus, nproc=nproc,
            nnodes=nnodes, node_rank=node_rank, master_addr=master_addr, master_port=master_port,
            resume=resume, overwrite=overwrite, progress=progress,
        ),
        notify=lambda note: console.print(note, markup=False, highlight=False, soft_wrap=True),
    )
    if result.epochs or result.summary:
        console.print(summary_table(result))
    console.print(f"[green]run written to[/] {result.run_dir}")


def option_overrides(set_: list[str] | None, options: dict[str, tuple[str, object]]) -> tuple[list[str], dict[str, str]]:
    """The ``--set`` overrides followed by those of the options given (``key: (as typed, value)``,
    value ``None`` = not given), and how the user typed each option's override, for error
    messages (``{"train.batch_size=0": "--batch-size 0"}``). An option wins over a ``--set`` of
    the same key; both are checked."""
    overrides, labels = list(set_ or []), {}
    for key, (typed, value) in options.items():
        if value is None:
            continue
        # values as JSON, which the YAML reader of --set parses back exactly (strings quoted)
        item = f"{key}={json.dumps(value)}"
        overrides.append(item)
        labels[item] = typed
    return overrides, labels


def register(app: typer.Typer) -> None:
    """Add this module's commands to the root app."""
    app.command("train")(train_cmd)
