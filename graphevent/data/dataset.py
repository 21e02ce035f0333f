"""PyG dataset over a preprocessed dataset directory, read lazily shard by shard."""

from __future__ import annotations

import bisect
from pathlib import Path

import numpy as np
import torch
from torch_geometric.data import Data, Dataset

from graphevent.data.info import DatasetInfo, load_manifest  # noqa: F401  (load_manifest: re-exported)
from graphevent.data.knn import edge_features_np, neighbours_to_edge_index
from graphevent.data.shards import ShardReader, sha256_file
from graphevent.data.splits import SPLITS
from graphevent.errors import DataError


def event_to_data(ev: dict, periods=None) -> Data:
    """One event's arrays (``x``, ``pos``, ``nbr``, ``y``, ``targets``, ``event_id``, as in a
    shard) as the ``Data`` of the graph contract (:mod:`graphevent.data`); edge features wrap
    along the periodic axes of ``periods`` (``DatasetInfo.periods``)."""
    ei = neighbours_to_edge_index(ev["nbr"])
    return Data(
        x=torch.from_numpy(np.ascontiguousarray(ev["x"])),
        pos=torch.from_numpy(np.ascontiguousarray(ev["pos"])),
        edge_index=torch.from_numpy(ei),
        edge_attr=torch.from_numpy(edge_features_np(ev["pos"], ei, periods)),
        y=torch.tensor([int(ev["y"])], dtype=torch.long),
        targets=torch.from_numpy(np.asarray(ev["targets"], np.float32)).reshape(1, -1),
        event_id=torch.tensor([int(ev["event_id"])], dtype=torch.long),
    )


class GraphDataset(Dataset):
    """Events of one split as ``torch_geometric.data.Data`` (see :mod:`graphevent.data`).

    Shards are opened lazily (per process, so DataLoader workers each get their own
    handles) and events are read with HDF5 slicing, so memory does not grow with the size
    of the dataset. On opening, the split's shard checksums are compared with the manifest.

    Args:
        root: dataset directory written by ``graphevent preprocess``.
        split: ``train``, ``val`` or ``test``.
        verify: check shard sha256 sums against the manifest (raises DataError on mismatch).
        transform: optional PyG transform applied to each ``Data``.
        in_memory: load the whole split into RAM once (decompressed) instead of reading each
            event from disk: several times faster data loading for GPU training, at the cost of
            memory of the order of the split's uncompressed size.
    """

    def __init__(self, root: str | Path, split: str = "train", verify: bool = True, transform=None, in_memory: bool = False) -> None:
        self.dir = Path(root)
        self.manifest = load_manifest(self.dir)
        if split not in SPLITS:
            raise DataError(f"split {split!r} does not exist; expected one of {', '.join(SPLITS)}")
        self.split = split
        self.info = DatasetInfo.from_manifest(self.manifest)
        entries = [s for s in self.manifest["shards"] if s["split"] == split]
        self._readers: list[ShardReader] = []
        for s in entries:
            path = self.dir / s["path"]  # confined to self.dir by load_manifest
            if not path.is_file():
                raise DataError(f"{path}: shard listed in the manifest is missing")
            if verify and sha256_file(path) != s["sha256"]:
                raise DataError(f"{path}: checksum does not match manifest.json (file changed or corrupt); rerun preprocess")
            self._readers.append(ShardReader(path, {"dataset_id": self.manifest["dataset_id"], "split": split}))
        self._cum = np.cumsum([0] + [r.n_events for r in self._readers])
        self._mem = self._load_all() if in_memory else None
        super().__init__(None, transform)

    def _load_all(self) -> dict[str, np.ndarray]:
        parts = [r.load_all() for r in self._readers]
        for r in self._readers:
            r.close()
        if not parts:
            return {}
        mem = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        counts = np.concatenate([np.diff(r.offsets) for r in self._readers])
        mem["offsets"] = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        return mem

    # PyG Dataset API -------------------------------------------------------------
    def len(self) -> int:
        return int(self._cum[-1])

    def get(self, idx: int) -> Data:
        if self._mem is not None:
            m = self._mem
            a, b = int(m["offsets"][idx]), int(m["offsets"][idx + 1])
            ev = {"x": m["x"][a:b], "pos": m["pos"][a:b], "nbr": m["nbr"][a:b], "y": m["y"][idx],
                  "targets": m["targets"][idx], "event_id": m["event_id"][idx]}
        else:
            s = bisect.bisect_right(self._cum, idx) - 1
            ev = self._readers[s].event(idx - int(self._cum[s]))
        return event_to_data(ev, self.info.periods)

    # extras ------------------------------------------------------------------------
    @property
    def num_nodes_per_event(self) -> np.ndarray:
        """Nodes of each event of the split, in dataset order (for node-balanced batching)."""
        return np.concatenate([np.diff(r.offsets) for r in self._readers]) if self._readers else np.zeros(0, np.int64)

    def _column(self, name: str) -> np.ndarray:
        """One per-event shard array (``event_id``, ``y``) over the whole split, in dataset order."""
        out = [r.column(name) for r in self._readers]
        return np.concatenate(out) if out else np.zeros(0, np.int64)

    def event_sources(self, event_ids: np.ndarray) -> dict[str, np.ndarray]:
        """Where events come from: ``source`` (input number, int32), ``source_file`` (its
        name) and ``index`` (the event's index in that file), decoded from ``event_id``
        (input ``s``'s event ``i`` has id = events of the inputs before ``s`` + ``i``)."""
        inputs = self.manifest.get("inputs", [])
        starts = np.cumsum([0] + [int(i["events_total"]) for i in inputs])
        ids = np.asarray(event_ids, np.int64)
        source = np.searchsorted(starts, ids, side="right") - 1
        names = np.array([i["name"] for i in inputs] or [""], dtype=object)
        return {"source": source.astype(np.int32), "source_file": names[source], "index": ids - starts[source]}

    @property
    def event_ids(self) -> np.ndarray:
        return self._column("event_id")

    def labels(self) -> np.ndarray:
        return self._column("y")

    def __repr__(self) -> str:
        return f"GraphDataset({str(self.dir)!r}, split={self.split!r}, events={len(self)})"
