"""Jet observables computed from an event's nodes (multiplicity, girth, pT_D, mass).

They are the targets of the embedding probes (:mod:`graphevent.evaluate.probes`): how much
of each a frozen encoder's pooled embedding holds linearly.

Each node's weight ``w_i`` is the sum of its channel values in physical units (the node
features with the dataset's per-channel ``log1p`` and ``scale`` undone; for the ML4SCI
quark/gluon images: track pT + ECAL + HCAL energy, GeV). Signed channels (impact
parameters, times) are left out of the weight. With (eta, phi) relative to the event
centre:

==============  =====================================================================
observable      definition
==============  =====================================================================
multiplicity    number of nodes ``n``
girth           ``sum_i w_i dR_i / sum_i w_i``, ``dR_i`` the (eta, phi) distance to the
                ``w``-weighted centroid (the jet axis)
ptd             ``sqrt(sum_i w_i^2) / sum_i w_i``
mass            invariant mass of massless nodes with ``pT = w_i`` at ``(eta_i, phi_i)``
==============  =====================================================================

Girth, pT_D and multiplicity do not depend on the scale of ``w``; the mass does
(linearly): the weight is an energy proxy for pT, exact at the jet's eta = 0.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor
from torch_geometric.utils import scatter

from graphevent.errors import DataError

OBSERVABLES = ("multiplicity", "girth", "ptd", "mass")


def channel_specs(manifest: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Per node feature: ``{"name", "transform", "scale", "signed"}`` from a dataset's manifest.

    Raises:
        DataError: the manifest has no channel list matching ``node_features``.
    """
    names = list(manifest.get("node_features", []))
    channels = {c["name"]: c for c in (manifest.get("config") or {}).get("channels", [])}
    out = []
    for n in names:
        c = channels.get(n)
        if c is None:
            raise DataError(
                f"manifest.json: node feature {n!r} has no entry in config.channels "
                f"(found {sorted(channels)}); observables need each channel's transform and scale"
            )
        out.append({"name": n, "transform": c.get("transform", "none"), "scale": float(c.get("scale", 1.0)),
                    "signed": bool(c.get("signed", False))})
    return out


def node_weights(x: Tensor, channels: Sequence[Mapping[str, Any]]) -> Tensor:
    """Each node's summed unsigned channel values in physical units (see module docstring).

    Shapes:
        x: (N, F) -> (N,)
    """
    if x.size(1) != len(channels):
        raise DataError(f"node features: {x.size(1)} columns but {len(channels)} channel specs")
    w = torch.zeros(x.size(0), dtype=torch.float64, device=x.device)
    for j, c in enumerate(channels):
        if c["signed"]:
            continue
        v = x[:, j].double()
        if c["transform"] == "log1p":
            v = torch.expm1(v)
        w = w + v / c["scale"]
    return w.clamp(min=0.0)


def jet_observables(pos: Tensor, weight: Tensor, batch: Tensor, num_events: int) -> dict[str, Tensor]:
    """Per-event observables of the module table (float64).

    Args:
        pos: (eta, phi) of each node.
        weight: non-negative node weights ``w`` (pT proxy).
        batch: event index of each node.
        num_events: ``B``.

    Shapes:
        pos: (N, 2), weight: (N,), batch: (N,) -> ``{name: (B,)}``
    """
    w = weight.double()
    pos = pos.double()
    n = scatter(torch.ones_like(w), batch, 0, dim_size=num_events, reduce="sum")
    sw = scatter(w, batch, 0, dim_size=num_events, reduce="sum")
    safe = sw.clamp(min=1e-30)
    axis = scatter(w[:, None] * pos, batch, 0, dim_size=num_events, reduce="sum") / safe[:, None]
    dr = (pos - axis[batch]).norm(dim=1)
    girth = scatter(w * dr, batch, 0, dim_size=num_events, reduce="sum") / safe
    ptd = scatter(w * w, batch, 0, dim_size=num_events, reduce="sum").sqrt() / safe
    eta, phi = pos[:, 0], pos[:, 1]
    four = torch.stack([w * torch.cosh(eta), w * torch.sinh(eta), w * torch.cos(phi), w * torch.sin(phi)], 1)
    e, pz, px, py = scatter(four, batch, 0, dim_size=num_events, reduce="sum").unbind(1)
    mass = (e * e - pz * pz - px * px - py * py).clamp(min=0.0).sqrt()
    return {"multiplicity": n, "girth": girth, "ptd": ptd, "mass": mass}
