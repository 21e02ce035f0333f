"""Train the toy model with :class:`Trainer` on synthetic events; rank 0 saves the result.

Run directly (one process) or under ``python -m torch.distributed.run --nproc-per-node N``
(it then joins torchrun's gloo group through ``init_distributed``). Usage::

    ddp_helper.py OUT.pt BATCH_SIZE [EPOCHS]
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def train_toy(out: str, batch_size: int, epochs: int = 2, ctx=None) -> dict:
    import torch

    from graphevent.config.base import from_dict
    from graphevent.config.experiment import ExperimentConfig
    from graphevent.nn.registry import build_model
    from graphevent.nn.tasks import TaskConfig
    from graphevent.utils.distributed import init_distributed, shutdown
    from graphevent.train.engine import Trainer, seed_everything, seed_worker
    from toy import INFO, toy_events

    own_ctx = ctx is None
    ctx = init_distributed(False) if own_ctx else ctx
    cfg = from_dict(ExperimentConfig, {
        "name": "toy", "stage": "supervised", "model": {"name": "toy_train", "hidden": 8},
        "tasks": [{"name": "label", "type": "classification"}],
        "train": {"epochs": epochs, "batch_size": batch_size, "lr": 0.05, "warmup_epochs": 0.5,
                  "grad_clip": 1.0, "amp": "off", "weight_decay": 0.01, "log_every_steps": 1},
        "seed": 3,
    })
    seed_everything(cfg.seed)
    model = build_model(cfg.model, INFO, [TaskConfig("label", "classification")]).double()
    seed_worker(cfg.seed, ctx.rank)
    train = toy_events(24, seed=1, dtype=torch.float64)
    val = toy_events(10, seed=2, dtype=torch.float64)
    trainer = Trainer(model, cfg, train, [d.num_nodes for d in train], ctx,
                      val_set=val, val_nodes=[d.num_nodes for d in val])
    summary = trainer.fit()
    if ctx.is_main:
        torch.save({"model": model.state_dict(), "summary": summary, "step": trainer.state.step}, out)
    del trainer, model
    if own_ctx:
        shutdown(ctx)
    return summary


if __name__ == "__main__":
    train_toy(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 2)
