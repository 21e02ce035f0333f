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
extension and no data-dependent shape enters the exported graph. A model or encoder whose
one forward path runs on padded events (``forward_padded(features, positions, mask) ->
(tokens, pooled)``: ParticleNet, ResNet-15, the ``masked_gt`` and ``edgeconv`` encoders;
training pads its batch and runs the same code) exports as it is; a model that composes others
registers its form (:func:`register_padded`: ``multitask``, its encoders' own paths, then its
pools, fusion and heads). Ask :func:`exportable_models` which can export (a model without a form
says why in its own class, ``not_exportable``); ``multitask`` exports when each of its encoders
does (``sparse_conv`` does not: its ``not_exportable`` says why).

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
from torch import Tensor, nn

from graphevent.errors import ConfigError
from graphevent.nn.batch import zero_padding

_PADDED: dict[str, Callable[[nn.Module], nn.Module]] = {}

def register_padded(name: str):
    """Class decorator: ``cls(model)`` is the padded form of registered model ``name``, for a
    model that composes others (``multitask``); a model with its own ``forward_padded`` needs none."""

    def wrap(cls):
        _PADDED[name] = cls
        return cls

    return wrap


def _model_form(name: str) -> Optional[Callable[[nn.Module], nn.Module]]:
    """The padded form of registered model ``name``: its own path (:class:`PaddedModel`), a
    registered composition, or ``None``."""
    from graphevent.nn.registry import list_models

    cls = list_models().get(name)
    return PaddedModel if cls is not None and hasattr(cls, "forward_padded") else _PADDED.get(name)


def _encoder_form(name: str) -> Optional[Callable[[nn.Module], nn.Module]]:
    """The padded form of registered encoder ``name``: :class:`PaddedEncoder` on its own
    ``forward_padded``, or ``None``."""
    from graphevent.nn.registry import list_encoders

    cls = list_encoders().get(name)
    return PaddedEncoder if cls is not None and hasattr(cls, "forward_padded") else None


def exportable_models() -> list[str]:
    from graphevent.nn.registry import list_models

    return sorted(n for n in list_models() if _model_form(n) is not None)


def exportable_encoders() -> list[str]:
    from graphevent.nn.registry import list_encoders

    return sorted(n for n in list_encoders() if _encoder_form(n) is not None)


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
    form = _model_form(name)
    if form is None:
        why = getattr(model, "not_exportable", "") or "no padded form"
        raise ConfigError(f"model {name!r} cannot be exported ({why}); exportable models: {', '.join(exportable_models())}")
    return form(model).eval()


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


class PaddedModel(nn.Module):
    """A model through its own forward path on padded events (``forward_padded(features,
    positions, mask) -> (tokens, pooled)``, the code that trains: ParticleNet, ResNet-15),
    then its task heads and their output transforms.

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> [(B, C) | (B,)] per task
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.k = int(getattr(model, "k", 0))  # ResNet-15: no kNN
        self.onnx = False
        self.outputs, self.output_names = task_outputs(model)

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> list[Tensor]:
        pooled = self.model.forward_padded(features, positions, mask)[1]
        return [out(pooled) for out in self.outputs]


class PaddedEncoder(nn.Module):
    """An encoder through its own forward path on padded events (``forward_padded``, the code
    that trains: ``masked_gt``, ``edgeconv``).

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> tokens (B, N, dim), pooled (B, dim)
    """

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.encoder = backbone.encoder
        self.k = int(getattr(backbone.config, "k", 0))  # 0: no kNN
        self.onnx = False

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        return self.encoder.forward_padded(features, positions, mask)


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


@register_padded("multitask")
class PaddedMultiTask(nn.Module):
    """:class:`~graphevent.nn.models.multitask.MultiTaskModel` on padded events (modules and
    parameters shared): each encoder's own padded path and token projection, then the model's
    own :meth:`~graphevent.nn.models.multitask.MultiTaskModel.task_inputs` (task pools, fusion)
    and its task heads with their output transforms.

    Inputs at padding are set to zero first, so any values there (even NaN) are ignored.

    Raises:
        ConfigError: an encoder of the model has no padded form (names it and why).

    Shapes:
        features: (B, N, F), positions: (B, N, 2), mask: (B, N) -> [(B, C) | (B,)] per task
    """

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        forms = {name: _encoder_form(name) for name in model.backbones}
        for name, backbone in model.backbones.items():
            if forms[name] is None:
                why = backbone.encoder.not_exportable or "no padded form"
                raise ConfigError(f"model 'multitask' cannot be exported with encoder {name!r} ({why}); "
                                  f"exportable encoders: {', '.join(exportable_encoders())}")
        encoders = [forms[n](bb) for n, bb in model.backbones.items()]
        self.k = max(int(e.k) for e in encoders)  # the largest neighbourhood (the export check's sizes)
        self.onnx = False
        self.encoders = nn.ModuleList([ProjectedEncoder(e, model.token_proj[n]) for n, e in zip(model.backbones, encoders)])
        self.model = model
        self.outputs, self.output_names = task_outputs(model)

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> list[Tensor]:
        features, positions = zero_padding(features, positions, mask)
        per_encoder: list[Tensor] = []
        for enc in self.encoders:
            per_encoder.append(enc(features, positions, mask))
        node_mask = torch.cat([torch.ones_like(mask[:, :1]), mask], dim=1)
        inputs = self.model.task_inputs(torch.stack(per_encoder), node_mask, False)[0]  # (B, T, head_in)
        outs: list[Tensor] = []
        i = 0
        for out in self.outputs:
            outs.append(out(inputs[:, i]))
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
