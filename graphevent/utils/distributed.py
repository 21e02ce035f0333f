"""Process groups and launching, on top of ``torch.distributed`` and its elastic launcher.

Three ways a training worker starts:

* **single process** (``--gpus 0/1``, ``--nproc 1``): in the calling process, no process
  group; :func:`init_distributed` returns a context with ``world_size=1``.
* **self-launched** (``--gpus N``, ``--nproc N``, ``--nnodes``): :func:`launch_elastic`
  starts an elastic agent (``torch.distributed.launcher.api.elastic_launch``, the engine
  behind ``torchrun``) that spawns ``python -m graphevent.train.worker SPEC`` once per
  GPU/CPU slot and restarts the whole group up to ``max_restarts`` times when one dies.
* **external launcher**: when ``torchrun`` (``WORLD_SIZE``/``RANK``/``LOCAL_RANK``) or
  SLURM ``srun`` (``SLURM_PROCID``/``SLURM_NTASKS``/``SLURM_LOCALID``) already started one
  process per slot, the worker runs in-process and joins their group (``env://``).

NCCL is used for GPUs, gloo for CPUs. Workers find their rank, device and restart count
in :class:`DistContext`.
"""

from __future__ import annotations

import os
import re
import socket
import sys
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist

from graphevent.errors import DeviceError, RunError


@dataclass(frozen=True)
class DistContext:
    """Where this worker sits in the data-parallel group.

    Args:
        rank, world_size, local_rank: global rank, number of workers, rank on this node.
        device: this worker's device (``cuda:<local_rank>`` or ``cpu``).
        backend: ``nccl``/``gloo`` when a process group is initialised, ``None`` otherwise.
        launcher: ``single``, ``elastic`` (self-launched or torchrun) or ``slurm``.
        restart_count: how many times the elastic launcher restarted this group.
    """

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")
    backend: str | None = None
    launcher: str = "single"
    restart_count: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.backend is not None


def _int_env(env: Mapping[str, str], key: str) -> int:
    try:
        return int(env[key])
    except ValueError:
        raise DeviceError(f"environment variable {key}={env[key]!r}: expected an integer") from None


def first_slurm_host(nodelist: str) -> str:
    """First host of a SLURM node list: ``"gpu[03-05,9],cpu1"`` -> ``"gpu03"``."""
    m = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise DeviceError(f"SLURM_JOB_NODELIST={nodelist!r}: cannot read the first host name")
    prefix, ranges = m.group(1), m.group(2)
    if not ranges:
        return prefix
    return prefix + ranges.split(",")[0].split("-")[0]


def launcher_env(env: Mapping[str, str] | None = None) -> dict[str, Any] | None:
    """Rank layout set by an external launcher, or ``None`` when started directly.

    torchrun/torchelastic variables win over SLURM's (``srun torchrun ...`` sets both).
    For SLURM, ``MASTER_ADDR`` defaults to the job's first node and ``MASTER_PORT`` to
    ``29500 + job id % 1000`` unless set.
    """
    env = os.environ if env is None else env
    if all(k in env for k in ("WORLD_SIZE", "RANK", "LOCAL_RANK")):
        return {
            "launcher": "elastic",
            "world_size": _int_env(env, "WORLD_SIZE"),
            "rank": _int_env(env, "RANK"),
            "local_rank": _int_env(env, "LOCAL_RANK"),
            "restart_count": int(env.get("TORCHELASTIC_RESTART_COUNT", "0") or 0),
            "master": None,
        }
    ntasks_key = "SLURM_STEP_NUM_TASKS" if "SLURM_STEP_NUM_TASKS" in env else "SLURM_NTASKS"
    if all(k in env for k in ("SLURM_PROCID", ntasks_key, "SLURM_LOCALID")):
        world = _int_env(env, ntasks_key)
        if world <= 1:
            return None
        addr = env.get("MASTER_ADDR") or first_slurm_host(env.get("SLURM_JOB_NODELIST", "") or "localhost")
        port = env.get("MASTER_PORT") or str(29500 + int(env.get("SLURM_JOB_ID", "0") or 0) % 1000)
        return {
            "launcher": "slurm",
            "world_size": world,
            "rank": _int_env(env, "SLURM_PROCID"),
            "local_rank": _int_env(env, "SLURM_LOCALID"),
            "restart_count": int(env.get("SLURM_RESTART_COUNT", "0") or 0),
            "master": (addr, port),
        }
    return None


def check_gpus(requested: int) -> None:
    """Raise :class:`DeviceError` unless ``requested`` CUDA devices are visible."""
    available = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if requested > available:
        raise DeviceError(
            f"--gpus {requested}: only {available} CUDA device{'s' if available != 1 else ''} visible "
            f"(torch {torch.__version__}); use --gpus 0 --nproc N to train on CPU"
        )


def init_distributed(use_cuda: bool, timeout_s: float = 1800.0, env: Mapping[str, str] | None = None) -> DistContext:
    """Join the launcher's process group (or stay single-process) and pick this worker's device.

    Args:
        use_cuda: train on ``cuda:<local_rank>`` with NCCL; otherwise CPU with gloo.
        timeout_s: collective timeout.
        env: environment to read (default ``os.environ``).
    """
    layout = launcher_env(env)
    if use_cuda:
        check_gpus(1)
    if layout is None or layout["world_size"] == 1:
        device = torch.device("cuda", 0 if layout is None else layout["local_rank"]) if use_cuda else torch.device("cpu")
        if use_cuda:
            torch.cuda.set_device(device)
        return DistContext(device=device, restart_count=0 if layout is None else layout["restart_count"])
    if use_cuda:
        check_gpus(layout["local_rank"] + 1)
        device = torch.device("cuda", layout["local_rank"])
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    backend = "nccl" if use_cuda else "gloo"
    if layout["master"] is not None:
        os.environ.setdefault("MASTER_ADDR", layout["master"][0])
        os.environ.setdefault("MASTER_PORT", layout["master"][1])
    kwargs: dict[str, Any] = {}
    if use_cuda:
        kwargs["device_id"] = device
    env_now = os.environ if env is None else env
    if env_now.get("TORCHELASTIC_USE_AGENT_STORE") == "True":
        # The elastic agent keeps one TCPStore for all restart rounds and workers do not
        # prefix their keys per round, so a restarted group could read the previous
        # round's (dead) gloo/NCCL addresses. Give every round its own key space.
        store = dist.TCPStore(
            env_now["MASTER_ADDR"], int(env_now["MASTER_PORT"]), layout["world_size"], is_master=False,
            timeout=timedelta(seconds=timeout_s),
        )
        kwargs["store"] = dist.PrefixStore(f"/graphevent/attempt_{layout['restart_count']}", store)
    else:
        kwargs["init_method"] = "env://"
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            rank=layout["rank"],
            world_size=layout["world_size"],
            timeout=timedelta(seconds=timeout_s),
            **kwargs,
        )
    return DistContext(
        rank=layout["rank"],
        world_size=layout["world_size"],
        local_rank=layout["local_rank"],
        device=device,
        backend=backend,
        launcher=layout["launcher"],
        restart_count=layout["restart_count"],
    )


def shutdown(ctx: DistContext, sync: bool = True) -> None:
    """Leave the process group (no-op for a single process).

    With ``sync`` every rank first waits for the others (e.g. rank 0 writing its last
    checkpoint), so no rank tears down its connections while a peer still uses them;
    on the error path (``sync=False``) the process leaves at once.
    """
    if ctx.distributed and dist.is_initialized():
        if sync:
            barrier(ctx)
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.distributed:
        if ctx.backend == "nccl":
            dist.barrier(device_ids=[ctx.device.index])
        else:
            dist.barrier()


def all_reduce_sum(values: torch.Tensor, ctx: DistContext) -> torch.Tensor:
    """Sum a float64 tensor over all workers (returns a CPU tensor)."""
    if not ctx.distributed:
        return values.detach().cpu()
    t = values.detach().to(ctx.device, torch.float64)
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t.cpu()


def all_gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every worker's ``obj`` (pickled between our own processes only), in rank order."""
    if not ctx.distributed:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def broadcast_object(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's ``obj`` on every worker."""
    if not ctx.distributed:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def free_port() -> int:
    """A TCP port that is free on this machine right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def launch_elastic(
    worker_args: list[str],
    nproc_per_node: int,
    log_dir: Path,
    nnodes: int = 1,
    node_rank: int = 0,
    master_addr: str | None = None,
    master_port: int | None = None,
    max_restarts: int = 0,
    omp_threads: int | None = None,
) -> None:
    """Run ``python -m graphevent.train.worker *worker_args`` on ``nproc_per_node`` slots.

    Single node: c10d rendezvous on a free local port. Several nodes: static rendezvous at
    ``master_addr:master_port`` with this node's ``node_rank`` (the same settings as
    ``torchrun --nnodes N --node-rank R --master-addr A --master-port P``). The launcher
    restarts the whole group up to ``max_restarts`` times when a worker fails; workers
    resume from their run's ``last.pt``.

    Raises:
        RunError: a worker failed for good (the message names its rank and exit code).
    """
    from torch.distributed.elastic.multiprocessing import DefaultLogsSpecs
    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    if nnodes > 1:
        if not master_addr:
            raise DeviceError(f"--nnodes {nnodes}: --master-addr is required (the address of node 0)")
        backend, endpoint, rdzv_conf = "static", f"{master_addr}:{master_port or 29500}", {"rank": node_rank}
    else:
        backend, endpoint, rdzv_conf = "c10d", f"localhost:{free_port()}", {}
    if omp_threads is not None:
        os.environ.setdefault("OMP_NUM_THREADS", str(omp_threads))
    log_dir.mkdir(parents=True, exist_ok=True)
    config = LaunchConfig(
        min_nodes=nnodes,
        max_nodes=nnodes,
        nproc_per_node=nproc_per_node,
        run_id=os.environ.get("GRAPHEVENT_RUN_ID") or uuid.uuid4().hex[:12],
        rdzv_backend=backend,
        rdzv_endpoint=endpoint,
        rdzv_configs=rdzv_conf,
        max_restarts=max_restarts,
        monitor_interval=0.2,
        start_method="spawn",
        logs_specs=DefaultLogsSpecs(log_dir=str(log_dir)),
    )
    try:
        elastic_launch(config, entrypoint=sys.executable)("-u", "-m", "graphevent.train.worker", *worker_args)
    except ChildFailedError as exc:
        rank, failure = min(exc.failures.items())
        raise RunError(
            f"training worker rank {rank} failed with exit code {failure.exitcode} "
            f"after {max_restarts} restart{'s' if max_restarts != 1 else ''}; see its log under {log_dir}"
        ) from None
