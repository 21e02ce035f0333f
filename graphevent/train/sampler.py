"""Which events each worker trains on, in which order: sharded, seeded, resumable batches.

:class:`DistributedBatchSampler` builds the whole epoch's *plan* on every rank from the
same seed, so all ranks agree on it without communicating:

1. the epoch's event order is a permutation drawn from ``(seed, epoch)`` (or the given
   order when ``shuffle=False``); it does not depend on the number of workers;
2. the order is cut into *steps*. Each step holds one batch per rank:

   * ``max_nodes=0``: a step takes the next ``world_size * batch_size`` events and gives
     rank ``r`` the ``r``-th run of ``batch_size`` of them. With 1 worker and batch ``B``
     or 2 workers and batch ``B/2`` a step covers exactly the same events, which is what
     makes DDP training equal to single-process training.
   * ``max_nodes>0``: events are packed greedily, in order, into batches of at most
     ``max_nodes`` nodes (an event larger than the cap gets a batch of its own), and
     ``world_size`` consecutive batches form a step. Batches carry about the same number
     of nodes, so graphs of very different sizes do not stall the other workers.

3. the last, incomplete step is split evenly across ranks (by events, or by nodes), so
   every rank gets the same number of batches and every event is seen exactly once per
   epoch (an event is repeated only when the epoch has fewer events than workers).

With ``min_events`` (``train.min_steps_per_epoch``), an epoch of fewer events is made of
several passes over them, each its own permutation, until it holds ``min_events``: a small
label subset then gets several optimizer steps per epoch. The first pass is the order
without it, so a split already large enough trains exactly as before.

Because ranks may hold different numbers of events in a step, :meth:`loss_weights` gives
the factor ``n_rank * world_size / n_step`` that turns DDP's average of per-rank mean
losses into the mean over all the step's events.

:func:`label_subset` picks the fixed, seeded subset of labelled events used with
``--label-fraction`` (seed: ``--label-seed``, default the run seed); it depends only on event
ids, labels and the seed, never on worker count.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import numpy as np
from torch.utils.data import Sampler

from graphevent.errors import ConfigError


class DistributedBatchSampler(Sampler[list[int]]):
    """Seeded, sharded, resumable batches of dataset indices (see the module docstring).

    Args:
        num_nodes: ``(num_events,)`` node count of every event of the dataset.
        batch_size: events per batch per rank (used when ``max_nodes == 0``).
        max_nodes: cap on the total nodes of one batch; 0 = batches of ``batch_size`` events.
        indices: dataset indices to draw from (e.g. a label subset); default all.
        world_size, rank: this worker's place among the data-parallel workers.
        shuffle: draw a new permutation each epoch from ``(seed, epoch)``.
        seed: shuffling seed (identical on every rank).
        min_events: with ``shuffle``, an epoch holds at least this many events (all ranks
            together): whole passes over ``indices``, each a new permutation; 0 = one pass.

    Shapes:
        yields lists of dataset indices; ``len(sampler)`` = batches left in the epoch on
        this rank (the same on every rank).
    """

    def __init__(
        self,
        num_nodes: Sequence[int] | np.ndarray,
        batch_size: int,
        max_nodes: int = 0,
        indices: Sequence[int] | np.ndarray | None = None,
        world_size: int = 1,
        rank: int = 0,
        shuffle: bool = True,
        seed: int = 0,
        min_events: int = 0,
    ) -> None:
        if batch_size < 1:
            raise ConfigError(f"train.batch_size: invalid value {batch_size}; expected an integer >= 1")
        if max_nodes < 0:
            raise ConfigError(f"train.max_nodes_per_batch: invalid value {max_nodes}; expected >= 0 (0 = off)")
        if not 0 <= rank < world_size:
            raise ConfigError(f"rank {rank} is outside world size {world_size}")
        self.num_nodes = np.asarray(num_nodes, dtype=np.int64)
        self.indices = (
            np.arange(len(self.num_nodes), dtype=np.int64) if indices is None else np.asarray(indices, dtype=np.int64)
        )
        if len(self.indices) == 0:
            raise ConfigError("no events to train on (the split, or its label subset, is empty)")
        self.batch_size = batch_size
        self.max_nodes = max_nodes
        self.world_size = world_size
        self.rank = rank
        self.shuffle = shuffle
        self.seed = seed
        self.min_events = max(0, int(min_events))
        self.epoch = 0
        self.start = 0
        self._plan: list[list[np.ndarray]] | None = None

    def set_epoch(self, epoch: int, start: int = 0) -> None:
        """Select the epoch (its permutation) and skip its first ``start`` batches (resume)."""
        self.epoch = epoch
        self.start = start
        self._plan = None

    # -- plan ---------------------------------------------------------------------------
    def _order(self) -> np.ndarray:
        if not self.shuffle:
            return self.indices
        rng = np.random.default_rng([self.seed, self.epoch])
        n = len(self.indices)
        passes = max(1, -(-self.min_events // n))
        return np.concatenate([self.indices[rng.permutation(n)] for _ in range(passes)])

    def _split(self, events: np.ndarray, order: np.ndarray) -> list[np.ndarray]:
        """Split the last step's events into ``world_size`` non-empty, balanced parts."""
        w = self.world_size
        if len(events) < w:  # fewer events than workers: repeat events so no rank is idle
            events = np.concatenate([events, order[: w - len(events)]]) if len(order) >= w - len(events) else np.resize(events, w)
        if self.max_nodes == 0:
            return list(np.array_split(events, w))
        cum = np.cumsum(self.num_nodes[events])
        cuts, prev = [], 0
        for j in range(1, w):  # part j ends near the j/w quantile of nodes; every part non-empty
            c = int(np.searchsorted(cum, cum[-1] * j / w, side="left")) + 1
            c = min(max(c, prev + 1), len(events) - (w - j))
            cuts.append(c)
            prev = c
        return list(np.split(events, cuts))

    def _pack(self, order: np.ndarray) -> list[np.ndarray]:
        """Greedy in-order packing into batches of at most ``max_nodes`` nodes."""
        sizes = self.num_nodes[order]
        batches, start, total = [], 0, 0
        for i, n in enumerate(sizes):
            if i > start and total + n > self.max_nodes:
                batches.append(order[start:i])
                start, total = i, 0
            total += int(n)
        batches.append(order[start:])
        return batches

    def plan(self) -> list[list[np.ndarray]]:
        """The epoch's steps; ``plan()[s][r]`` = indices of rank ``r``'s batch at step ``s``."""
        if self._plan is not None:
            return self._plan
        order = self._order()
        w = self.world_size
        steps: list[list[np.ndarray]] = []
        if self.max_nodes == 0:
            g = w * self.batch_size
            n_full = len(order) // g
            for s in range(n_full):
                chunk = order[s * g : (s + 1) * g]
                steps.append([chunk[r * self.batch_size : (r + 1) * self.batch_size] for r in range(w)])
            tail = order[n_full * g :]
        else:
            batches = self._pack(order)
            n_full = len(batches) // w
            steps = [batches[s * w : (s + 1) * w] for s in range(n_full)]
            rest = batches[n_full * w :]
            tail = np.concatenate(rest) if rest else order[:0]
        if len(tail):
            steps.append(self._split(tail, order))
        self._plan = steps
        return steps

    def num_batches(self) -> int:
        """Batches per rank in the whole epoch (independent of the resume offset)."""
        return len(self.plan())

    def loss_weights(self) -> np.ndarray:
        """Per remaining batch of this rank: ``n_rank * world_size / n_step`` (1 when balanced)."""
        out = []
        for step in self.plan()[self.start :]:
            sizes = np.array([len(b) for b in step], dtype=np.float64)
            out.append(sizes[self.rank] * self.world_size / sizes.sum())
        return np.array(out, dtype=np.float64)

    def step_events(self) -> np.ndarray:
        """Per remaining step: events over all ranks (for events/s)."""
        return np.array([sum(len(b) for b in step) for step in self.plan()[self.start :]], dtype=np.int64)

    def __iter__(self) -> Iterator[list[int]]:
        for step in self.plan()[self.start :]:
            yield step[self.rank].tolist()

    def __len__(self) -> int:
        return max(0, len(self.plan()) - self.start)
