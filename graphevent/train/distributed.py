"""Process groups live in :mod:`graphevent.utils.distributed` (evaluation joins them
without importing training); this name keeps ``graphevent.train.distributed`` imports working."""

from graphevent.utils.distributed import (  # noqa: F401  (re-exported)
    DistContext,
    all_gather_objects,
    all_reduce_sum,
    barrier,
    broadcast_object,
    check_gpus,
    first_slurm_host,
    free_port,
    init_distributed,
    launch_elastic,
    launcher_env,
    shutdown,
)
