"""Sparse convolutions against dense torch convolutions of the same images masked to the active sites."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from graphevent.data.transforms.image_to_points import ImageToPoints
from graphevent.nn.layers.pixels import dense_images, pixel_coords
from graphevent.nn.layers.sparse_conv_transpose import SparseConvTranspose2d
from graphevent.nn.layers.sparse_lattice import SparseLattice, pack_keys, unpack_keys
from graphevent.nn.layers.sparse_res_block import SparseResBlock
from graphevent.nn.layers.sparse_strided_conv import SparseStridedConv2d
from graphevent.nn.layers.submanifold_conv import SubmanifoldConv2d

B, C, H, W = 2, 3, 10, 12


def _sparse_images(seed: int = 0, density: float = 0.3):
    """Float64 images zero outside a random set of active pixels, and their lattice + site values."""
    g = torch.Generator().manual_seed(seed)
    mask = torch.rand(B, H, W, generator=g) < density
    img = torch.randn(B, C, H, W, generator=g, dtype=torch.float64) * mask[:, None]
    ev, row, col = mask.nonzero(as_tuple=True)
    lattice, site = SparseLattice.from_coords(ev, row, col)
    x = torch.zeros(lattice.num_sites, C, dtype=torch.float64).index_copy(0, site, img[ev, :, row, col])
    return img, mask, lattice, x


def _at_sites(dense: torch.Tensor, lattice: SparseLattice) -> torch.Tensor:
    return dense[lattice.event, :, lattice.row, lattice.col]


def test_keys_round_trip_and_sort_as_event_row_col():
    ev, row, col = torch.tensor([0, 0, 1, 1]), torch.tensor([-3, 2, 0, 0]), torch.tensor([5, -1, -7, 4])
    keys = pack_keys(ev, row, col)
    assert [t.tolist() for t in unpack_keys(keys)] == [ev.tolist(), row.tolist(), col.tolist()]
    assert torch.equal(torch.sort(keys).indices, torch.arange(4))
    lattice, site = SparseLattice.from_coords(torch.tensor([1, 0, 1]), torch.tensor([2, 2, 2]), torch.tensor([3, 3, 3]))
    assert lattice.num_sites == 2 and site.tolist() == [1, 0, 1]  # two points in one pixel share a site


@pytest.mark.parametrize("algorithm", ["gather", "rules"])
@pytest.mark.parametrize("kernel_size", [1, 3, 5])
def test_submanifold_conv_equals_masked_dense_conv2d_outputs_and_gradients(kernel_size, algorithm):
    torch.manual_seed(1)
    img, mask, lattice, x = _sparse_images()
    conv = SubmanifoldConv2d(C, 4, kernel_size, algorithm=algorithm).double()
    x.requires_grad_(True)
    out = conv(x, lattice)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()

    w_dense = conv.weight.detach().view(kernel_size, kernel_size, C, 4).permute(3, 2, 0, 1).clone().requires_grad_(True)
    b_dense = conv.bias.detach().clone().requires_grad_(True)
    img_in = img.clone().requires_grad_(True)
    dense = F.conv2d(img_in, w_dense, b_dense, padding=kernel_size // 2)
    ref = _at_sites(dense, lattice)
    (ref * grad_out).sum().backward()

    assert out.shape == (lattice.num_sites, 4)
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(x.grad, _at_sites(img_in.grad, lattice), rtol=0, atol=1e-12)
    w_grad = conv.weight.grad.view(kernel_size, kernel_size, C, 4).permute(3, 2, 0, 1)
    torch.testing.assert_close(w_grad, w_dense.grad, rtol=0, atol=1e-12)
    torch.testing.assert_close(conv.bias.grad, b_dense.grad, rtol=0, atol=1e-12)
    # the dense gradient outside the active sites is what submanifold convolution leaves out
    outside = img_in.grad[~mask[:, None].expand_as(img_in)]
    assert (outside != 0).any() == (kernel_size > 1)


def test_strided_sparse_conv_equals_dense_strided_conv_at_the_coarse_sites():
    torch.manual_seed(2)
    img, mask, lattice, x = _sparse_images(seed=3)
    conv = SparseStridedConv2d(C, 5, stride=2).double()
    x.requires_grad_(True)
    out, coarse = conv(x, lattice)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()

    w_dense = conv.weight.detach().view(2, 2, C, 5).permute(3, 2, 0, 1).clone().requires_grad_(True)
    img_in = img.clone().requires_grad_(True)
    dense = F.conv2d(img_in, w_dense, conv.bias.detach(), stride=2)
    ref = _at_sites(dense, coarse)
    (ref * grad_out).sum().backward()

    # coarse sites = the 2x2 cells holding an active pixel
    cells = F.max_pool2d(mask[:, None].double(), 2)[:, 0].bool()
    assert coarse.num_sites == int(cells.sum())
    assert cells[coarse.event, coarse.row, coarse.col].all()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(x.grad, _at_sites(img_in.grad, lattice), rtol=0, atol=1e-12)
    torch.testing.assert_close(conv.weight.grad.view(2, 2, C, 5).permute(3, 2, 0, 1), w_dense.grad, rtol=0, atol=1e-12)


def test_coarsening_floors_negative_rows_and_columns():
    lattice, _ = SparseLattice.from_coords(torch.zeros(4, dtype=torch.long), torch.tensor([-3, -2, -1, 1]), torch.tensor([-1, 0, 3, 2]))
    coarse, parent, offset = lattice.coarsen(2)
    assert coarse.row[parent].tolist() == [-2, -1, -1, 0] and coarse.col[parent].tolist() == [-1, 0, 1, 1]
    assert offset.tolist() == [3, 0, 3, 2]
    # the bounds the coarse lattice inherits (no host sync) are its sites' bounds
    r, c = coarse.row, coarse.col
    assert coarse.bounds() == (0, int(r.min()), int(r.max()), int(c.min()), int(c.max())) == (0, -2, 0, -1, 1)


def test_sparse_transposed_conv_equals_dense_conv_transpose2d_at_fine_and_child_sites():
    torch.manual_seed(4)
    img, mask, lattice, _ = _sparse_images(seed=5)
    coarse, parent, offset = lattice.coarsen(2)
    xc = torch.randn(coarse.num_sites, C, dtype=torch.float64, requires_grad=True)
    up = SparseConvTranspose2d(C, 4, stride=2).double()
    out = up(xc, coarse, parent, offset)
    grad_out = torch.randn_like(out)
    (out * grad_out).sum().backward()

    coarse_img = torch.zeros(B, C, H // 2, W // 2, dtype=torch.float64)
    coarse_img[coarse.event, :, coarse.row, coarse.col] = xc.detach()
    coarse_img.requires_grad_(True)
    w_dense = up.weight.detach().view(C, 2, 2, 4).permute(0, 3, 1, 2).clone().requires_grad_(True)
    dense = F.conv_transpose2d(coarse_img, w_dense, up.bias.detach(), stride=2)
    ref = _at_sites(dense, lattice)
    (ref * grad_out).sum().backward()
    torch.testing.assert_close(out, ref, rtol=0, atol=1e-12)
    torch.testing.assert_close(xc.grad, _at_sites(coarse_img.grad, coarse), rtol=0, atol=1e-12)
    torch.testing.assert_close(up.weight.grad.view(C, 2, 2, 4).permute(0, 3, 1, 2), w_dense.grad, rtol=0, atol=1e-12)

    # all children of every coarse site, in children_keys order
    children = up(xc.detach(), coarse)
    ev, row, col = unpack_keys(coarse.children_keys(2).view(-1))
    torch.testing.assert_close(children, dense.detach()[ev, :, row, col], rtol=0, atol=1e-12)
    assert torch.equal(torch.sort(lattice.find(lattice.keys)).values, torch.arange(lattice.num_sites))


@pytest.mark.parametrize("algorithm", ["gather", "rules"])
def test_residual_block_equals_its_dense_counterpart_in_eval_mode(algorithm):
    torch.manual_seed(6)
    img, mask, lattice, x = _sparse_images(seed=7)
    block = SparseResBlock(C, 3, algorithm=algorithm).double().eval()
    for bn in (block.bn1, block.bn2):
        bn.running_mean.uniform_(-0.5, 0.5)
        bn.running_var.uniform_(0.5, 2.0)
    out = block(x, lattice)

    def dense_conv(conv, t):
        w = conv.weight.view(3, 3, C, C).permute(3, 2, 0, 1)
        return F.conv2d(t, w, padding=1) * mask[:, None]  # the next layer sees only active sites

    def bn(layer, t):
        return F.batch_norm(t, layer.running_mean, layer.running_var, layer.weight, layer.bias, False, 0.0, layer.eps)

    h = torch.relu(bn(block.bn1, dense_conv(block.conv1, img))) * mask[:, None]
    ref = torch.relu(img + bn(block.bn2, dense_conv(block.conv2, h)))
    torch.testing.assert_close(out, _at_sites(ref, lattice), rtol=0, atol=1e-12)
    # training-mode batch norm: statistics over active sites only
    block.train()
    y = block.bn1(block.conv1(x, lattice))
    torch.testing.assert_close(y.mean(0), torch.zeros(C, dtype=torch.float64), rtol=0, atol=1e-12)


def _images_and_points(mode: str = "union", collapse: bool = False):
    rng = np.random.default_rng(0)
    images = (rng.random((3, 3, 15, 15)) * (rng.random((3, 3, 15, 15)) < 0.2)).astype(np.float32)
    itp = ImageToPoints([0.0, 0.0, 0.0], [1, 1, 5], (0.0174, 0.0174), mode=mode, collapse=collapse)
    return images, itp(images)


def test_pixel_coords_recover_the_rows_and_columns_of_preprocessed_pixels():
    images, chunk = _images_and_points()
    row, col = pixel_coords(torch.from_numpy(chunk.pos), (0.0174, 0.0174), (15, 15))
    ev = torch.repeat_interleave(torch.arange(3), torch.from_numpy(chunk.counts))
    assert (torch.from_numpy(images).sum(1)[ev, row, col] > 0).all()
    assert int(row.min()) >= 0 and int(row.max()) <= 14 and len(set(zip(ev.tolist(), row.tolist(), col.tolist()))) == len(ev)


def test_dense_images_rebuild_the_original_images_for_union_nodes_without_collapse():
    images, chunk = _images_and_points()
    ev = torch.repeat_interleave(torch.arange(3), torch.from_numpy(chunk.counts))
    rebuilt = dense_images(torch.from_numpy(chunk.values), torch.from_numpy(chunk.pos), ev, 3, (0.0174, 0.0174), (15, 15))
    assert rebuilt.shape == (3, 3, 15, 15)
    assert torch.equal(rebuilt, torch.from_numpy(images))


def test_dense_images_with_collapse_keep_each_cells_energy_at_its_centre():
    images, chunk = _images_and_points(collapse=True)
    ev = torch.repeat_interleave(torch.arange(3), torch.from_numpy(chunk.counts))
    rebuilt = dense_images(torch.from_numpy(chunk.values), torch.from_numpy(chunk.pos), ev, 3, (0.0174, 0.0174), (15, 15))
    ref = torch.from_numpy(images)
    assert torch.equal(rebuilt[:, :2], ref[:, :2])  # native channels exact
    cells = F.avg_pool2d(ref[:, 2:], 5) * 25  # hcal: each 5x5 cell's sum, at the cell's centre pixel
    torch.testing.assert_close(rebuilt[:, 2, 2::5, 2::5], cells[:, 0], rtol=1e-6, atol=1e-6)
    centre = torch.zeros(15, 15, dtype=torch.bool)
    centre[2::5, 2::5] = True
    assert (rebuilt[:, 2][:, ~centre] == 0).all()


def test_layers_accept_a_lattice_without_sites():
    empty = SparseLattice(torch.zeros(0, dtype=torch.long))
    x = torch.zeros(0, C)
    assert SubmanifoldConv2d(C, 4)(x, empty).shape == (0, 4)
    assert SubmanifoldConv2d(C, 4, algorithm="gather")(x, empty).shape == (0, 4)
    out, coarse = SparseStridedConv2d(C, 4)(x, empty)
    assert out.shape == (0, 4) and coarse.num_sites == 0
    assert SparseConvTranspose2d(C, 4)(x, empty).shape == (0, 4)


@pytest.mark.parametrize("spread", [1, 100_000])  # a compact box: the dense table; a huge one: the key search
def test_neighbour_table_holds_the_site_at_each_offset(spread):
    ev, row, col = torch.tensor([0, 0, 0, 1, 1]), torch.tensor([0, 1, 1, 0, 2]) * spread, torch.tensor([-1, 0, 1, 0, 1])
    lattice, _ = SparseLattice.from_coords(ev, row, col)
    nbr = lattice.neighbours(3)
    for o in range(9):
        dr, dc = o // 3 - 1, o % 3 - 1
        expected = lattice.find(pack_keys(lattice.event, lattice.row + dr, lattice.col + dc))
        assert torch.equal(nbr[:, o], expected)
    assert (nbr < lattice.num_sites).sum().item() == {1: 5 + 4, 100_000: 5 + 2}[spread]  # sites + neighbour pairs


def test_rule_books_hold_exactly_the_active_neighbour_pairs():
    _, _, lattice, _ = _sparse_images(seed=9)
    nbr, s = lattice.neighbours(3), lattice.num_sites
    book = lattice.rules(3)
    assert book.offsets.tolist() == [0, 1, 2, 3, 5, 6, 7, 8]
    counts = (nbr[:, book.offsets] < s).sum(0)
    assert book.in_site.shape == book.out_site.shape == (8, int(counts.max()))
    assert counts.tolist() == counts.flip(0).tolist()  # offset d has as many pairs as -d
    for m, o in enumerate(book.offsets.tolist()):
        active = (nbr[:, o] < s).nonzero().view(-1)
        n = active.numel()
        assert torch.equal(book.out_site[m, :n], active) and torch.equal(book.in_site[m, :n], nbr[active, o])
        assert (book.in_site[m, n:] == s).all() and (book.out_site[m, n:] == 0).all()  # padding
