"""Where evaluation runs: one device, or one device per process under ``torchrun``/``srun``.

Single process: ``--device auto`` picks ``cuda`` when available, else ``cpu``.
Several processes (started by ``torchrun --nproc_per_node N -m graphevent.cli.app eval ...``
or SLURM ``srun``): every process joins the group through
:func:`graphevent.utils.distributed.init_distributed` (NCCL on GPUs, gloo on CPUs),
evaluates every N-th event, torchmetrics synchronises the metric states, per-event arrays
are gathered, and rank 0 alone writes the outputs.
"""

from __future__ import annotations

import torch

from graphevent.errors import DeviceError


def resolve_device(spec: str) -> torch.device:
    """``auto`` / ``cpu`` / ``cuda`` / ``cuda:N`` -> a device that exists.

    Raises:
        DeviceError: CUDA requested but not available, or index out of range.
    """
    if spec == "auto":
        return torch.device("cuda") if torch.cuda.is_available() else torch.device("cpu")
    if spec == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError(f"--device {spec}: CUDA is not available (torch {torch.__version__}); use --device cpu")
    device = torch.device(spec)
    if device.index is not None and device.index >= torch.cuda.device_count():
        raise DeviceError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) visible")
    return device


def eval_context(spec: str):
    """A :class:`~graphevent.utils.distributed.DistContext` for evaluation, and whether this
    call created the process group (the caller then shuts it down).

    Under an external launcher (``torchrun``, ``srun``) joins its process group; otherwise
    a single-process context on :func:`resolve_device`'s device.
    """
    import torch.distributed as dist

    from graphevent.utils.distributed import DistContext, init_distributed, launcher_env

    layout = launcher_env()
    if layout is None or layout["world_size"] == 1:
        return DistContext(device=resolve_device(spec)), False
    use_cuda = spec != "cpu" and (spec != "auto" or torch.cuda.is_available())
    existed = dist.is_available() and dist.is_initialized()
    return init_distributed(use_cuda), not existed
