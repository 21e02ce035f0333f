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
padded form with :func:`register_padded`; ask :func:`exportable_models` which can export.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor, nn

from graphevent.errors import ConfigError
from graphevent.nn.layers.dense_knn import DenseEdgeConv, dense_knn

_PADDED: dict[str, Callable[[nn.Module], nn.Module]] = {}

#: why the other registered models have no padded form (shown by the export error and README)
NOT_EXPORTABLE = {
    "masked_gt_ae": "pretraining autoencoder: its output is a reconstruction error with random masking, not a task output",
    "edgeconv_ae": "pretraining autoencoder: its output is a reconstruction error (Chamfer matching), not a task output",
    "sparse_conv_ae": "pretraining autoencoder: its output is a reconstruction error, not a task output",
    "contrastive": "pretraining model: its output is an embedding for fine-tuning or probes, not a task output",
    "masked_gt_latent": "pretraining model: its output is an embedding for fine-tuning or probes, not a task output",
    "masked_gt_occupancy": "pretraining model: its output is an embedding for fine-tuning or probes, not a task output",
    "resnet15": "its image is rebuilt from the graph batch's node positions; the padded form (the same scatter from (B, N) arrays) is not written yet",
    "multitask": "its encoders (masked graph transformer, EdgeConv) and attention pooling have no padded form yet",
}


def register_padded(name: str):
    """Class decorator: ``cls(model)`` is the padded form of registered model ``name``."""

    def wrap(cls):
        _PADDED[name] = cls
        return cls

    return wrap


def exportable_models() -> list[str]:
    return sorted(_PADDED)


def padded_module(model: nn.Module) -> nn.Module:
    """The padded-input form of a trained model, in eval mode (see module docstring).

    Raises:
        ConfigError: the model has no padded form (names the ones that have and why not).
    """
    name = getattr(model, "name", type(model).__name__)
    if name not in _PADDED:
        why = NOT_EXPORTABLE.get(name, "no padded form registered")
        raise ConfigError(f"model {name!r} cannot be exported ({why}); exportable models: {', '.join(exportable_models())}")
    return _PADDED[name](model).eval()


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
        self.pos_scale = float(model.config.pos_scale)
        self.norm = model.norm
        self.blocks = nn.ModuleList([DenseEdgeConv(b) for b in model.blocks])
        self.outputs, self.output_names = task_outputs(model)

    def forward(self, features: Tensor, positions: Tensor, mask: Tensor) -> list[Tensor]:
        h = torch.cat([self.norm(features), positions / self.pos_scale], dim=-1)
        idx, valid = dense_knn(positions, mask, self.k, True, self.onnx)
        first = True
        for block in self.blocks:
            if not first:
                idx, valid = dense_knn(h, mask, self.k, False, self.onnx)
            h = block(h, idx, valid)
            first = False
        w = mask.to(h.dtype)[..., None]
        pooled = (h * w).sum(1) / w.sum(1).clamp(min=1.0)
        return [out(pooled) for out in self.outputs]


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
