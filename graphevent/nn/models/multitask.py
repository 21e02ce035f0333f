"""Multitask model: pretrained encoders, per-task attention heads, task tokens fused by cross attention."""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Optional, Tuple

import torch
from torch import Tensor, nn

from graphevent.config.base import require_at_least_one
from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector
from graphevent.nn.layers.cross_attention import CrossTaskFusion, cross_group_mask
from graphevent.nn.layers.jet_augment import JetAugment, check_augment
from graphevent.nn.layers.mlp import MLP
from graphevent.nn.layers.packing import EventPacking
from graphevent.nn.layers.task_pools import TaskPools
from graphevent.nn.models.base import Backbone, EncoderSections, GraphModel, Stage
from graphevent.nn.precision import cast_parameters_once
from graphevent.nn.registry import (
    autoencoder_for, config_with_encoder_sections, list_encoders, register_model,
)
from graphevent.nn.tasks import TaskConfig, TaskSet, check_tasks, default_tasks

# the deprecated ``encoder: masked_gt | edgeconv | both`` and the list it stands for
OLD_ENCODER_CHOICES = {"masked_gt": ("masked_gt",), "edgeconv": ("edgeconv",), "both": ("masked_gt", "edgeconv")}


@dataclass(frozen=True)
class MultiTaskConfig(EncoderSections):
    """Keyword arguments of ``multitask``: the encoders' sections
    (:class:`~graphevent.nn.models.base.EncoderSections`), and:

    Args:
        encoders: the registered encoders that feed the heads, in order (any number, e.g.
            ``[masked_gt, edgeconv, sparse_conv]``; ``graphevent models`` lists them). The
            deprecated ``encoder: masked_gt | edgeconv | both`` is still read: it is
            translated to this list (and wins over it when both are given), with a warning.
        fusion: how task tokens are merged: ``cross_attention`` (each task's tokens attend
            to the other tasks' tokens and to its tokens from the other encoder),
            ``concat`` (every head sees all task tokens, concatenated) or ``none`` (each
            head sees only its own tokens).
        freeze_encoder: keep the encoders' weights fixed (linear-probe style fine-tuning).
        dim: task token size D (encoder tokens are projected to it).
        heads: attention heads in task pooling and fusion.
        queries_per_task: learned queries (task tokens) per task and encoder.
        fusion_depth: cross-attention fusion layers.
        head_hidden: hidden width of each task's output MLP.
        dropout: dropout in the heads.
        aux_recon_weight: if > 0, each encoder sits in its own autoencoder
            (:func:`~graphevent.nn.registry.autoencoder_for`; an encoder without one is refused)
            and their reconstruction losses are added with this weight during fine-tuning.
        masked_loss_weight: if > 0, semi-supervised training in one run: each encoder sits in
            its own autoencoder and their reconstruction losses (``masked_gt``: masked-node
            reconstruction) are added with this weight on every training event, and with
            ``train.label_fraction < 1`` the whole training split is drawn, the events
            outside the labelled subset contributing only that loss (their labels are never
            read, :class:`~graphevent.data.partial_labels.PartialLabels`). Not together with
            ``aux_recon_weight`` (the same loss, on the labelled events only).
        augment_rotate: train on each event rotated by a random angle about its jet axis
            (about the detector axis where phi wraps; a new angle at every step), the
            symmetry augmentation of :class:`~graphevent.nn.layers.jet_augment.JetAugment`;
            validation, evaluation and export see the events as they are.
        augment_flip: train on each event under a random symmetry of the pixel grid about its
            centre (reflections of eta and phi, and their swap on jet crops): deposits stay on
            the lattice the model is evaluated on.
        augment_translate: std of a random (eta, phi) shift of each training event (0 = none).
        augment_smear: relative std of a random per-node energy smearing (0 = none).
        augment_split_prob: probability that a node of a training event is split collinearly
            (0 = none; it changes the node count, which quark/gluon tagging reads).
    """

    encoders: tuple[str, ...] = ("masked_gt", "edgeconv")
    fusion: Literal["cross_attention", "concat", "none"] = "cross_attention"
    freeze_encoder: bool = False
    dim: int = 64
    heads: int = 4
    queries_per_task: int = 2
    fusion_depth: int = 1
    head_hidden: int = 64
    dropout: float = 0.0
    aux_recon_weight: float = 0.0
    masked_loss_weight: float = 0.0
    augment_rotate: bool = False
    augment_flip: bool = False
    augment_translate: float = 0.0
    augment_smear: float = 0.0
    augment_split_prob: float = 0.0

    @property
    def augments(self) -> bool:
        return (self.augment_rotate or self.augment_flip or self.augment_translate > 0 or self.augment_smear > 0
                or self.augment_split_prob > 0)

    def validate(self, where: str = "model") -> None:
        if self.dim % self.heads:
            raise ConfigError(f"{where}.dim: {self.dim} is not divisible by heads={self.heads}")
        require_at_least_one(self, where, "dim", "heads", "queries_per_task", "fusion_depth", "head_hidden")
        for key in ("aux_recon_weight", "masked_loss_weight"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{where}.{key}: {getattr(self, key)}; expected >= 0")
        if self.aux_recon_weight > 0 and self.masked_loss_weight > 0:
            raise ConfigError(
                f"{where}.aux_recon_weight: {self.aux_recon_weight} with {where}.masked_loss_weight: "
                f"{self.masked_loss_weight}; expected at most one of them > 0 (masked_loss_weight also "
                "trains the reconstruction on the unlabelled events)"
            )
        check_augment(f"{where}.augment_*", self.augment_translate, self.augment_smear, self.augment_split_prob)
        if not self.encoders or len(set(self.encoders)) != len(self.encoders):
            raise ConfigError(f"{where}.encoders: {list(self.encoders)}; expected a non-empty list without repeats")

    @property
    def encoder_names(self) -> list[str]:
        return list(self.encoders)

    @classmethod
    def from_mapping(cls, data: dict[str, Any], where: str = "model") -> "MultiTaskConfig":
        """Strict loading of a ``model:`` mapping: one section per registered encoder name,
        the deprecated ``encoder`` key translated to ``encoders``."""
        encoders = list_encoders()
        data = dict(data)
        old = data.pop("encoder", None)
        if old is not None:
            if old not in OLD_ENCODER_CHOICES:
                raise ConfigError(
                    f"{where}.encoder: invalid value {old!r}; expected one of {', '.join(map(repr, OLD_ENCODER_CHOICES))} "
                    f"(deprecated: write {where}.encoders: [names], registered: {', '.join(encoders)})"
                )
            new = list(OLD_ENCODER_CHOICES[old])
            warnings.warn(
                f"{where}.encoder: {old!r} is deprecated; write {where}.encoders: [{', '.join(new)}]"
                + (f" (it replaces {where}.encoders: {data['encoders']})" if data.get("encoders") is not None else ""),
                FutureWarning,
                stacklevel=3,
            )
            data["encoders"] = new
        return config_with_encoder_sections(cls, data, where, lambda config: config.encoders)


@register_model("multitask")
class MultiTaskModel(GraphModel):
    r"""Encoder(s) + one attention head per task + cross-attention fusion of the task tokens.

    1. Each encoder of ``encoders`` (any registered encoder, e.g. ``masked_gt``:
       :class:`~graphevent.nn.encoders.masked_gt.MaskedGTEncoder`, ``edgeconv``:
       :class:`~graphevent.nn.encoders.edgeconv.EdgeConvEncoder`, ``sparse_conv``:
       :class:`~graphevent.nn.encoders.sparse_conv.SparseConvEncoder`) turns the event into node tokens and a pooled
       embedding, projected to ``dim``.
    2. Each task ``t`` has its own attention pool per encoder ``e`` (a
       :class:`TaskAttentionPool`; all of them are stored and run together as one
       :class:`TaskPools`): learned queries attend over ``[pooled, node tokens]`` of ``e``
       and give ``Q`` task tokens ``T[t, e]``.
    3. Fusion (``cross_attention``, :class:`CrossTaskFusion`): each task's tokens attend to
       the other tasks' tokens and to its own tokens from the other encoder (a learned
       embedding tells the groups apart).
    4. A small MLP per task maps its tokens (``concat``: all tasks' tokens) to its output.

    Losses are :class:`~graphevent.nn.tasks.TaskSet`'s weighted task losses (+
    ``aux_recon_weight`` times the encoders' reconstruction losses). With
    ``masked_loss_weight`` the training is semi-supervised: the task losses are the means over
    the batch's labelled events (``batch.labelled``, set by
    :class:`~graphevent.data.partial_labels.PartialLabels`; every event counts when the batch
    has no such flag, as in validation), the reconstruction losses are over all its events. Pretraining is not a
    stage of this model: pretrain the encoders (``masked_gt_ae``, ``foldingnet_ae``, ``contrastive``,
    ...) and initialise them from those runs (``--init-from``: the encoders' names and state-dict keys match).

    Args:
        info: dataset description.
        config: :class:`MultiTaskConfig`.
        tasks: task list (default: label classification and regression of every target).

    Shapes:
        batch: x (N, F), pos (N, 2), edge_index (2, E) -> forward_heads:
        ``{task: (B, num_classes) logits | (B,) standardised value}``; encode:
        (N, n_enc * dim), (B, n_enc * dim); explain()["attention"][task]: (N, heads).
    """

    config_class = MultiTaskConfig
    supports_pretrain = False
    supports_tasks = True
    __jit_unused_properties__ = [*GraphModel.__jit_unused_properties__, "trains_unlabelled"]

    def __init__(self, info: DatasetInfo, config: MultiTaskConfig | None = None, tasks: Sequence[TaskConfig] | None = None) -> None:
        super().__init__(info, config or MultiTaskConfig())
        c = self.config
        self.taskset = TaskSet(check_tasks(tasks if tasks is not None else default_tasks(info), info), info)
        names = c.encoder_names
        encoders = list_encoders()
        for n in names:
            if n not in encoders:
                raise ConfigError(f"model.encoders: unknown encoder {n!r}; registered encoders: {', '.join(encoders)}")
        recon = c.aux_recon_weight > 0 or c.masked_loss_weight > 0
        self.backbones = nn.ModuleDict({n: self._backbone(n, recon) for n in names})
        self.token_proj = nn.ModuleDict({n: nn.Linear(self.backbones[n].encoder.out_dim, c.dim) for n in names})
        self.pools = TaskPools(c.dim, c.heads, c.queries_per_task, len(self.taskset.tasks), len(names), c.dropout)
        self.register_load_state_dict_pre_hook(_stack_old_pools)
        n_groups = len(self.taskset.tasks) * len(names)
        self.num_tasks, self.concat = len(self.taskset.tasks), c.fusion == "concat"
        self.fusion: Optional[nn.Module] = None
        self.group_embed: Optional[Tensor] = None
        self.register_buffer("fusion_allowed", None, persistent=False)
        if c.fusion == "cross_attention":
            self.group_embed = nn.Parameter(torch.zeros(n_groups, c.dim))  # one per (task, encoder)
            nn.init.normal_(self.group_embed, std=0.02)
            self.fusion = CrossTaskFusion(c.dim, c.heads, c.fusion_depth, c.dropout)
            # (task, encoder) of each task token, in the order forward_heads flattens them
            groups = torch.tensor(
                [[ti, ei] for ti in range(len(self.taskset.tasks)) for ei in range(len(names)) for _ in range(c.queries_per_task)]
            )
            self.fusion_allowed = cross_group_mask(groups)
        tokens_per_task = len(names) * c.queries_per_task
        head_in = (n_groups * c.queries_per_task if c.fusion == "concat" else tokens_per_task) * c.dim
        self.heads = nn.ModuleDict(
            {
                t.name: MLP(head_in, [c.head_hidden], self.taskset.out_channels(t), dropout=c.dropout)
                for t in self.taskset.tasks
            }
        )
        self.augment: Optional[nn.Module] = None
        if c.augments:
            self.augment = JetAugment.for_dataset(
                info, rotate=c.augment_rotate, flip=c.augment_flip, translate=c.augment_translate,
                smear=c.augment_smear, split_prob=c.augment_split_prob,
            )
            if (c.augment_smear > 0 or c.augment_split_prob > 0) and not self.augment.knows_transforms:
                raise ConfigError(
                    "model.augment_smear, model.augment_split_prob: they need the dataset's channel transforms, which "
                    "its manifest does not record; set them to 0 or preprocess the data again"
                )
        if c.freeze_encoder:
            self.freeze_encoders()

    def _backbone(self, name: str, recon: bool) -> nn.Module:
        """Encoder ``name`` in a :class:`Backbone`, or, with a reconstruction loss, in its own
        autoencoder (:func:`~graphevent.nn.registry.autoencoder_for`; the encoder's keys are
        ``backbones.<name>.encoder.*`` either way)."""
        config = self.config.encoder_configs.get(name)
        if not recon:
            return Backbone(self.info, name, config)
        autoencoder = autoencoder_for(name)
        if autoencoder is None:
            key = "aux_recon_weight" if self.config.aux_recon_weight > 0 else "masked_loss_weight"
            raise ConfigError(
                f"model.{key}: encoder {name!r} has no autoencoder of its own to reconstruct with; "
                f"set model.{key}: 0 or leave {name!r} out of model.encoders"
            )
        return autoencoder(self.info, config)

    @property
    def tasks(self) -> list[TaskConfig]:
        return self.taskset.tasks

    @property
    def trains_unlabelled(self) -> bool:
        """Whether events without labels train this model (``masked_loss_weight > 0``): with a
        label fraction, training draws the whole split (see :class:`MultiTaskConfig`)."""
        return self.config.masked_loss_weight > 0

    def encoder_modules(self) -> dict[str, nn.Module]:
        return {n: bb.encoder for n, bb in self.backbones.items()}

    # ------------------------------------------------------------------ features and heads
    def forward_features(self, batch) -> dict[str, tuple[Tensor, Tensor]]:
        """Per encoder: projected node tokens ``(N, dim)`` and pooled embedding ``(B, dim)``."""
        # a frozen encoder's parameters need no gradient, so autograd records nothing there
        # (unless the input itself requires grad, as for saliency maps)
        encoded = {n: bb.encode(batch) for n, bb in self.backbones.items()}
        with cast_parameters_once(self.token_proj, batch.x.device.type) as dtype:  # all projections: one cast
            return {n: (self.token_proj[n](tokens.to(dtype)), self.token_proj[n](pooled.to(dtype)))
                    for n, (tokens, pooled) in encoded.items()}

    def forward_heads(self, features: dict[str, tuple[Tensor, Tensor]], batch, need_weights: bool = False):
        """Raw task outputs (logits (B, C) or standardised values (B,)); with
        ``need_weights`` also ``{task: {encoder: (B, heads, Q, 1 + N_max)}}`` attention."""
        # pools, fusion and heads in the compute dtype with their parameters cast once (the
        # encoders and token projections, with their own precision, are left out)
        with cast_parameters_once(self, batch.x.device.type, exclude=("backbones", "token_proj")) as dtype:
            features = {n: (tokens.to(dtype), pooled.to(dtype)) for n, (tokens, pooled) in features.items()}
            return self._forward_heads(features, batch, need_weights)

    def _forward_heads(self, features: dict[str, tuple[Tensor, Tensor]], batch, need_weights: bool):
        b, num_events = batch_vector(batch)
        packing = EventPacking.from_batch(b, num_events)  # one layout for every encoder's tokens
        mask = torch.cat([packing.mask.new_ones(num_events, 1), packing.mask], 1)  # (B, 1 + M)
        nodes = torch.stack([torch.cat([pooled[:, None], packing.pack(tokens)], 1) for tokens, pooled in features.values()])
        inputs, w = self.task_inputs(nodes, mask, need_weights)
        weights = (
            {t.name: {n: w[:, i, j] for j, n in enumerate(self.backbones)} for i, t in enumerate(self.taskset.tasks)}
            if need_weights and w is not None else {}
        )
        out = {}
        for i, t in enumerate(self.taskset.tasks):
            out[t.name] = self.taskset.head_output(t, self.heads[t.name](inputs[:, i]))
        return (out, weights) if need_weights else out

    def task_inputs(self, nodes: Tensor, node_mask: Tensor, need_weights: bool = False) -> Tuple[Tensor, Optional[Tensor]]:
        """Each task head's input from every encoder's tokens: the task pools, the fusion of the
        task tokens, :func:`head_inputs`; in training and in the exported model. Also the pools'
        attention with ``need_weights``.

        Shapes:
            nodes: (E, B, 1 + M, D) (each encoder's pooled token, then its node tokens),
            node_mask: (B, 1 + M) -> (B, T, head_in), attention (B, T, E, heads, Q, 1 + M) or None
        """
        tokens, w = self.pools(nodes, node_mask, need_weights)  # (B, T, E, Q, D): every task's pool over every encoder
        group_embed, allowed = self.group_embed, self.fusion_allowed
        if self.fusion is not None and group_embed is not None and allowed is not None:
            tokens = self.fusion(grouped_tokens(tokens, group_embed), allowed)
        else:
            tokens = tokens.flatten(1, 3)  # (B, n_tasks * n_enc * Q, D), task-major
        return head_inputs(tokens, self.num_tasks, self.concat), w

    # ------------------------------------------------------------------ GraphModel
    def encode(self, batch) -> tuple[Tensor, Tensor]:
        feats = self.forward_features(batch)
        return torch.cat([f[0] for f in feats.values()], -1), torch.cat([f[1] for f in feats.values()], -1)

    def loss(self, batch, stage: Stage = "finetune") -> tuple[Tensor, dict[str, float]]:
        self.check_stage(stage)
        if self.training and self.augment is not None:
            batch = self.augment.view(batch)
        rows = batch.labelled.view(-1) if self.trains_unlabelled and "labelled" in batch else None
        losses = self.taskset.losses(self.forward_heads(self.forward_features(batch), batch), batch, rows)
        total = self.taskset.total(losses)
        names = [f"loss_{n}" for n in losses]
        parts = list(losses.values())
        recon_weight = self.config.aux_recon_weight or self.config.masked_loss_weight
        if recon_weight > 0:
            for n, bb in self.backbones.items():
                recon = bb.recon_loss(batch)
                total = total + recon_weight * recon
                names.append(f"recon_{n}")
                parts.append(recon)
        values = torch.stack([total.detach(), *(v.detach().float() for v in parts)]).tolist()
        return total, dict(zip(["loss", *names], values))

    @torch.no_grad()
    def predict(self, batch) -> dict[str, Tensor]:
        return self.taskset.predict(self.forward_heads(self.forward_features(batch), batch))

    @torch.no_grad()
    def explain(self, batch) -> dict[str, Any]:
        """``attention[task]``: (N, heads) attention of the task's queries on each node,
        averaged over queries and encoders (the pooled token's share left out);
        ``pooled``: (B, n_enc * dim); ``outputs``: :meth:`predict`-style outputs."""
        b, num_events = batch_vector(batch)
        feats = self.forward_features(batch)
        raw, weights = self.forward_heads(feats, batch, need_weights=True)
        mask = EventPacking.from_batch(b, num_events).mask
        attention = {}
        for task, per_enc in weights.items():
            w = torch.stack([wt[..., 1:] for wt in per_enc.values()]).mean(dim=(0, 3))  # (B, H, N_max)
            attention[task] = w.transpose(1, 2)[mask]
        pooled = torch.cat([f[1] for f in feats.values()], -1)
        return {"attention": attention, "pooled": pooled, "outputs": self.taskset.predict(raw)}


def grouped_tokens(tokens: Tensor, group_embed: Tensor) -> Tensor:
    """The task tokens with their (task, encoder) group's embedding added (a group's ``Q``
    tokens share it), flattened task-major for the fusion: ``multitask``'s cross-attention input,
    in training and in the exported model.

    Shapes:
        tokens: (B, T, E, Q, D), group_embed: (T * E, D) -> (B, T * E * Q, D)
    """
    t, e = tokens.shape[1], tokens.shape[2]
    return (tokens + group_embed.view(t, e, 1, -1)).flatten(1, 3)


def head_inputs(tokens: Tensor, num_tasks: int, concat: bool) -> Tensor:
    """Each task head's input from the (fused) task tokens, task-major: its own tokens, or with
    ``concat`` every token; in training and in the exported model.

    Shapes:
        tokens: (B, T * E * Q, D) -> (B, T, E * Q * D) or, ``concat``, (B, T, T * E * Q * D)
    """
    b = tokens.shape[0]
    if concat:
        return tokens.flatten(1)[:, None].expand(b, num_tasks, tokens.shape[1] * tokens.shape[2])
    return tokens.reshape(b, num_tasks, -1)


def _stack_old_pools(module: MultiTaskModel, state_dict: dict[str, Tensor], prefix: str, *args) -> None:
    """Weights saved before the task pools were stacked (``pools.<task>.<encoder>.*``, one
    :class:`TaskAttentionPool` each) are converted to :class:`TaskPools` on load."""
    old = f"{prefix}pools.{module.taskset.tasks[0].name}.{next(iter(module.backbones))}.queries"
    if old not in state_dict:
        return
    per_pool = []
    for t in module.taskset.tasks:
        row = []
        for n in module.backbones:
            head = f"{prefix}pools.{t.name}.{n}."
            row.append({k[len(head):]: state_dict.pop(k) for k in [k for k in state_dict if k.startswith(head)]})
        per_pool.append(row)
    for key, value in TaskPools.stack_pool_state(per_pool).items():
        state_dict[f"{prefix}pools.{key}"] = value
