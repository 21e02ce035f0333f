"""Wall-clock timing for the benchmark scripts: the fastest of several calls."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def best_of(fn: Callable[[], Any], repeat: int, warm_up: bool = False, sync: Callable[[], Any] | None = None) -> float:
    """Seconds of the fastest of ``repeat`` calls of ``fn``.

    Args:
        warm_up: call ``fn`` once, untimed, first (page cache, allocator, first-run planning).
        sync: called before and after each timed call (``torch.cuda.synchronize`` for GPU work).
    """
    if warm_up:
        fn()
    times = []
    for _ in range(repeat):
        if sync is not None:
            sync()
        t = time.perf_counter()
        fn()
        if sync is not None:
            sync()
        times.append(time.perf_counter() - t)
    return min(times)
