"""Submanifold sparse convolution: a k x k convolution evaluated only at the active sites."""

from __future__ import annotations

from typing import Literal

import torch
from torch import Tensor

from graphevent.nn.layers.sparse_kernel import SparseKernel
from graphevent.nn.layers.sparse_lattice import SparseLattice
from graphevent.nn.precision import autocast_dtype


class SubmanifoldConv2d(SparseKernel):
    r"""Submanifold sparse 2-D convolution (Graham & van der Maaten, arXiv:1706.01307).

    .. math::
        \mathbf{y}_u = \mathbf{b} + \sum_{\delta \in \{-p..p\}^2,\ u + \delta\ \text{active}}
        W_\delta^\top \mathbf{x}_{u + \delta},\qquad p = \lfloor k / 2 \rfloor

    One weight matrix per kernel offset; outputs exist only at the input's active sites, so
    sparsity does not dilate with depth. At those sites this equals a dense
    ``conv2d(padding=k // 2)`` of the image that is zero outside the active sites. The
    neighbour table comes from the :class:`SparseLattice` (built once per level, shared by
    every layer there).

    Two ways to compute the same sum (equal up to rounding):

    * ``rules`` (default): the centre offset's product over all sites plus, for the other
      ``k*k - 1`` offsets, one batched product over the active neighbour pairs only (the rule
      book of SparseConvNet, :meth:`SparseLattice.rules`, padded to one length per offset),
      added into the output sites with one ``index_add``; backward is the same products
      transposed (a custom autograd function; backward: 4 products, a gather, an ``index_add``). Work
      proportional to the active pairs; one more host sync per lattice to size the rule book;
    * ``gather``: gather all ``k * k`` neighbour rows of every site (zeros where no site is)
      and one ``(S, k*k*C_in) x (k*k*C_in, C_out)`` product: no further host sync (the
      neighbour table itself takes one per lattice, :meth:`SparseLattice.neighbours`), but the work of a
      dense neighbourhood (3x the multiplications of ``rules`` where a third of the neighbours
      are active; speeds measured in ``docs/models.md``).

    Args:
        in_channels: ``C_in``.
        out_channels: ``C_out``.
        kernel_size: odd ``k`` (default 3).
        bias: add a learned bias (default ``True``).
        algorithm: ``rules`` or ``gather`` (default ``rules``).

    Shapes:
        x: (S, C_in) features of the lattice's sites, lattice: S sites -> (S, C_out)
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int = 3,
        bias: bool = True,
        algorithm: Literal["gather", "rules"] = "rules",
    ) -> None:
        if kernel_size < 1 or kernel_size % 2 == 0:
            raise ValueError(f"kernel_size: {kernel_size}; expected an odd size >= 1")
        if algorithm not in ("gather", "rules"):
            raise ValueError(f"algorithm: {algorithm!r}; expected 'gather' or 'rules'")
        k2 = kernel_size * kernel_size
        super().__init__(in_channels, out_channels, (k2, in_channels, out_channels), in_channels * k2, bias)
        self.algorithm = algorithm
        self.kernel_size = kernel_size

    def forward(self, x: Tensor, lattice: SparseLattice) -> Tensor:
        if self.algorithm == "rules":
            return self._forward_rules(x, lattice)
        nbr = lattice.neighbours(self.kernel_size)  # (S, k * k), S = "no site"
        padded = torch.cat([x, x.new_zeros(1, x.size(1))])
        gathered = padded.index_select(0, nbr.view(-1)).view(nbr.size(0), nbr.size(1) * x.size(1))  # (S, k * k * C_in)
        out = gathered @ self.weight.to(x.dtype).flatten(0, 1)
        return self.add_bias(out)

    def _forward_rules(self, x: Tensor, lattice: SparseLattice) -> Tensor:
        book = lattice.rules(self.kernel_size)
        dtype = autocast_dtype(x.device.type) or x.dtype  # as autocast would run the products
        out = _RuleBookConv.apply(x.to(dtype), self.weight.to(dtype), book.in_site, book.out_site)
        return self.add_bias(out)

    def __repr__(self) -> str:
        extra = "" if self.algorithm == "rules" else f", algorithm={self.algorithm!r}"
        return f"{self.__class__.__name__}({self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}{extra})"


class _RuleBookConv(torch.autograd.Function):
    """``out = x @ W_centre`` plus, for the other offsets, one batched product over the rule
    book's pairs added into the output sites (padded pairs read a zero row, so site 0, where
    they point, gets exact zeros from them). Backward: the input gradient through the
    transposed weights, the same way round (gather at the output sites, add at the input
    sites), and the weight gradients from the saved gathered inputs.

    Shapes:
        x: (S, C_in), weight: (k * k, C_in, C_out), in_site, out_site: (k * k - 1, P) -> (S, C_out)
    """

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, in_site: Tensor, out_site: Tensor) -> Tensor:
        c = weight.size(0) // 2
        w_other = torch.cat([weight[:c], weight[c + 1:]])  # (M, C_in, C_out)
        m, length = in_site.shape
        padded = torch.cat([x, x.new_zeros(1, x.size(1))])  # row S: zeros for padded pairs
        x_pairs = padded.index_select(0, in_site.view(-1)).view(m, length, x.size(1))
        out = x @ weight[c]
        if m and length:
            out.index_add_(0, out_site.view(-1), torch.bmm(x_pairs, w_other).view(-1, weight.size(2)))
        ctx.save_for_backward(x, x_pairs, weight, in_site, out_site)
        return out

    @staticmethod
    @torch.autograd.function.once_differentiable
    def backward(ctx, grad_out: Tensor):
        x, x_pairs, weight, in_site, out_site = ctx.saved_tensors
        c = weight.size(0) // 2
        m, length = in_site.shape
        grad_out = grad_out.contiguous()
        grad_pairs = grad_out.index_select(0, out_site.view(-1)).view(m, length, grad_out.size(1))
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            w_other = torch.cat([weight[:c], weight[c + 1:]])
            grad_x = x.new_empty(x.size(0) + 1, x.size(1))  # row S collects the padded pairs
            torch.mm(grad_out, weight[c].T, out=grad_x[:-1])
            grad_x[-1] = 0
            if m and length:
                grad_x.index_add_(0, in_site.view(-1), torch.bmm(grad_pairs, w_other.transpose(1, 2)).view(-1, x.size(1)))
            grad_x = grad_x[:-1]
        if ctx.needs_input_grad[1]:
            # padded pairs read the zero row, so their (nonzero) output gradients add nothing here
            g_other = torch.bmm(x_pairs.transpose(1, 2), grad_pairs)
            grad_w = torch.cat([g_other[:c], (x.T @ grad_out)[None], g_other[c:]])
        return grad_x, grad_w, None, None
