"""Active sites of sparse images on a pixel lattice, with a hash of (event, row, col)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

# A site's key packs (event, row, col) into one int64: 21 bits each, rows and columns
# shifted by 2**20 so that negative ones (a lattice centred on zero) and a kernel's offsets
# never carry into the next field.
_BITS = 21
_SHIFT = 1 << (_BITS - 1)
_MASK = (1 << _BITS) - 1
# the dense neighbour table is used while it has at most this many entries per site (or in all)
_TABLE_PER_SITE = 64
_TABLE_MIN = 1 << 20


def pack_keys(event: Tensor, row: Tensor, col: Tensor) -> Tensor:
    """int64 key of each ``(event, row, col)``; keys sort as events, then rows, then columns.

    Rows and columns must lie in ``(-2**20 + 16, 2**20 - 16)`` and events in ``[0, 2**21)``.
    """
    return (event.long() << (2 * _BITS)) | ((row.long() + _SHIFT) << _BITS) | (col.long() + _SHIFT)


def unpack_keys(keys: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``(event, row, col)`` of packed keys (inverse of :func:`pack_keys`)."""
    return keys >> (2 * _BITS), ((keys >> _BITS) & _MASK) - _SHIFT, (keys & _MASK) - _SHIFT


@dataclass(frozen=True)
class RuleBook:
    """Active neighbour pairs of a lattice per kernel offset, centre offset left out.

    Row ``m`` holds the pairs of offset ``offsets[m]``: output site ``out_site[m, i]`` reads
    input site ``in_site[m, i]``. Rows are padded to one length ``P`` (the longest offset's
    pair count) with ``in_site = S`` (a zero row appended to the input) and ``out_site = 0``
    (which then receives exact zeros). Pairs are symmetric: offset ``d`` has as many as ``-d``.

    Shapes:
        offsets: (M,) with M = k * k - 1; in_site, out_site: (M, P)
    """

    offsets: Tensor
    in_site: Tensor
    out_site: Tensor


class SparseLattice:
    r"""The active sites of a batch of sparse images at one resolution, and their neighbours.

    Sites are kept as sorted, unique int64 keys of ``(event, row, col)``
    (:func:`pack_keys`); the site at ``(event, row + dr, col + dc)`` is found in a dense
    table of site indices over the lattice's bounding box, or by a ``torch.searchsorted`` of
    the shifted key where that box is large (:meth:`find`): the hash of submanifold sparse
    convolution (Graham & van der Maaten, arXiv:1706.01307). Neighbour tables and rule books
    (per kernel size) and coarser lattices (per stride) are computed once and cached on the
    lattice, so every layer at one level reuses them, forward and backward.

    Build it with :meth:`from_coords` (input sites; several points in one pixel become one
    site) or :meth:`coarsen`.

    With ``col_period`` (columns ``0 .. col_period - 1``; a full detector's phi), columns
    wrap: the neighbour of column ``col_period - 1`` at offset +1 is column 0, so a
    convolution continues across the seam; coarser lattices wrap at ``col_period / stride``.

    Args:
        keys: (S,) sorted unique int64 site keys.
        col_period: columns per turn where they wrap; 0 (default): no wrap.

    Shapes:
        keys: (S,); event, row, col: (S,); neighbours(k): (S, k * k)
    """

    def __init__(self, keys: Tensor, col_period: int = 0) -> None:
        self.keys = keys
        self.col_period = int(col_period)
        self.event, self.row, self.col = unpack_keys(keys)
        self._neighbours: dict[int, Tensor] = {}
        self._rules: dict[int, RuleBook] = {}
        self._coarse: dict[int, tuple[SparseLattice, Tensor, Tensor]] = {}
        self._bounds: tuple[int, int, int, int, int] | None = None

    @classmethod
    def from_coords(cls, event: Tensor, row: Tensor, col: Tensor, col_period: int = 0) -> tuple["SparseLattice", Tensor]:
        """Lattice of the distinct ``(event, row, col)`` and, per input point, its site index
        (with ``col_period``, columns are taken modulo it).

        Shapes:
            event, row, col: (N,) -> lattice with S <= N sites, site (N,)
        """
        if col_period:
            col = torch.remainder(col, col_period)
        keys, site = torch.unique(pack_keys(event, row, col), sorted=True, return_inverse=True)
        return cls(keys, col_period), site

    @property
    def num_sites(self) -> int:
        return self.keys.numel()

    def find(self, query: Tensor) -> Tensor:
        """Site index of each query key, or ``num_sites`` where no site has that key."""
        s = self.keys.numel()
        if s == 0:
            return torch.zeros_like(query)
        idx = torch.searchsorted(self.keys, query).clamp(max=s - 1)
        return torch.where(self.keys[idx] == query, idx, s)

    def neighbours(self, kernel_size: int) -> Tensor:
        """``(S, k * k)`` index of the site at each kernel offset, ``S`` where inactive.

        Offset ``i * k + j`` is ``(row + i - k // 2, col + j - k // 2)``, the order of
        ``torch.nn.functional.conv2d``'s weight ``[..., i, j]`` (cross-correlation).

        Looked up in a dense table of site indices over the lattice's bounding box (one
        host sync for the bounds; 5-7x faster than the sorted-key search on CPU), or, when
        that box is large next to the number of sites, by :meth:`find`.
        """
        if kernel_size not in self._neighbours:
            p = kernel_size // 2
            d = torch.arange(kernel_size, device=self.keys.device) - p
            s = self.num_sites
            if self.col_period:  # columns wrap: look the wrapped keys up
                r = (self.row[:, None] + d[None, :])[:, :, None].expand(s, kernel_size, kernel_size)
                c = torch.remainder(self.col[:, None] + d[None, :], self.col_period)[:, None, :].expand(s, kernel_size, kernel_size)
                query = pack_keys(self.event[:, None, None].expand(s, kernel_size, kernel_size), r, c).view(s, -1)
                self._neighbours[kernel_size] = self.find(query)
                return self._neighbours[kernel_size]
            events, r0, r1, c0, c1 = self.bounds()
            h, w = r1 - r0 + 1 + 2 * p, c1 - c0 + 1 + 2 * p  # the box with a margin of p: no bounds checks
            if s and (events + 1) * h * w <= max(_TABLE_MIN, _TABLE_PER_SITE * s):
                flat = (self.event * h + self.row - (r0 - p)) * w + self.col - (c0 - p)
                table = self.keys.new_full(((events + 1) * h * w,), s)
                table[flat] = torch.arange(s, device=self.keys.device)
                shift = (d[:, None] * w + d[None, :]).view(-1)  # (k * k,), row-major offsets
                self._neighbours[kernel_size] = table[flat[:, None] + shift[None, :]]
            else:
                shift = ((d[:, None] << _BITS) + d[None, :]).view(-1)
                self._neighbours[kernel_size] = self.find(self.keys[:, None] + shift[None, :])
        return self._neighbours[kernel_size]

    def bounds(self) -> tuple[int, int, int, int, int]:
        """``(last event, min row, max row, min col, max col)`` of the sites (zeros without sites).

        One host sync, none for a lattice made by :meth:`coarsen` (it gets the finer bounds
        floor-divided by the stride).
        """
        if self._bounds is None:
            if self.num_sites:
                self._bounds = tuple(torch.stack([self.event[-1], self.row.min(), self.row.max(), self.col.min(), self.col.max()]).tolist())
            else:
                self._bounds = (0, 0, 0, 0, 0)
        return self._bounds

    def rules(self, kernel_size: int) -> "RuleBook":
        """The active neighbour pairs per kernel offset (the "rule book" of SparseConvNet), centre
        offset left out, padded to one length so that all offsets multiply in one batched product.

        One host sync per lattice and kernel size (the longest offset's pair count).
        """
        if kernel_size not in self._rules:
            nbr = self.neighbours(kernel_size)
            s, kk = nbr.shape
            c = kk // 2
            others = torch.cat([torch.arange(c), torch.arange(c + 1, kk)]).to(nbr.device)
            src = nbr[:, others]  # (S, M)
            active = src < s
            m = others.numel()
            length = int(active.sum(0).max()) if s and m else 0
            # pair (site u, offset m) goes to slot m * length + (rank of u among m's active sites);
            # inactive ones to a spare slot past the end
            rank = active.cumsum(0) - 1
            slot = torch.where(active, torch.arange(m, device=nbr.device) * length + rank, m * length).view(-1)
            site = torch.arange(s, device=nbr.device)[:, None].expand(s, m).reshape(-1)
            in_site = nbr.new_full((m * length + 1,), s).scatter_(0, slot, src.reshape(-1))[:-1]
            out_site = nbr.new_zeros(m * length + 1).scatter_(0, slot, site)[:-1]
            self._rules[kernel_size] = RuleBook(others, in_site.view(m, length), out_site.view(m, length))
        return self._rules[kernel_size]

    def coarsen(self, stride: int) -> tuple["SparseLattice", Tensor, Tensor]:
        """The lattice of ``(event, floor(row / s), floor(col / s))`` and, per site, its parent
        site and its offset ``(row mod s) * s + (col mod s)`` inside the parent.

        Shapes:
            -> coarse lattice (S_c sites), parent (S,), offset (S,)
        """
        if stride not in self._coarse:
            r = torch.div(self.row, stride, rounding_mode="floor")
            c = torch.div(self.col, stride, rounding_mode="floor")
            coarse, parent = SparseLattice.from_coords(self.event, r, c, self.col_period // stride)
            events, *box = self.bounds()
            coarse._bounds = (events, *(b // stride for b in box))  # floor division keeps min and max
            offset = (self.row - r * stride) * stride + (self.col - c * stride)
            self._coarse[stride] = (coarse, parent, offset)
        return self._coarse[stride]

    def children_keys(self, stride: int) -> Tensor:
        """Keys of all ``s * s`` finer sites under each site: ``(S, s * s)``, offsets as in :meth:`coarsen`."""
        d = torch.arange(stride, device=self.keys.device)
        r = self.row[:, None, None] * stride + d[None, :, None]
        c = self.col[:, None, None] * stride + d[None, None, :]
        return pack_keys(self.event[:, None, None].expand_as(r + c), r.expand_as(r + c), c.expand_as(r + c)).flatten(1)

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}(num_sites={self.num_sites})"
