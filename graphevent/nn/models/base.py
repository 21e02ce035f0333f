"""The interface every graphevent model implements, and helpers shared by the models.

Training, evaluation and the CLI only talk to models through :class:`GraphModel`:

* ``loss(batch, stage)`` -> ``(scalar, logs)`` for ``pretrain`` (reconstruction),
  ``finetune`` / ``supervised`` (weighted task losses); ``forward(batch, stage)`` is the
  same call, so a DDP-wrapped model is used as ``ddp_model(batch, stage)``;
* ``predict(batch)`` -> physical-unit outputs per task, or ``recon_error`` for autoencoders;
* ``encode(batch)`` -> ``(node_tokens (N, D), pooled (B, D))``;
* ``encoder_modules()`` -> named encoders (``masked_gt``, ``edgeconv``, ...: the registered
  encoder modules it composes) for weight transfer and freezing (:meth:`freeze_encoders`);
* ``explain(batch)`` -> attention maps / pooled embeddings;
* ``after_optimizer_step(step, total_steps)`` -> called after each optimizer step (EMA teachers).

Encoders are modules of their own (:data:`graphevent.nn.registry.ENCODER_CONTRACT`); models
compose them: :class:`Backbone` holds one, :class:`AutoencoderModel` adds a decoder to one.
"""

from __future__ import annotations

import abc
import functools
import operator
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor, nn

from graphevent.config.base import from_dict, to_dict
from graphevent.config.experiment import STAGES, Stage
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.registry import build_encoder, config_with_encoder_sections, list_encoders, mapping_with_encoder_sections


class GraphModel(nn.Module, abc.ABC):
    """Base class of registered models.

    Subclasses set ``config_class`` (a frozen dataclass of their keyword arguments) and
    the capability flags, and implement :meth:`encode`, :meth:`loss` and :meth:`predict`.

    Args:
        info: the dataset's input sizes and statistics.
        config: an instance of ``config_class``.
    """

    name: ClassVar[str] = ""
    config_class: ClassVar[type]
    supports_pretrain: ClassVar[bool] = False
    supports_tasks: ClassVar[bool] = False
    #: what ``predict``'s ``recon_error`` measures (autoencoders; shown in figures and tables)
    recon_error_label: ClassVar[str] = ""
    #: why the model has no padded form for export (empty: it has one, or nobody said why)
    not_exportable: ClassVar[str] = ""
    # properties TorchScript leaves alone when it compiles a model's forward_padded (export)
    __jit_unused_properties__ = ["model_config", "frozen_encoders", "tasks"]

    def __init__(self, info: DatasetInfo, config: Any) -> None:
        super().__init__()
        self.info = info
        self.config = config
        self._frozen: set[str] = set()
        self._held = False

    # ------------------------------------------------------------------ description
    @classmethod
    def config_from_dict(cls, data: dict[str, Any], where: str = "model") -> Any:
        """The ``config_class`` instance of a ``model:`` mapping (without ``name``); strict keys.
        A config class with per-encoder sections reads them itself (its ``from_mapping``)."""
        from_mapping = getattr(cls.config_class, "from_mapping", None)
        return from_mapping(data, where) if from_mapping else from_dict(cls.config_class, data, where)

    @property
    def model_config(self) -> dict[str, Any]:
        """The ``model:`` mapping that rebuilds this model with ``build_model`` (a config with
        per-encoder sections writes them itself: its ``to_mapping``)."""
        to_mapping = getattr(self.config, "to_mapping", None)
        return {"name": self.name, **(to_mapping() if to_mapping else to_dict(self.config))}

    def num_parameters(self, trainable_only: bool = False) -> int:
        return sum(p.numel() for p in self.parameters() if p.requires_grad or not trainable_only)

    def check_stage(self, stage: str) -> None:
        """Raise :class:`ConfigError` if this model cannot train in ``stage``."""
        if stage not in STAGES:
            raise ConfigError(f"stage: invalid value {stage!r}; expected one of {', '.join(STAGES)}")
        if stage == "pretrain" and not self.supports_pretrain:
            raise ConfigError(f"model {self.name!r} has no pretraining objective; use stage finetune or supervised")
        if stage != "pretrain" and not self.supports_tasks:
            raise ConfigError(f"model {self.name!r} has no task heads; use stage pretrain")

    # ------------------------------------------------------------------ interface
    @abc.abstractmethod
    def encode(self, batch) -> tuple[Tensor, Tensor]:
        """Node tokens ``(N, D)`` and pooled per-event embedding ``(B, D)``."""

    @abc.abstractmethod
    def loss(self, batch, stage: Stage) -> tuple[Tensor, dict[str, float]]:
        """Scalar training loss for ``stage`` and a dict of floats to log."""

    @abc.abstractmethod
    def predict(self, batch) -> dict[str, Tensor]:
        """Per-event outputs in physical units (see module docstring)."""

    @torch.jit.unused
    def forward(self, batch, stage: Stage) -> tuple[Tensor, dict[str, float]]:
        """Same as :meth:`loss` (so DDP sees the call that uses the parameters). Not compiled
        by TorchScript: an exported model runs the model's ``forward_padded``."""
        return self.loss(batch, stage)

    def encoder_modules(self) -> dict[str, nn.Module]:
        """Encoders by name (``masked_gt``, ``edgeconv``); empty if the model has none."""
        return {}

    def after_optimizer_step(self, step: int, total_steps: int) -> None:
        """Called by the training engine after every optimizer step (``step`` counts from 1 up to
        ``total_steps`` of the run): models that keep state outside the optimizer, such as an EMA
        teacher (``masked_gt_latent``), update it here. Does nothing by default."""

    def explain(self, batch) -> dict[str, Any]:
        """At least ``pooled`` (B, D); task-head models add ``attention``."""
        with torch.no_grad():
            return {"pooled": self.encode(batch)[1]}

    # ------------------------------------------------------------------ freezing
    def freeze_encoders(self, names: Iterable[str] | None = None) -> list[str]:
        """Stop training the named encoders (all by default).

        Their parameters stop requiring gradients and the modules stay in eval mode
        (BatchNorm statistics and dropout frozen too), so their weights and buffers stay
        bit-identical however long the rest trains. Returns the names frozen.
        """
        encoders = self.encoder_modules()
        names = list(encoders) if names is None else list(names)
        for n in names:
            if n not in encoders:
                raise ConfigError(f"freeze: model {self.name!r} has no encoder {n!r}; it has {', '.join(encoders) or 'none'}")
            encoders[n].requires_grad_(False)
            encoders[n].eval()
            self._frozen.add(n)
        return names

    @property
    def frozen_encoders(self) -> list[str]:
        return sorted(self._frozen)

    def hold_encoders(self, held: bool) -> None:
        """Keep every encoder in eval mode while ``held`` (``train.encoder_frozen_epochs``: their
        learning rate is 0 then, and eval mode keeps BatchNorm statistics and dropout fixed too,
        so a held encoder stays bit-identical); released, they follow the model's mode again."""
        if held != self._held:
            self._held = held
            self.train(self.training)

    def train(self, mode: bool = True) -> "GraphModel":
        super().train(mode)
        encoders = self.encoder_modules()
        for n in (encoders if self._held else self._frozen):
            encoders[n].eval()
        return self


@dataclass(frozen=True)
class EncoderSections:
    """Base of the configs of models that take registered encoders by name (``multitask``,
    :class:`OneEncoderConfig`).

    Args:
        encoder_configs: each encoder's settings by name, written in YAML as a section named
            after the encoder (``masked_gt: {...}``: the keys of
            :func:`~graphevent.nn.registry.section_class`, for ``masked_gt`` those of
            ``masked_gt_ae``; they must match between a pretraining run and the run initialised
            from it). Unset: the encoder's defaults. Sections of encoders the model does not
            use are kept, unused (configs of earlier versions carry both ``masked_gt`` and ``edgeconv``).
    """

    encoder_configs: dict[str, Any] = field(default_factory=dict)

    def to_mapping(self) -> dict[str, Any]:
        """The ``model:`` keys (without ``name``) that ``from_mapping`` reads back."""
        return mapping_with_encoder_sections(self)


@dataclass(frozen=True)
class OneEncoderConfig(EncoderSections):
    """Base of the configs of models around one registered encoder (``contrastive``, ``foldingnet_ae``).

    Args:
        encoder: which registered encoder to pretrain (``masked_gt``, ``edgeconv``,
            ``sparse_conv``, ...; ``graphevent models`` lists them). Its name is the key of
            ``encoder_modules()``, so ``--init-from`` of the run fills the same encoder of
            ``multitask``.
    """

    encoder: str = "masked_gt"

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str = "model") -> "OneEncoderConfig":
        """Strict loading of a ``model:`` mapping, with one section per registered encoder name
        (:func:`~graphevent.nn.registry.config_with_encoder_sections`; an unknown ``encoder``
        names the registered ones)."""

        def used(config: OneEncoderConfig) -> list[str]:
            if config.encoder not in list_encoders():
                raise ConfigError(f"{where}.encoder: unknown encoder {config.encoder!r}; registered encoders: {', '.join(list_encoders())}")
            return [config.encoder]

        return config_with_encoder_sections(cls, data, where, used)


class Backbone(nn.Module):
    """A registered encoder, built by name, at ``encoder`` (the state-dict keys ``encoder.*``
    every autoencoder has, so its weights move by name with ``--init-from``), with the
    dataset and settings it was built with.

    Args:
        info: the dataset's input sizes and statistics.
        name: a registered encoder (:func:`~graphevent.nn.registry.list_encoders`).
        config: its ``config_class`` instance (default settings if ``None``).

    Shapes:
        batch: x (N, F), pos (N, 2) -> encode: tokens (N, D), pooled (B, D)
    """

    def __init__(self, info: DatasetInfo, name: str, config: Any = None) -> None:
        super().__init__()
        self.encoder = build_encoder(name, info, config)
        self.info = info
        self.config = type(self.encoder).config_class() if config is None else config

    @property
    def dim(self) -> int:
        return int(self.encoder.out_dim)

    def encode(self, batch, **kwargs) -> tuple[Tensor, Tensor]:
        """The encoder's ``(tokens, pooled)`` (keyword arguments go to its ``forward``)."""
        return self.encoder(batch, **kwargs)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.encoder.encoder_name}, dim={self.dim})"


class BackbonePretrainer(GraphModel):
    """A pretraining model around one encoder, ``self.backbone`` (a :class:`Backbone`, or an
    autoencoder when the objective adds its reconstruction): it encodes with the backbone,
    lends its encoder by name (so ``--init-from`` fills the same encoder of ``multitask``),
    and predicts the pooled embedding.

    Shapes:
        batch: x (N, F), pos (N, 2) -> encode: (N, D), (B, D); predict: ``{"embedding": (B, D)}``
    """

    supports_pretrain = True
    supports_tasks = False
    not_exportable = "pretraining model: its output is an embedding for fine-tuning or probes, not a task output"
    backbone: nn.Module

    @property
    def dim(self) -> int:
        return int(self.backbone.encoder.out_dim)

    def encoder_modules(self) -> dict[str, nn.Module]:
        return {self.backbone.encoder.encoder_name: self.backbone.encoder}

    def encode(self, batch) -> tuple[Tensor, Tensor]:
        return self.backbone.encode(batch)

    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        """``embedding (B, D)``: the pooled embedding of the events as given (no masking or
        augmentation)."""
        return {"embedding": self.encode(batch)[1]}


class AutoencoderModel(GraphModel):
    """A pretraining model that composes a registered encoder with a decoder.

    The encoder (a registered encoder module, :func:`~graphevent.nn.registry.register_encoder`)
    is ``encoder`` (state-dict keys ``encoder.*``), the decoder ``decoder``;
    ``encoder_modules()`` names the encoder by its registered name, so ``--init-from`` of the
    run fills the same encoder of ``multitask``. A class that sets ``reconstructs`` to an
    encoder's name is that encoder's own autoencoder: ``multitask``'s auxiliary
    reconstruction (``aux_recon_weight``) builds it from the encoder's section.

    * ``encode(batch)`` -> ``(tokens (N, D), pooled (B, D))`` (the encoder's);
    * ``decode(tokens, pooled, batch)`` -> the decoder's raw output (model specific);
    * ``recon_loss(batch, target=None)`` -> scalar reconstruction loss; ``target`` (N, F)
      replaces ``batch.x`` as what is reconstructed;
    * ``reconstruct(batch)`` -> :class:`~graphevent.nn.reconstruction.Reconstruction`
      (points in dataset units; ``.to_images(...)`` bins them).
    """

    #: the registered encoder this autoencoder belongs to (``""``: it takes any, by name)
    reconstructs: ClassVar[str] = ""
    #: the terms of ``recon_terms(batch, target)`` summed into the reconstruction loss (and
    #: logged), each with the config field that weighs it (``None``: weight 1); empty: the
    #: model computes ``recon_loss`` itself, logged as ``recon`` alone
    recon_weights: ClassVar[dict[str, str | None]] = {}
    supports_pretrain = True
    not_exportable = "pretraining autoencoder: its output is a reconstruction error, not a task output"
    encoder: nn.Module
    decoder: nn.Module

    @property
    def dim(self) -> int:
        return int(self.encoder.out_dim)

    def encoder_modules(self) -> dict[str, nn.Module]:
        return {self.encoder.encoder_name: self.encoder}

    def encode(self, batch) -> tuple[Tensor, Tensor]:
        return self.encoder(batch)

    @abc.abstractmethod
    def decode(self, tokens: Tensor, pooled: Tensor, batch) -> Any:
        """The decoder's output from the encoder's tokens and pooled embedding."""

    def recon_loss(self, batch, target: Tensor | None = None) -> Tensor:
        """Scalar reconstruction loss of ``batch`` (of ``target`` instead of ``batch.x`` if given);
        by default the weighted sum of the model's ``recon_terms`` (:attr:`recon_weights`)."""
        return self.weighted_terms(self.recon_terms(batch, target))

    def weighted_terms(self, terms: dict[str, Tensor]) -> Tensor:
        """``sum(weight * term)`` over :attr:`recon_weights`, in their order."""
        parts = [terms[n] if w is None else getattr(self.config, w) * terms[n] for n, w in self.recon_weights.items()]
        return functools.reduce(operator.add, parts)

    @abc.abstractmethod
    def reconstruct(self, batch):
        """The reconstructed events as a :class:`~graphevent.nn.reconstruction.Reconstruction`."""

    def loss(self, batch, stage: Stage = "pretrain") -> tuple[Tensor, dict[str, float]]:
        """:meth:`recon_loss`, logged as ``recon`` and, with :attr:`recon_weights`, each term."""
        self.check_stage(stage)
        if not self.recon_weights:
            loss = self.recon_loss(batch)
            return loss, {"recon": float(loss.detach())}
        terms = self.recon_terms(batch)
        loss = self.weighted_terms(terms)
        logs = torch.stack([loss.detach(), *(terms[n].detach() for n in self.recon_weights)]).tolist()
        return loss, dict(zip(("recon", *self.recon_weights), logs))


class SupervisedModel(GraphModel):
    """A supervised model with one head per task on a pooled embedding (ParticleNet, ResNet-15).

    Subclasses define ``forward_features(batch) -> (tokens, pooled (B, D))``, ``heads`` (a
    ``ModuleDict`` by task name) and ``taskset``; this class gives the timm-style
    ``forward_heads``, the encoder view ``encode``, the task ``loss`` and ``predict``.
    """

    def forward_heads(self, pooled: Tensor) -> dict[str, Tensor]:
        """Raw task outputs: logits (B, C) or standardised regression values (B,)."""
        out = {}
        for t in self.taskset.tasks:
            y = self.heads[t.name](pooled)
            out[t.name] = self.taskset.head_output(t, y)
        return out

    def encode(self, batch) -> tuple[Tensor, Tensor]:
        return self.forward_features(batch)

    def loss(self, batch, stage: Stage = "supervised") -> tuple[Tensor, dict[str, float]]:
        self.check_stage(stage)
        losses = self.taskset.losses(self.forward_heads(self.forward_features(batch)[1]), batch)
        total = self.taskset.total(losses)
        values = torch.stack([total.detach(), *(v.detach() for v in losses.values())]).tolist()
        return total, dict(zip(["loss", *(f"loss_{n}" for n in losses)], values))

    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        return self.taskset.predict(self.forward_heads(self.forward_features(batch)[1]))
