"""Mixed precision with few casts: a module's parameters cast to the compute dtype once per forward.

Under ``torch.autocast`` every matrix product casts its weight, its bias and (if needed) its
input to bf16, and the backward pass casts each of their gradients back: four to six extra
operators per ``Linear``, each one kernel launch on a GPU. On CUDA, autocast also runs
``layer_norm``, ``softmax``, ``sum``, ``exp`` ... in fp32, so activations go fp32 -> bf16 ->
fp32 around every norm. For a model made of many small layers (the graph transformer,
the task pools) those casts outnumber the useful kernels' savings.

:func:`cast_parameters_once` makes a region of code explicit instead: all floating
parameters of a module are cast with one ``cat`` and one cast (their gradients come back
through one cast and one ``cat``-backward), autocast is switched off inside, and the code
casts its inputs once at the region's entry. Inside, every operator gets tensors of the
compute dtype; kernels that reduce (matrix products, ``layer_norm``, ``softmax``, ``sum``)
accumulate in fp32 internally on CPU and CUDA alike, and the code asks for fp32 explicitly
where a result needs it (attention over many keys, means over the nodes of an event). The
operator count inside the region is the same on every device.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
from torch import nn
from torch.nn.utils.stateless import _reparametrize_module


def autocast_dtype(device_type: str) -> torch.dtype | None:
    """The autocast dtype active for ``device_type`` (``"cpu"``, ``"cuda"``), or ``None``."""
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def at_least_float32(x: torch.Tensor) -> torch.Tensor:
    """``x`` in float32 if it is in a lower precision (bf16, fp16), else unchanged (float64 stays)."""
    return x.float() if x.is_floating_point() and x.dtype.itemsize < 4 else x


@contextlib.contextmanager
def cast_parameters_once(
    module: nn.Module, device_type: str, exclude: Sequence[str] = (), keep: tuple[type[nn.Module], ...] = ()
) -> Iterator[torch.dtype]:
    """Run a block of ``module``'s forward in the autocast dtype, its parameters cast once.

    With autocast enabled for ``device_type``: the floating parameters of ``module`` (except
    those under the submodule names in ``exclude``) are replaced, for the duration of the
    block, by copies in the autocast dtype made by one ``cat`` and one cast, and autocast is
    disabled. Without autocast nothing changes. Yields the compute dtype: the autocast
    dtype, else the dtype of ``module``'s first floating parameter (so a block nested in
    another one, where autocast is already off and parameters already cast, runs in the
    outer block's dtype). The block casts its floating inputs to that dtype (``x.to(dtype)``,
    free when it already has it) and its outputs come out in it.

    Parameters of submodules of the types in ``keep`` are not cast either: e.g.
    ``nn.BatchNorm1d``, whose kernels take bf16 inputs with fp32 scale, shift and statistics
    (as under autocast). Gradients flow to the original parameters as under autocast (bf16
    gradients cast back to the parameters' dtype). Buffers (normalisation statistics) are not cast.

    Example::

        def forward(self, x):
            with cast_parameters_once(self, x.device.type) as dtype:
                return self.net(x.to(dtype))
    """
    dtype = autocast_dtype(device_type)
    if dtype is None:
        first = next((p for p in module.parameters() if p.is_floating_point()), None)
        yield torch.get_default_dtype() if first is None else first.dtype
        return
    kept = [name for name, m in module.named_modules() if keep and isinstance(m, keep)]
    prefixes = tuple(f"{name}." if name else "" for name in (*exclude, *kept))
    params = {n: p for n, p in module.named_parameters() if p.is_floating_point() and p.dtype != dtype
              and not n.startswith(prefixes)}
    cast: dict[str, torch.Tensor] = {}
    if params:
        flat = torch.cat([p.reshape(-1) for p in params.values()]).to(dtype)
        parts = flat.split([p.numel() for p in params.values()])
        cast = {n: part.view(p.shape) for (n, p), part in zip(params.items(), parts)}
    with torch.autocast(device_type, enabled=False), _reparametrize_module(module, cast):
        yield dtype
