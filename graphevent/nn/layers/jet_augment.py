"""Physics augmentations of jets: the views of contrastive pretraining (JetCLR, arXiv:2108.04253)
and ``multitask``'s optional augmentation of its training events.

Each function takes the nodes of a batch of events (flat tensors with a sorted ``batch``
vector) and returns new tensors; nothing is modified in place. Values are physical
(energies, pT: the node features with the dataset's ``log1p`` undone, see
:class:`JetAugment`); positions are (eta, phi) relative to the event centre.

* :func:`rotate_about_axis`: rotation in (eta, phi) about the event's ``w``-weighted
  centroid (the jet axis) by one angle per event; keeps every node's distance to the axis.
* :func:`shift_periodic`: for whole events whose phi wraps (``DatasetInfo.periods``), one
  shift per event along each periodic axis, wrapped: a rotation of the detector, an exact
  symmetry of the event (it replaces the rotation about the jet axis there).
* :func:`flip`: one element per event of the symmetry group of a square pixel grid centred at
  the origin (reflections of eta and of phi, and the swap of the two): every deposit stays on
  its lattice, distances are kept.
* :func:`translate`: one (eta, phi) shift per event.
* :func:`smear`: each node's values times ``max(0, 1 + sigma * N(0, 1))`` (energy resolution).
* :func:`collinear_split`: chosen nodes split into two at the same position carrying
  fractions ``z`` and ``1 - z`` of the extensive values: total energy, pT and the axis kept.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch_geometric.data import Batch
from torch_geometric.utils import scatter

from graphevent.errors import ConfigError
from graphevent.nn.batch import batch_vector
from graphevent.utils.geometry import is_periodic, wrap_positions


def check_augment(where: str, translate: float, smear: float, split_prob: float) -> None:
    """Raise a ConfigError unless ``translate, smear >= 0`` and ``0 <= split_prob < 1``."""
    if translate < 0 or smear < 0 or not 0 <= split_prob < 1:
        raise ConfigError(
            f"{where}: translate and smear must be >= 0 and split_prob in [0, 1) "
            f"(found {translate}, {smear}, {split_prob})"
        )


def jet_axis(pos: Tensor, weight: Tensor, batch: Tensor, num_events: int) -> Tensor:
    """``w``-weighted (eta, phi) centroid of each event (the origin for an event of zero weight).

    Shapes:
        pos: (N, 2), weight: (N,), batch: (N,) -> (B, 2)
    """
    sw = scatter(weight, batch, 0, dim_size=num_events, reduce="sum")
    s = scatter(weight[:, None] * pos, batch, 0, dim_size=num_events, reduce="sum")
    return torch.where(sw[:, None] > 0, s / sw.clamp(min=1e-30)[:, None], torch.zeros_like(s))


def rotate_about_axis(pos: Tensor, weight: Tensor, batch: Tensor, angle: Tensor) -> Tensor:
    """Rotate each event's nodes by ``angle[event]`` about its jet axis (:func:`jet_axis`).

    Shapes:
        pos: (N, 2), weight: (N,), batch: (N,), angle: (B,) -> (N, 2)
    """
    axis = jet_axis(pos, weight, batch, angle.numel())[batch]
    c, s = torch.cos(angle)[batch], torch.sin(angle)[batch]
    d = pos - axis
    return axis + torch.stack([c * d[:, 0] - s * d[:, 1], s * d[:, 0] + c * d[:, 1]], dim=1)


def shift_periodic(pos: Tensor, batch: Tensor, fraction: Tensor, periods: Sequence[float]) -> Tensor:
    """Shift each event by ``fraction[event, axis] * period`` along each periodic axis, and
    wrap the positions back into ``[-period/2, period/2]``; other axes unchanged.

    Shapes:
        pos: (N, D), batch: (N,), fraction: (B, D) in [0, 1) -> (N, D)
    """
    period = pos.new_tensor([float(p or 0.0) for p in periods][: pos.size(-1)])
    return wrap_positions(pos + fraction[batch] * period, periods)


def flip(pos: Tensor, batch: Tensor, signs: Tensor, swap: Tensor) -> Tensor:
    """Multiply each event's positions by ``signs[event]`` (a reflection of each axis about 0
    where -1), then exchange the two axes where ``swap[event]``: with both, the 8 symmetries of
    a square centred at the origin.

    Shapes:
        pos: (N, 2), batch: (N,), signs: (B, 2) of +-1, swap: (B,) bool -> (N, 2)
    """
    pos = pos * signs[batch]
    return torch.where(swap[batch][:, None], pos.flip(-1), pos)


def translate(pos: Tensor, batch: Tensor, shift: Tensor) -> Tensor:
    """Shift each event's nodes by ``shift[event]``.

    Shapes:
        pos: (N, 2), batch: (N,), shift: (B, 2) -> (N, 2)
    """
    return pos + shift[batch]


def smear(values: Tensor, noise: Tensor, sigma: float, extensive: Tensor) -> Tensor:
    """Extensive columns times ``max(0, 1 + sigma * noise)`` per node; the others unchanged.

    Shapes:
        values: (N, F), noise: (N,), extensive: (F,) bool -> (N, F)
    """
    factor = (1.0 + sigma * noise).clamp(min=0.0)[:, None]
    return torch.where(extensive[None, :], values * factor, values)


def collinear_split(
    values: Tensor, pos: Tensor, batch: Tensor, split: Tensor, z: Tensor, extensive: Tensor
) -> tuple[Tensor, Tensor, Tensor]:
    """Split the nodes marked ``split`` into two at the same position: the original keeps
    ``z`` of its extensive values, the new node (placed right after it, so ``batch`` stays
    sorted) ``1 - z``; other columns are copied.

    Shapes:
        values: (N, F), pos: (N, 2), batch: (N,), split: (N,) bool, z: (N,), extensive: (F,) bool
        -> values (N + S, F), pos (N + S, 2), batch (N + S,)
    """
    zz = torch.where(split, z, torch.ones_like(z))[:, None]
    kept = torch.where(extensive[None, :], values * zz, values)
    idx = split.nonzero().view(-1)
    new = torch.where(extensive[None, :], values[idx] * (1.0 - z[idx])[:, None], values[idx])
    # order: each new node right after its original (stable sort on original position)
    key = torch.cat([torch.arange(values.size(0), device=values.device) * 2, idx * 2 + 1])
    order = key.argsort()
    return (torch.cat([kept, new])[order], torch.cat([pos, pos[idx]])[order], torch.cat([batch, batch[idx]])[order])


class JetAugment(nn.Module):
    """A random view of each jet: rotation about the axis, translation, smearing, collinear splits.

    Works on the node features the model sees (``x``, transformed as the dataset stores them):
    ``log1p`` columns are mapped back to physical values (``expm1``), augmented, and mapped
    again; extensive columns are the unsigned ones (energies, pT), the weights of the axis.

    Args:
        transforms: per node feature, ``log1p`` or ``none`` (``DatasetInfo.feature_transforms``).
        signed: per node feature, whether it is signed (not extensive: copied, not scaled).
        rotate: random rotation angle in [0, 2 pi) about the jet axis.
        translate: std of the (eta, phi) shift per event (0 = none).
        smear: relative std of the energy smearing per node (0 = none).
        split_prob: probability that a node is split collinearly (0 = none).
        flip: a random symmetry of the pixel grid per event about (0, 0), the image centre of
            jet crops (:func:`flip`): eta and phi each reflected with probability 1/2, and the
            two axes swapped with probability 1/2 unless an axis wraps (whole events: their eta
            and phi ranges differ, so reflections only).
        periods: the dataset's periodic axes (``DatasetInfo.periods``): there ``rotate`` is a
            random shift along each periodic axis (:func:`shift_periodic`), and translated
            positions wrap back into range.

    Shapes:
        x: (N, F), pos: (N, 2), batch: (N,) -> x (N', F), pos (N', 2), batch (N',)
    """

    def __init__(self, transforms: Sequence[str], signed: Sequence[bool] | None = None, rotate: bool = True,
                 translate: float = 0.0, smear: float = 0.0, split_prob: float = 0.0,
                 periods: Sequence[float] | None = None, flip: bool = False) -> None:
        super().__init__()
        self.transforms = list(transforms)
        signed = [False] * len(self.transforms) if signed is None else list(signed)
        self.register_buffer("log", torch.tensor([t == "log1p" for t in self.transforms]), persistent=False)
        self.register_buffer("extensive", ~torch.tensor(signed, dtype=torch.bool), persistent=False)
        self.rotate = rotate
        self.translate = float(translate)
        self.smear = float(smear)
        self.split_prob = float(split_prob)
        self.flip = bool(flip)
        self.periods = tuple(periods) if is_periodic(periods) else None
        self.knows_transforms = True

    @classmethod
    def for_dataset(cls, info, **settings) -> "JetAugment":
        """The augmentation of a dataset's events (``info``: its ``DatasetInfo``): its channel
        transforms and signs, its periodic axes, and ``settings`` (``rotate``, ``flip``, ...). A
        manifest that records no channel transforms gives ``none`` for every channel and
        ``knows_transforms = False`` (smearing and splits then need checking by the caller)."""
        f = info.num_node_features
        known = len(info.feature_transforms) == f
        augment = cls(info.feature_transforms if known else ["none"] * f,
                      info.feature_signed if len(info.feature_signed) == f else None, periods=info.periods, **settings)
        augment.knows_transforms = known
        return augment

    def to_physical(self, x: Tensor) -> Tensor:
        return torch.where(self.log[None, :], torch.expm1(x), x)

    def from_physical(self, v: Tensor) -> Tensor:
        return torch.where(self.log[None, :], torch.log1p(v.clamp(min=0.0)), v)

    def forward(self, x: Tensor, pos: Tensor, batch: Tensor, num_events: int,
                generator: torch.Generator | None = None) -> tuple[Tensor, Tensor, Tensor]:
        dev = x.device
        gdev = dev if generator is None else generator.device

        def rand(*shape):
            return torch.rand(*shape, generator=generator, device=gdev).to(dev)

        def randn(*shape):
            return torch.randn(*shape, generator=generator, device=gdev).to(dev)

        v = self.to_physical(x.float())
        weight = (v * self.extensive[None, :]).clamp(min=0.0).sum(1)
        pos = pos.float()
        if self.rotate and self.periods is not None:
            pos = shift_periodic(pos, batch, rand(num_events, pos.size(-1)), self.periods)
        elif self.rotate:
            pos = rotate_about_axis(pos, weight, batch, 2 * torch.pi * rand(num_events))
        if self.flip:
            signs = torch.where(rand(num_events, 2) < 0.5, -1.0, 1.0)
            swap = (rand(num_events) < 0.5) & (self.periods is None)
            pos = wrap_positions(flip(pos, batch, signs, swap), self.periods)
        if self.translate > 0:
            pos = wrap_positions(translate(pos, batch, self.translate * randn(num_events, 2)), self.periods)
        if self.smear > 0:
            v = smear(v, randn(v.size(0)), self.smear, self.extensive)
        if self.split_prob > 0:
            split = rand(v.size(0)) < self.split_prob
            v, pos, batch = collinear_split(v, pos, batch, split, rand(v.size(0)), self.extensive)
        return self.from_physical(v).to(x.dtype), pos.to(x.dtype), batch

    def view(self, batch, generator: torch.Generator | None = None) -> Batch:
        """An augmented copy of a PyG batch: new ``x``, ``pos``, ``batch`` and ``ptr``, the
        per-event attributes (labels, targets, ``event_id``, ...) carried over, and no graph
        (edges and other per-node attributes left out: encoders find their own kNN). The input
        batch is not modified.
        """
        b, num_events = batch_vector(batch)
        x, pos, vb = self(batch.x, batch.pos, b, num_events, generator)
        ptr = torch.zeros(num_events + 1, dtype=torch.long, device=vb.device)
        ptr[1:] = torch.bincount(vb, minlength=num_events).cumsum(0)
        skip = {"x", "pos", "batch", "ptr"}
        per_event = {key: batch[key] for key in batch.keys()
                     if key not in skip and not batch.is_node_attr(key) and not batch.is_edge_attr(key)}
        return Batch(x=x, pos=pos, batch=vb, ptr=ptr, **per_event)

    def __repr__(self) -> str:
        periods = "" if self.periods is None else f", periods={self.periods}"
        return (f"{self.__class__.__name__}(rotate={self.rotate}, flip={self.flip}, translate={self.translate}, smear={self.smear}, "
                f"split_prob={self.split_prob}{periods})")
