"""Checkpoints live in :mod:`graphevent.nn.checkpoint` (evaluation reloads runs without
importing training); this name keeps ``graphevent.train.checkpoint`` imports working."""

from graphevent.nn.checkpoint import (  # noqa: F401  (re-exported)
    CHECKPOINT_FORMAT,
    asdict_plain,
    checkpoint_path,
    load_checkpoint,
    load_run,
    model_from_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
    transfer_encoders,
)
