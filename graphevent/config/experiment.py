"""The experiment config: which model, which tasks, which stage, and how to train it.

One YAML file per experiment lives in ``graphevent/configs/experiments/``; ``graphevent train
--config`` loads it into :class:`ExperimentConfig` (``--set train.lr=3e-4`` and the
shortcut options ``--epochs``, ``--batch-size``, ``--label-fraction``, ``--init-from``,
``--freeze-encoder`` override it). The resolved config is written to ``RUN_DIR/config.yaml``.

Example::

    name: masked_gt_finetune
    stage: finetune              # pretrain | finetune | supervised
    seed: 0
    model:                       # registry name + the model's keyword arguments
      name: multitask
      hidden: 64
    tasks:                       # task heads (finetune/supervised)
      - {name: label, type: classification}
      - {name: m0, type: regression, target: m0}
    train:                       # see TrainConfig
      epochs: 20
      batch_size: 64
      lr: 3.0e-4
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Mapping, get_args

from graphevent.errors import ConfigError
from graphevent.config.tasks import TASK_TYPES, TaskConfig

Stage = Literal["pretrain", "finetune", "supervised"]
STAGES: tuple[str, ...] = get_args(Stage)


@dataclass(frozen=True)
class TrainConfig:
    """How a model is trained.

    Args:
        epochs: passes over the training split.
        batch_size: events per batch *per worker* (with N workers an optimizer step sees
            ``N * batch_size * accumulate`` events). Ignored when ``max_nodes_per_batch > 0``.
        max_nodes_per_batch: if > 0, batches are packed up to this many nodes instead of a
            fixed event count (balances work between workers when graph sizes vary).
        lr: peak learning rate (AdamW).
        weight_decay: decoupled weight decay on weight matrices (not biases/norms).
        betas: AdamW betas.
        warmup_epochs: linear warmup length (may be fractional); then cosine decay.
        min_lr_ratio: final learning rate as a fraction of ``lr``.
        grad_clip: clip the global gradient norm to this value; 0 = off.
        accumulate: micro-batches per optimizer step (gradient accumulation).
        amp: mixed precision: ``auto`` (bf16 on GPUs that support it, off on CPU),
            ``bf16``, ``fp16`` (with a gradient scaler) or ``off``.
        early_stopping_patience: stop after this many epochs without improvement of
            ``early_stopping_metric``; 0 = never stop early.
        early_stopping_metric: validation metric that selects ``best.pt`` and drives early
            stopping: ``val_loss`` (lower is better), ``val_<task>_auc`` /
            ``val_<task>_accuracy`` (higher is better) or ``val_<task>_mae`` (lower).
        deterministic: deterministic algorithms (``torch.use_deterministic_algorithms``,
            cuDNN deterministic); slower on GPUs.
        num_workers: DataLoader worker processes per training process.
        in_memory: load the train and val splits into RAM at the start (decompressed);
            much faster data loading, e.g. to keep a GPU busy, for datasets that fit in memory.
        checkpoint_every_steps: also write ``last.pt`` every this many optimizer steps
            (0 = only at epoch ends).
        max_restarts: how often the elastic launcher restarts failed workers (they resume
            from ``last.pt``).
        label_fraction: fine-tuning/supervised: train the heads on this seeded fraction of
            the labelled training events (pretraining always uses all events).
        label_seed: seed of that subset (default: the experiment seed); vary it to draw
            another subset with the same initialisation seed, or the other way round.
        min_labels_per_class: with a classification task, the subset holds at least this
            many events of every class (all of a class's events if it has fewer), so tiny
            fractions never miss a class.
        min_steps_per_epoch: a training split too small for this many optimizer steps is
            passed over several times per epoch (each pass a new shuffle) until the epoch
            holds ``min_steps_per_epoch * accumulate * batch_size`` events per worker (about
            that many steps; with ``max_nodes_per_batch`` steps are packed by nodes). Few
            labels then still get enough steps to converge (at 1% labels an epoch is
            otherwise one step) while validation and epoch-based settings (warmup,
            early stopping, frozen epochs) keep their meaning. 0 = off.
        init_from: run directories or checkpoints whose encoder weights initialise the model
            (one per pretrained encoder, e.g. an ``edgeconv_ae`` run and a ``masked_gt_ae``
            run for ``multitask`` with ``encoder: both``).
        freeze_encoder: keep the encoder weights fixed (those loaded by ``init_from``, or
            all encoders when it is not given).
        encoder_lr_scale: the encoders' learning rate is ``lr`` times this (fine-tuning that
            keeps what pretraining learned: < 1); 1 = one learning rate for everything.
        encoder_layer_decay: layer-wise learning-rate decay in (0, 1]: each encoder level
            (input embeddings, each layer, output projections) learns at this factor to the
            power of its levels below the encoder's top, times ``encoder_lr_scale`` (the
            lowest layers, most general after pretraining, move least); 1 = off.
        encoder_layer_decay_max_labels: > 0: ``encoder_layer_decay`` applies only to a run
            whose labelled training events are fewer than this; from this many on, every
            encoder level learns at one rate (layer decay helps with few labels and costs
            with many: docs/results_issue22.md); 0 = always applies.
        encoder_frozen_epochs: the encoders' learning rate is 0 for this many (possibly
            fractional) epochs and they run in eval mode (BatchNorm statistics and dropout
            fixed too), so the heads first fit a fixed encoder (linear probe, then fine-tune);
            0 = train everything from the start.
        find_unused_parameters: DDP option, needed when some parameters get no gradient in
            a step (e.g. a decoder unused while fine-tuning); default: decided by one probe
            step at the start.
        log_every_steps: TensorBoard step-loss interval.
    """

    epochs: int = 10
    batch_size: int = 64
    max_nodes_per_batch: int = 0
    lr: float = 1e-3
    weight_decay: float = 0.01
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_epochs: float = 1.0
    min_lr_ratio: float = 0.01
    grad_clip: float = 1.0
    accumulate: int = 1
    amp: Literal["auto", "bf16", "fp16", "off"] = "auto"
    early_stopping_patience: int = 0
    early_stopping_metric: str = "val_loss"
    deterministic: bool = False
    num_workers: int = 0
    in_memory: bool = False
    checkpoint_every_steps: int = 0
    max_restarts: int = 3
    label_fraction: float = 1.0
    label_seed: int | None = None
    min_labels_per_class: int = 5
    min_steps_per_epoch: int = 0
    init_from: list[str] = field(default_factory=list)
    freeze_encoder: bool = False
    encoder_lr_scale: float = 1.0
    encoder_layer_decay: float = 1.0
    encoder_layer_decay_max_labels: int = 0
    encoder_frozen_epochs: float = 0.0
    find_unused_parameters: bool | None = None
    log_every_steps: int = 10

    def layer_decay_for(self, labelled: int) -> float:
        """The layer-wise decay of a run with ``labelled`` labelled training events:
        ``encoder_layer_decay``, or 1 (off) from ``encoder_layer_decay_max_labels`` on."""
        limit = self.encoder_layer_decay_max_labels
        return 1.0 if 0 < limit <= labelled else self.encoder_layer_decay

    def validate(self, where: str) -> None:
        positive = {"epochs": self.epochs, "batch_size": self.batch_size, "accumulate": self.accumulate}
        for key, value in positive.items():
            if value < 1:
                raise ConfigError(f"{where}.{key}: invalid value {value}; expected an integer >= 1")
        non_negative = {
            "max_nodes_per_batch": self.max_nodes_per_batch, "weight_decay": self.weight_decay,
            "warmup_epochs": self.warmup_epochs, "grad_clip": self.grad_clip,
            "early_stopping_patience": self.early_stopping_patience, "num_workers": self.num_workers,
            "checkpoint_every_steps": self.checkpoint_every_steps, "max_restarts": self.max_restarts,
            "log_every_steps": self.log_every_steps, "min_labels_per_class": self.min_labels_per_class,
            "min_steps_per_epoch": self.min_steps_per_epoch,
            "encoder_layer_decay_max_labels": self.encoder_layer_decay_max_labels,
        }
        for key, value in non_negative.items():
            if value < 0:
                raise ConfigError(f"{where}.{key}: invalid value {value}; expected >= 0")
        if not self.encoder_lr_scale > 0:
            raise ConfigError(f"{where}.encoder_lr_scale: invalid value {self.encoder_lr_scale}; expected > 0")
        if not 0 < self.encoder_layer_decay <= 1:
            raise ConfigError(f"{where}.encoder_layer_decay: invalid value {self.encoder_layer_decay}; expected a number in (0, 1]")
        if not 0 <= self.encoder_frozen_epochs <= self.epochs:
            raise ConfigError(f"{where}.encoder_frozen_epochs: invalid value {self.encoder_frozen_epochs}; expected 0..epochs ({self.epochs})")
        if not self.lr > 0:
            raise ConfigError(f"{where}.lr: invalid value {self.lr}; expected > 0")
        if not 0 <= self.min_lr_ratio <= 1:
            raise ConfigError(f"{where}.min_lr_ratio: invalid value {self.min_lr_ratio}; expected 0..1")
        if not 0 < self.label_fraction <= 1:
            raise ConfigError(f"{where}.label_fraction: invalid value {self.label_fraction}; expected 0 < fraction <= 1")
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"{where}.betas: invalid value {list(self.betas)}; expected two numbers in [0, 1)")


@dataclass(frozen=True)
class ExperimentConfig:
    """One experiment: stage, model, tasks and training settings.

    Args:
        stage: ``pretrain`` (autoencoder objective on all events), ``finetune`` (task heads
            on a pretrained encoder, see ``train.init_from``) or ``supervised`` (task heads
            from scratch).
        model: ``{"name": <registered model>, **kwargs}`` passed to ``build_model``.
        tasks: task heads (required for finetune/supervised; ignored for pretrain).
        train: :class:`TrainConfig`.
        seed: seed of initialisation, shuffling, masking and the label subset.
        name: experiment name (defaults to the config file's stem).
    """

    stage: Stage
    model: dict[str, Any]
    tasks: list[TaskConfig] = field(default_factory=list)
    train: TrainConfig = field(default_factory=TrainConfig)
    seed: int = 0
    name: str = "experiment"

    def validate(self, where: str) -> None:
        name = self.model.get("name")
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.model.name: missing; expected a registered model name (see `graphevent models`)")
        if self.stage != "pretrain" and not self.tasks:
            raise ConfigError(f"{where}.tasks: stage {self.stage!r} needs at least one task (classification or regression)")
        names = [t.name for t in self.tasks]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"{where}.tasks: duplicate task name {dup[0]!r}")
        if self.stage == "pretrain" and self.train.label_fraction < 1:
            raise ConfigError(f"{where}.train.label_fraction: pretraining uses all events; label_fraction applies to finetune/supervised")
        metric = self.train.early_stopping_metric
        if metric not in self.metric_names():
            raise ConfigError(
                f"{where}.train.early_stopping_metric: invalid value {metric!r}; expected one of {', '.join(self.metric_names())}"
            )

    @property
    def trains_tasks(self) -> bool:
        return self.stage != "pretrain"

    def metric_names(self) -> list[str]:
        """Validation metrics this experiment reports (candidates for early stopping)."""
        out = ["val_loss"]
        if self.trains_tasks:
            for t in self.tasks:
                out += [f"val_{t.name}_{m}" for m in t.task_type.val_metrics]
        return out


def metric_mode(name: str) -> Literal["min", "max"]:
    """``max`` for a metric some task type maximises (AUC, accuracy), ``min`` for losses and errors."""
    return "max" if name.endswith(maximised_suffixes()) else "min"


def maximised_suffixes() -> tuple[str, ...]:
    """``("_auc", "_accuracy")``: name endings of the validation metrics that are better when larger."""
    return tuple(dict.fromkeys(f"_{m}" for t in TASK_TYPES.values() for m in t.maximise))


def load_experiment(path: str | Path, overrides: list[str] | None = None,
                    labels: Mapping[str, str] | None = None) -> ExperimentConfig:
    """Load ``graphevent/configs/experiments/*.yaml`` into a validated :class:`ExperimentConfig`.

    Args:
        path: YAML file, or the name of a shipped config (``particlenet``).
        overrides: ``["train.lr=3e-4", ...]`` applied before validation, each checked
            (:func:`~graphevent.config.base.build_with_overrides`).
        labels: how the user typed an override that a command made from an option
            (``{"train.epochs=0": "--epochs 0"}``), for error messages.
    """
    from graphevent.config.base import build_with_overrides, load_yaml
    from graphevent.config.shipped import resolve_config_path

    path = resolve_config_path(path, "experiments")
    raw = {"name": Path(path).stem, **load_yaml(path)}
    return build_with_overrides(lambda r: experiment_from_dict(r, str(path)), raw, overrides, str(path), labels)


def experiment_from_dict(raw: dict[str, Any], where: str = "config") -> ExperimentConfig:
    """Build and validate an :class:`ExperimentConfig` from a mapping."""
    from graphevent.config.base import from_dict

    return from_dict(ExperimentConfig, raw, where)
