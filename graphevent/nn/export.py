"""Padded-input forms of trained models, for export to ONNX and TorchScript.

Experiment software (CMSSW's ONNX Runtime inference, a C++ TorchScript loader) feeds fixed
arrays, not PyG graphs. :func:`padded_module` wraps a trained model into an ``nn.Module``
that takes padded node arrays and returns the task outputs of ``model.predict``:

==================  ================  ==================================================
input               shape / dtype     meaning
==================  ================  ==================================================
features            (B, N, F) float32 node features as in the dataset's ``x`` (the data
                                      config's scale/transform applied, not standardised)
positions           (B, N, 2) float32 (eta, phi) relative to the event centre (``pos``)
mask                (B, N) bool       valid nodes; padding anywhere, any N
==================  ================  ==================================================

Outputs, in task order (names in ``output_names``): ``score_<task>`` ``(B, C)`` softmax
probabilities, ``pred_<task>`` ``(B,)`` in physical units.

kNN is computed inside the module (:func:`graphevent.nn.layers.dense_knn.dense_knn`:
dense masked pairwise distances and a sort/top-k over a fixed k), so no compiled
extension and no data-dependent shape enters the exported graph. Models register their
padded form with :func:`register_padded`; ask :func:`exportable_models` which can export (a model
without one says why in its own class, ``not_exportable``). ``multitask`` exports when each of its
encoders has a padded form (:func:`register_padded_encoder`; an encoder without one says why in its
own class, ``not_exportable``).

:func:`image_module` puts the run's preprocessing in front
(:class:`~graphevent.nn.layers.image_nodes.ImageNodes`): input the raw image batch
``(B, H, W, C)`` as the reader reads it; :func:`points_module` does the same for point-form
readers (:class:`~graphevent.nn.layers.point_nodes.PointNodes`): input the reader's points,
padded, and their count per event. Both return the same outputs and ``bad_input``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Optional

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from graphevent.errors import ConfigError
from graphevent.nn.layers.dense_knn import DenseEdgeConv, dense_knn, gather_nodes
from graphevent.nn.layers.dense_transformer import DenseGraphTransformerLayer, dense_edge_geometry
from graphevent.nn.layers.pair_bias import pair_features
from graphevent.nn.layers.periodic import dense_event_frame
from graphevent.nn.layers.pixels import dense_images

_PADDED: dict[str, Callable[[nn.Module], nn.Module]] = {}
_PADDED_ENCODERS: dict[str, Callable[[nn.Module], nn.Module]] = {}

def register_padded(name: str):
    """Class decorator: ``cls(model)`` is the padded form of registered model ``name``."""

    def wrap(cls):
        _PADDED[name] = cls
        return cls

    return wrap


def register_padded_encoder(name: str):
    """Class decorator: ``cls(backbone)`` is the padded form of registered encoder ``name``
    (``backbone``: ``multitask``'s ``backbones[name]``, the encoder module at ``.encoder``, its
    settings at ``.config`` and the dataset at ``.info``). It takes ``(features, positions,
    mask)`` and returns node tokens ``(B, N, D)`` and the pooled embedding ``(B, D)``, and
    has ``k`` and ``onnx`` attributes as the padded models."""

    def wrap(cls):
        _PADDED_ENCODERS[name] = cls
        return cls

    return wrap


def exportable_models() -> list[str]:
    return sorted(_PADDED)


def exportable_encoders() -> list[str]:
    return sorted(_PADDED_ENCODERS)


def set_onnx(module: nn.Module, onnx: bool) -> None:
    """Switch every padded (sub)module's kNN to its ONNX form (see :func:`dense_knn`)."""
    for m in module.modules():
        if hasattr(m, "onnx"):
            m.onnx = onnx


def padded_module(model: nn.Module) -> nn.Module:
    """The padded-input form of a trained model, in eval mode (see module docstring).

    Raises:
        ConfigError: the model has no padded form (names the ones that have and why not).
    """
    name = getattr(model, "name", type(model).__name__)
    if name not in _PADDED:
        why = getattr(model, "not_exportable", "") or "no padded form registered"
        raise ConfigError(f"model {name!r} cannot be exported ({why}); exportable models: {', '.join(exportable_models())}")
    return _PADDED[name](model).eval()


def lattice(info) -> tuple[float, float] | None:
    """The dataset's pixel size, as the graph models' (eta, phi) kNN uses it (``None`` for
    point datasets): the exported kNN puts positions back on the pixel lattice as they do,
    so it picks the neighbours (equidistant ones included) of the dataset's stored graph."""
    return None if info.pixel_size is None else (float(info.pixel_size[0]), float(info.pixel_size[1]))


def share_geometry(padded: nn.Module, backbone: nn.Module) -> nn.Module:
    """Give a padded encoder its backbone's geometry: ``k``, ``pixel_size`` (:func:`lattice`),
    ``periods`` and ``pos_scale``, with ``onnx`` off; returns the encoder whose modules it shares."""
    enc = backbone.encoder
    padded.k = int(backbone.config.k)
    padded.onnx = False
    padded.pixel_size = lattice(backbone.info)
    padded.periods = backbone.info.periods
    padded.pos_scale = float(enc.pos_scale)
    return enc


class TaskOutput(nn.Module):
    """One task head and its output transform (softmax, or de-standardisation)."""

    def __init__(self, head: nn.Module, classification: bool, mean: float, std: float) -> None:
        super().__init__()
        self.head = head
        self.classification = classification
        self.mean = mean
        self.std = std

    def forward(self, pooled: Tensor) -> Tensor:
        y = self.head(pooled)
        if self.classification:
            return y.softmax(dim=-1)
        return y.squeeze(-1) * self.std + self.mean


def task_outputs(model: nn.Module) -> tuple[nn.ModuleList, list[str]]:
    """:class:`TaskOutput` per task of ``model.taskset`` (heads shared) and the output names."""
    taskset = model.taskset
    outs, names = [], []
    for t in taskset.tasks:
        if t.task_type.label_target:
            outs.append(TaskOutput(model.heads[t.name], True, 0.0, 1.0))
            names.append(f"score_{t.name}")
        else:
            col = taskset.target_names.index(t.target)
            outs.append(TaskOutput(model.heads[t.name], False, float(taskset.target_norm.mean[col]),
                                   float(taskset.target_norm.std[col])))
            names.append(f"pred_{t.name}")
    return nn.ModuleList(outs), names


@register_padded("particlenet")
class PaddedParticleNet(nn.Module):
    """:class:`~graphevent.nn.models.particlenet.ParticleNet` on padded events (weights shared).

    The first EdgeConv block's neighbours are the k nearest in (eta, phi) (equidistant ones
    in node order, as the flat model), later blocks' in the previous block's features.

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> [(B, C) | (B,)] per task
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.k = int(model.config.k)
        self.onnx = False  # set while exporting to ONNX (see dense_knn)
        self.pixel_size = lattice(model.info)
        self.periods = model.info.periods  # (eta, phi) periods, 0 where an axis does not wrap; None: none wraps
        self.pos_scale = float(model.config.pos_scale)
        self.norm = model.norm
        self.blocks = nn.ModuleList([DenseEdgeConv(b) for b in model.blocks])
        self.outputs, self.output_names = task_outputs(model)

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> list[Tensor]:
        features = features.masked_fill(~mask[..., None], 0.0)  # any values at padding (NaN too) are ignored
        positions = positions.masked_fill(~mask[..., None], 0.0)
        h = torch.cat([self.norm(features), dense_event_frame(positions, mask, self.periods) / self.pos_scale], dim=-1)
        idx, valid = dense_knn(positions, mask, self.k, True, self.onnx, self.pixel_size, self.periods)
        first = True
        for block in self.blocks:
            if not first:
                idx, valid = dense_knn(h, mask, self.k, False, self.onnx)
            h = block(h, idx, valid)
            first = False
        w = mask.to(h.dtype)[..., None]
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        return [out(pooled) for out in self.outputs]


@register_padded("resnet15")
class PaddedResNet15(nn.Module):
    """:class:`~graphevent.nn.models.resnet15.ResNet15` on padded events (modules shared): the
    image rebuilt inside the graph by the model's own scatter
    (:func:`~graphevent.nn.layers.pixels.dense_images`, the valid nodes of the ``B * N``
    slots; padding adds zeros), then the convolutions, the global max pool and the heads.
    No kNN (``k = 0``).

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> [(B, C) | (B,)] per task
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        if model.pixel_size is None or model.image_size is None:
            raise ConfigError("model 'resnet15' cannot be exported without an image geometry: "
                              "set model.pixel_size and model.image_size")
        self.k = 0
        self.pixel_size = (float(model.pixel_size[0]), float(model.pixel_size[1]))
        self.image_size = (int(model.image_size[0]), int(model.image_size[1]))
        self.register_buffer("inv_std", model.inv_std, persistent=False)
        self.wrap_cols = bool(model.wrap_cols)
        self.pad0, self.conv0, self.blocks = model.pad0, model.conv0, model.blocks
        self.outputs, self.output_names = task_outputs(model)

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> list[Tensor]:
        b, n, f = features.shape
        x = (features * self.inv_std).masked_fill(~mask[..., None], 0.0).reshape(b * n, f)
        pos = positions.masked_fill(~mask[..., None], 0.0).reshape(b * n, 2)
        event = torch.arange(b, device=features.device)[:, None].expand(b, n).reshape(b * n)
        image = dense_images(x, pos, event, b, self.pixel_size, self.image_size, self.wrap_cols)
        h = self.blocks(F.max_pool2d(F.relu(self.conv0(self.pad0(image))), 2))
        pooled = h.amax(dim=(2, 3))
        return [out(pooled) for out in self.outputs]


def masked_mean(h: Tensor, mask: Tensor) -> Tensor:
    """Mean over each event's valid nodes (0 for an event without any).

    Shapes:
        h: (B, N, C), mask: (B, N) -> (B, C)
    """
    w = mask.to(h.dtype)[..., None]
    return (h * w).sum(1) / w.sum(1).clamp(min=1.0)


class DensePairBiases(nn.Module):
    """:class:`~graphevent.nn.encoders.masked_gt.MaskedGTEncoder`'s pair biases (modules
    shared) on padded events: each deposit's pT, ParT's pair features of every node and its
    ``k`` neighbour slots and of every pair of slots of an event, embedded. Padded keys are
    masked where the biases are used (invalid slots,
    :func:`~graphevent.nn.layers.global_attention.key_mask`).

    Shapes:
        features: (B, N, F), positions: (B, N, 2), idx: (B, N, k) -> kNN bias (B, N, k, H),
        event-wide bias (B, H, N, N) or None (no global layer)
    """

    def __init__(self, enc: nn.Module) -> None:
        super().__init__()
        self.deposit_pt, self.local_mlp = enc.deposit_pt, enc.pair_local.mlp
        self.global_mlp: Optional[nn.Module] = enc.pair_global.mlp if enc.pair_global is not None else None
        self.periods = enc.periods

    def forward(self, features: Tensor, positions: Tensor, idx: Tensor) -> tuple[Tensor, Optional[Tensor]]:
        pt = self.deposit_pt(features)  # (B, N)
        pt_j = gather_nodes(pt[..., None], idx)[..., 0]  # (B, N, k)
        local = self.local_mlp(pair_features(positions[:, :, None], pt[:, :, None], gather_nodes(positions, idx), pt_j,
                                             periods=self.periods))
        event: Optional[Tensor] = None
        if self.global_mlp is not None:
            feats = pair_features(positions[:, :, None], pt[:, :, None], positions[:, None], pt[:, None], periods=self.periods)
            event = self.global_mlp(feats).permute(0, 3, 1, 2)
        return local, event


@register_padded_encoder("masked_gt")
class PaddedMaskedGT(nn.Module):
    """:class:`~graphevent.nn.encoders.masked_gt.MaskedGTEncoder` on padded events
    (modules shared): input standardisation and Fourier position features, the embedded
    (deta, dphi, dR) geometry of the k nearest neighbours in (eta, phi) (equidistant ones in
    node order, as the flat model), the graph-transformer layers
    (:class:`DenseGraphTransformerLayer`, with their event-wide attention and, with
    ``pairwise``, the pair biases of :class:`DensePairBiases`), the output norm and the mean
    over valid nodes.

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> tokens (B, N, dim), pooled (B, dim)
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        enc = share_geometry(self, backbone)
        self.norm, self.pos_enc, self.embed, self.edge_embed = enc.norm, enc.pos_enc, enc.embed, enc.edge_embed
        self.layers = nn.ModuleList([DenseGraphTransformerLayer(layer) for layer in enc.layers])
        self.out_norm = enc.out_norm
        self.pairs: Optional[DensePairBiases] = DensePairBiases(enc) if enc.deposit_pt is not None else None

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        idx, valid = dense_knn(positions, mask, self.k, True, self.onnx, self.pixel_size, self.periods)
        frame = dense_event_frame(positions, mask, self.periods)
        h = self.embed(torch.cat([self.norm(features), self.pos_enc(frame / self.pos_scale)], dim=-1))
        e = self.edge_embed(dense_edge_geometry(positions, idx, self.periods) / self.pos_scale)  # (B, N, k, edge_dim)
        local: Optional[Tensor] = None
        event: Optional[Tensor] = None
        if self.pairs is not None:
            local, event = self.pairs(features, positions, idx)
        for layer in self.layers:
            h = layer(h, idx, valid, e, mask, local, event)
        tokens = self.out_norm(h)
        return tokens, masked_mean(tokens, mask)


@register_padded_encoder("edgeconv")
class PaddedEdgeConvEncoder(nn.Module):
    """:class:`~graphevent.nn.encoders.edgeconv.EdgeConvEncoder` on padded events (modules
    shared): the EdgeConv blocks as :class:`PaddedParticleNet`'s (first block's neighbours in
    (eta, phi), later ones in feature space), the token layer on all blocks' outputs, and the
    latent MLP on the mean and max over valid nodes.

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> tokens (B, N, dim), pooled (B, dim)
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        enc = share_geometry(self, backbone)
        self.norm = enc.norm
        self.blocks = nn.ModuleList([DenseEdgeConv(b) for b in enc.blocks])
        self.token, self.latent = enc.token, enc.latent

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        h = torch.cat([self.norm(features), dense_event_frame(positions, mask, self.periods) / self.pos_scale], dim=-1)
        idx, valid = dense_knn(positions, mask, self.k, True, self.onnx, self.pixel_size, self.periods)
        outs: list[Tensor] = []
        first = True
        for block in self.blocks:
            if not first:
                idx, valid = dense_knn(h, mask, self.k, False, self.onnx)
            h = block(h, idx, valid)
            outs.append(h)
            first = False
        tokens = self.token(torch.cat(outs, dim=-1))
        top = tokens.masked_fill(~mask[..., None], float("-inf")).amax(dim=1)
        return tokens, self.latent(torch.cat([masked_mean(tokens, mask), top], dim=-1))


class ProjectedEncoder(nn.Module):
    """A padded encoder followed by ``multitask``'s token projection of its tokens and pooled
    embedding (the projection shared).

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> (B, 1 + N, dim): the
        pooled token first, then the node tokens (as ``MultiTaskModel._forward_heads``)
    """

    def __init__(self, encoder: nn.Module, proj: nn.Module) -> None:
        super().__init__()
        self.encoder, self.proj = encoder, proj

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> Tensor:
        tokens, pooled = self.encoder(features, positions, mask)
        return torch.cat([self.proj(pooled)[:, None], self.proj(tokens)], dim=1)


class TaskTokenFusion(nn.Module):
    """``multitask``'s cross-attention fusion (shared): group embeddings added, then
    :class:`~graphevent.nn.layers.cross_attention.CrossTaskFusion` with the model's mask.

    Shapes:
        tokens: (B, T, E, Q, D) -> (B, T * E * Q, D), task-major
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.group_embed, self.fusion = model.group_embed, model.fusion
        self.register_buffer("allowed", model.fusion_allowed, persistent=False)
        self.num_tasks, self.num_encoders = len(model.taskset.tasks), len(model.backbones)

    def forward(self, tokens: Tensor) -> Tensor:
        tokens = tokens + self.group_embed.view(self.num_tasks, self.num_encoders, 1, -1)
        return self.fusion(tokens.flatten(1, 3), self.allowed)


@register_padded("multitask")
class PaddedMultiTask(nn.Module):
    """:class:`~graphevent.nn.models.multitask.MultiTaskModel` on padded events (modules and
    parameters shared): each encoder's padded form (:func:`register_padded_encoder`) and
    token projection, the task attention pools over ``[pooled, node tokens]`` of every
    encoder, the fusion of the task tokens, and the task heads with their output transforms.

    Inputs at padding are set to zero first, so any values there (even NaN) are ignored.

    Raises:
        ConfigError: an encoder of the model has no padded form (names it and why).

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> [(B, C) | (B,)] per task
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        for name, backbone in model.backbones.items():
            if name not in _PADDED_ENCODERS:
                why = backbone.encoder.not_exportable or "no padded form registered"
                raise ConfigError(f"model 'multitask' cannot be exported with encoder {name!r} ({why}); "
                                  f"exportable encoders: {', '.join(exportable_encoders())}")
        encoders = [_PADDED_ENCODERS[n](bb) for n, bb in model.backbones.items()]
        self.k = max(int(e.k) for e in encoders)  # the largest neighbourhood (the export check's sizes)
        self.onnx = False
        self.encoders = nn.ModuleList([ProjectedEncoder(e, model.token_proj[n]) for n, e in zip(model.backbones, encoders)])
        self.pools = model.pools
        self.fuse: TaskTokenFusion | None = TaskTokenFusion(model) if model.config.fusion == "cross_attention" else None
        self.concat = model.config.fusion == "concat"
        self.num_tasks = len(model.taskset.tasks)
        self.outputs, self.output_names = task_outputs(model)

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> list[Tensor]:
        features = features.masked_fill(~mask[..., None], 0.0)
        positions = positions.masked_fill(~mask[..., None], 0.0)
        per_encoder: list[Tensor] = []
        for enc in self.encoders:
            per_encoder.append(enc(features, positions, mask))
        nodes = torch.stack(per_encoder)  # (E, B, 1 + N, D)
        node_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        tokens = self.pools(nodes, node_mask, False)[0]  # (B, T, E, Q, D)
        if self.fuse is not None:
            tokens = self.fuse(tokens)
        else:
            tokens = tokens.flatten(1, 3)
        flat = tokens.flatten(1)
        per_task = tokens.reshape(tokens.shape[0], self.num_tasks, -1)
        outs: list[Tensor] = []
        i = 0
        for out in self.outputs:
            outs.append(out(flat if self.concat else per_task[:, i]))
            i += 1
        return outs


#: the raw-input forms' extra output: 1 where an event's raw input held a non-finite value
BAD_INPUT = "bad_input"


class RawInputModel(nn.Module):
    """A padded model (:func:`padded_module`) behind a front end that makes its nodes from what
    a reader yields (:class:`ImageInputModel`, :class:`PointInputModel`). Events without a node
    get NaN outputs where preprocessing skips them (``empty_events: skip``, as ``graphevent
    predict`` writes them). A last output, ``bad_input`` (B,) int64, is 1 where the event's raw
    input held a non-finite value (read as 0: ``predict`` would refuse the file under
    ``bad_values: fail``).
    """

    def __init__(self, nodes: nn.Module, padded: nn.Module, skip_empty: bool) -> None:
        super().__init__()
        self.nodes, self.model = nodes, padded
        self.skip_empty = skip_empty
        self.k = int(padded.k)
        self.onnx = False
        self.output_names = list(padded.output_names) + [BAD_INPUT]

    def _score(self, features: Tensor, positions: Tensor, mask: Tensor, counts: Tensor, bad: Tensor) -> list[Tensor]:
        outs = self.model(features, positions, mask)
        result: list[Tensor] = []
        for o in outs:
            if self.skip_empty:
                where = (counts == 0).view([-1] + [1] * (o.dim() - 1))
                o = torch.where(where, torch.full_like(o, float("nan")), o)
            result.append(o)
        result.append(bad.to(torch.int64))
        return result


class ImageInputModel(RawInputModel):
    """The padded model on raw images: :class:`~graphevent.nn.layers.image_nodes.ImageNodes`
    (the run's preprocessing) makes its nodes.

    Shapes:
        images: (B, H, W, C) float32 (or (B, C, H, W), as the data config's layout)
        -> [(B, C) | (B,)] per task, bad_input (B,) int64
    """

    def forward(self, images: Tensor) -> list[Tensor]:
        features, positions, mask, counts = self.nodes(images)
        # x * 0 is NaN exactly where x is NaN or +-Inf, and a sum holding a NaN is NaN: two passes
        # over the images (an isfinite/all test takes five)
        bad = torch.isnan((images.float() * 0.0).flatten(1).sum(1))
        return self._score(features, positions, mask, counts, bad)


class PointInputModel(RawInputModel):
    """The padded model on a reader's points: :class:`~graphevent.nn.layers.point_nodes.PointNodes`
    (the run's preprocessing) makes its nodes.

    Shapes:
        points: (B, P, C + 2) float32, n_points: (B,) int64 -> [(B, C) | (B,)] per task, bad_input (B,) int64
    """

    def forward(self, points: Tensor, n_points: Tensor) -> list[Tensor]:
        features, positions, mask, counts, bad = self.nodes(points, n_points)
        return self._score(features, positions, mask, counts, bad)


def image_module(model: nn.Module, data_cfg) -> nn.Module:
    """The raw-image form of a trained model, in eval mode: the run's data config
    (:class:`~graphevent.config.data.DataConfig`, an image reader's) makes the nodes.

    Raises:
        ConfigError: the model has no padded form.
    """
    from graphevent.data.transforms.image_to_points import ImageToPoints
    from graphevent.nn.layers.image_nodes import ImageNodes

    padded = padded_module(model)
    nodes = ImageNodes(ImageToPoints.from_config(data_cfg), (data_cfg.image.height, data_cfg.image.width),
                       [c.scale for c in data_cfg.channels], [c.transform for c in data_cfg.channels],
                       channels_last=getattr(data_cfg.reader, "layout", "channels_last") == "channels_last")
    return ImageInputModel(nodes, padded, data_cfg.empty_events == "skip").eval()


def points_module(model: nn.Module, data_cfg) -> nn.Module:
    """The raw-points form of a trained model, in eval mode: the run's data config (a
    point-form reader's) makes the nodes.

    Raises:
        ConfigError: the model has no padded form.
    """
    from graphevent.nn.layers.point_nodes import PointNodes

    padded = padded_module(model)
    ch = data_cfg.channels
    nodes = PointNodes([c.threshold for c in ch], [c.signed for c in ch], [c.scale for c in ch],
                       [c.transform for c in ch], data_cfg.graph.max_nodes, data_cfg.periods)
    return PointInputModel(nodes, padded, data_cfg.empty_events == "skip").eval()


def pad_events(events: list, max_nodes: int | None = None) -> tuple[Tensor, Tensor, Tensor]:
    """``Data`` events -> (features (B, N, F), positions (B, N, 2), mask (B, N)), N = the
    largest event (or ``max_nodes``); padding is zeros."""
    n = max_nodes if max_nodes is not None else max(int(e.num_nodes) for e in events)
    f = events[0].x.shape[1]
    feats = torch.zeros(len(events), n, f)
    pos = torch.zeros(len(events), n, 2)
    mask = torch.zeros(len(events), n, dtype=torch.bool)
    for i, e in enumerate(events):
        m = int(e.num_nodes)
        feats[i, :m], pos[i, :m], mask[i, :m] = e.x, e.pos, True
    return feats, pos, mask
