"""Pairwise physics of two deposits (ParT's interaction features) embedded into attention biases."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Tuple

import torch
from torch import Tensor, nn

from graphevent.data.info import DatasetInfo
from graphevent.errors import ConfigError
from graphevent.nn.layers.mlp import MLP
from graphevent.utils.geometry import wrap_delta

#: The pair features, in the order :func:`pair_features` returns them.
PAIR_FEATURES = ("ln_dr", "ln_kt", "ln_z", "ln_m2")
#: Floor of every quantity before its logarithm (a node with itself, a deposit without energy).
PAIR_EPS = 1e-8


def pair_features(
    pos_a: Tensor, pt_a: Tensor, pos_b: Tensor, pt_b: Tensor, eps: float = PAIR_EPS, periods: Optional[Tuple[float, float]] = None
) -> Tensor:
    r"""ParT's interaction features of pairs of massless deposits (Qu, Li, Qian, arXiv:2202.03772).

    Each deposit is a massless object at its (eta, phi) with transverse momentum ``pt``:

    .. math::
        \ln\Delta R,\quad \ln k_T = \ln(\min(p_{T,a}, p_{T,b})\,\Delta R),\quad
        \ln z = \ln\frac{\min(p_{T,a}, p_{T,b})}{p_{T,a} + p_{T,b}},\quad
        \ln m^2 = \ln\bigl(2 p_{T,a} p_{T,b} (\cosh\Delta\eta - \cos\Delta\phi)\bigr)

    with :math:`\Delta R^2 = \Delta\eta^2 + \Delta\phi^2`. Every quantity is floored at
    ``eps`` (default :data:`PAIR_EPS`) before its logarithm, so a deposit paired with itself or one without
    energy gives finite features (and finite gradients). Differences wrap along the periodic
    axes of ``periods`` (``DatasetInfo.periods``, phi on a full detector;
    :func:`graphevent.utils.geometry.wrap_delta`), as the edge geometry of the kNN graphs; jet
    crops (``None``) are not wrapped.

    Shapes:
        pos_a, pos_b: (*, 2), pt_a, pt_b: (*) broadcastable -> (*, 4) in :data:`PAIR_FEATURES` order
    """
    d = pos_b - pos_a
    if periods is not None:
        d = torch.stack([wrap_delta(d[..., 0], periods[0]), wrap_delta(d[..., 1], periods[1])], dim=-1)
    dr2 = d.square().sum(-1)
    lo = torch.minimum(pt_a, pt_b)
    ln_dr = 0.5 * torch.log(dr2.clamp(min=eps * eps))
    ln_kt = torch.log((lo * dr2.clamp(min=eps * eps).sqrt()).clamp(min=eps))
    ln_z = torch.log((lo / (pt_a + pt_b).clamp(min=eps)).clamp(min=eps))
    m2 = 2.0 * pt_a * pt_b * (torch.cosh(d[..., 0]) - torch.cos(d[..., 1]))
    ln_m2 = torch.log(m2.clamp(min=eps))
    return torch.stack([ln_dr, ln_kt, ln_z, ln_m2], dim=-1)


def deposit_pt_columns(info: DatasetInfo, names: Sequence[str] = (), where: str = "model.pair_pt_features") -> tuple[list[int], list[bool]]:
    """The node-feature columns whose values, summed, give a deposit's transverse momentum, and
    which of them are stored as ``log1p`` (to be undone).

    Args:
        info: the dataset (``node_features``, and ``feature_transforms`` / ``feature_signed``
            recorded from the data config's channels).
        names: the features to sum; empty: every unsigned channel (energies and momenta, not
            impact parameters or times).

    Raises:
        ConfigError: a name that is not a node feature, a dataset whose manifest does not
            record its channel transforms, or no feature to sum.
    """
    if not info.feature_transforms:
        raise ConfigError(
            f"{where}: the dataset does not record how its node features {info.node_features} were "
            "transformed (no channels in its manifest, e.g. per_channel node mode); pairwise attention "
            "needs datasets with one feature per channel"
        )
    if names:
        unknown = [n for n in names if n not in info.node_features]
        if unknown:
            raise ConfigError(f"{where}: {unknown} not among the node features; expected some of {info.node_features}")
        cols = [info.node_features.index(n) for n in names]
    else:
        signed = info.feature_signed or [False] * info.num_node_features
        cols = [i for i in range(info.num_node_features) if not signed[i]]
        if not cols:
            raise ConfigError(f"{where}: every node feature of {info.node_features} is signed; name the ones giving pT")
    return cols, [info.feature_transforms[c] == "log1p" for c in cols]


class DepositPT(nn.Module):
    r"""Transverse momentum of each deposit from its node features: the sum over the chosen
    columns of the stored values, ``log1p`` undone (:math:`e^x - 1`), floored at 0.

    Image datasets store energies centred on the jet; their sum stands for the deposit's pT
    (within one jet :math:`E / p_T = \cosh\eta` varies little, and only ratios and logarithms
    of it enter the pair features). Values are in the data config's ``scale`` units.

    Args:
        columns: feature columns to sum (:func:`deposit_pt_columns`).
        log1p: per column, whether it is stored as ``log1p``.

    Shapes:
        x: (*, F) raw node features (before standardisation) -> (*)
    """

    def __init__(self, columns: Sequence[int], log1p: Sequence[bool]) -> None:
        super().__init__()
        self.register_buffer("columns", torch.tensor(list(columns), dtype=torch.long), persistent=False)
        self.register_buffer("log1p", torch.tensor(list(log1p), dtype=torch.bool), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        v = x.float().index_select(-1, self.columns)
        # exp(v) - 1 rather than expm1: the same op in the eager and the exported (ONNX) graph
        return torch.where(self.log1p, torch.exp(v) - 1.0, v).sum(-1).clamp(min=0.0)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(columns={self.columns.tolist()}, log1p={self.log1p.tolist()})"


class PairBias(nn.Module):
    r"""One attention bias per head from the physics of a pair of deposits.

    :math:`U_{ab} = \mathrm{MLP}(\ln\Delta R, \ln k_T, \ln z, \ln m^2)` (:func:`pair_features`),
    a pointwise MLP as ParT's interaction embedding (Qu, Li, Qian, arXiv:2202.03772), added
    to the attention logits of query ``a`` and key ``b``. One module serves every layer of an
    encoder that uses it (as in ParT).

    Args:
        heads: attention heads (one bias each).
        hidden: hidden width of the MLP (default 32).
        act: activation class (default ``nn.GELU``).
        periods: the dataset's periodic axes (``DatasetInfo.periods``; default ``None``: none).

    Shapes:
        pos_a, pos_b: (*, 2), pt_a, pt_b: (*) broadcastable -> (*, heads)
    """

    def __init__(self, heads: int, hidden: int = 32, act: type[nn.Module] = nn.GELU,
                 periods: Optional[Tuple[float, float]] = None) -> None:
        super().__init__()
        self.heads = heads
        self.hidden = hidden
        self.periods = periods
        self.mlp = MLP(len(PAIR_FEATURES), [hidden], heads, act=act)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        self.mlp.reset_parameters()

    def forward(self, pos_a: Tensor, pt_a: Tensor, pos_b: Tensor, pt_b: Tensor, dtype: Optional[torch.dtype] = None) -> Tensor:
        """The bias of each pair; the features are computed in fp32, then cast to ``dtype``
        (the compute dtype of a :func:`~graphevent.nn.precision.cast_parameters_once` block)."""
        feats = pair_features(pos_a.float(), pt_a.float(), pos_b.float(), pt_b.float(), periods=self.periods)
        return self.mlp(feats if dtype is None else feats.to(dtype))

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({len(PAIR_FEATURES)} -> {self.heads}, hidden={self.hidden})"
