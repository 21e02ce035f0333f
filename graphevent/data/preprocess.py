"""``graphevent preprocess``: raw files -> a sharded, checksummed graph dataset.

Pipeline per chunk of events (a contiguous range of one input file):
reader -> NaN/Inf policy -> :class:`ImageToPoints` (or hits) -> empty-event policy ->
:class:`ScaleTransform` -> :class:`KNNGraph` -> split by hashed event id -> one shard per
split, written atomically, then a small JSON "done" marker for the chunk.

Chunks are planned from the inputs alone, so the output is identical whatever
``--workers`` is, and a killed run resumes by skipping chunks whose marker exists. The
dataset is complete only once ``manifest.json`` exists (written last, atomically).
"""

from __future__ import annotations

import concurrent.futures as cf
import hashlib
import json
import multiprocessing as mp
import os
import pickle
import shutil
import signal
import traceback
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from graphevent import __version__
from graphevent.config.base import to_dict
from graphevent.config.data import DataConfig
from graphevent.config.readers import get_reader_type
from graphevent.data.info import FORMAT_VERSION
from graphevent.data.shards import sha256_file, write_shard
from graphevent.data.splits import SPLITS, assign_splits
from graphevent.data.transforms import ImageToPoints, KNNGraph, PointCloudChunk, ScaleTransform, points_from_hits
from graphevent.data.transforms.feature_transform import PerChannelValueTransform
from graphevent.data.transforms.image_to_points import ALT_MODES
from graphevent.errors import DataError, GraphEventError
from graphevent.io import open_reader
from graphevent.utils.geometry import wrap_positions
from graphevent.utils.outdir import OutputDir
from graphevent.utils.progress import NullProgress

STATE_FILE = ".preprocess-state.json"
MANIFEST = "manifest.json"
#: What a dataset directory holds (recorded in its graphevent marker before anything is written).
DATASET_ENTRIES = (STATE_FILE, "chunks", "shards", "data_config.yaml", MANIFEST)
EDGE_FEATURES = ["deta", "dphi", "dR"]


@dataclass(frozen=True)
class ChunkTask:
    """One unit of work: events [start, stop) of input ``source``."""

    source: int
    chunk: int
    path: str
    start: int
    stop: int
    event_offset: int  # dataset-wide number of this input's event 0

    @property
    def name(self) -> str:
        return f"{self.source:03d}-{self.chunk:05d}"


def config_hash(cfg: DataConfig, inputs: list[dict], limit: int | None) -> str:
    """Hash of everything that determines the dataset's content (also the dataset's id)."""
    payload = json.dumps(
        {"config": to_dict(cfg), "inputs": [(i["name"], i["size"], i["sha256"]) for i in inputs], "limit": limit,
         "format": FORMAT_VERSION},
        sort_keys=True,
    )
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def node_feature_names(cfg: DataConfig) -> list[str]:
    names = [c.name for c in cfg.channels]
    if cfg.graph.node_mode == "per_channel":
        return [f"is_{n}" for n in names] + ["value"]
    return names


# ----------------------------------------------------------------------------- workers
_READERS: dict[str, tuple[tuple, object]] = {}  # path -> (what the reader was opened for, reader)


def _reader(path: str, cfg: DataConfig):
    """An open reader of ``path``, kept per process; reopened when the file or the config changed."""
    st = os.stat(path)
    key = (st.st_mtime_ns, st.st_size, st.st_ino, repr(cfg))
    cached = _READERS.get(path)
    if cached is None or cached[0] != key:
        if cached is not None:
            cached[1].close()
        _READERS[path] = (key, open_reader(path, cfg))
    return _READERS[path][1]


def _bad_values(arr: np.ndarray, counts_or_none, path: str, start: int, cfg: DataConfig) -> tuple[np.ndarray, int]:
    """Apply the NaN/Inf policy to events ``start, ...`` of ``path``; returns (array, events repaired)."""
    if arr.size == 0 or (np.isfinite(arr.min()) and np.isfinite(arr.max())):  # NaN propagates: no bool copy
        return arr, 0
    finite = np.isfinite(arr)
    if counts_or_none is None:  # images (n, C, H, W)
        bad_ev = ~finite.reshape(len(arr), -1).all(axis=1)
    else:  # points (P, C) with counts
        ev = np.repeat(np.arange(len(counts_or_none)), counts_or_none)
        bad_ev = np.bincount(ev[~finite.all(axis=1)], minlength=len(counts_or_none)) > 0
    first = int(np.flatnonzero(bad_ev)[0])
    if cfg.bad_values == "fail":
        raise DataError(
            f"{Path(path).name}: event {start + first} has NaN/Inf values; expected finite values "
            f"(set bad_values: zero in the data config to zero them and count the events)"
        )
    return np.where(finite, arr, 0).astype(np.float32), int(bad_ev.sum())


@dataclass
class ChunkGraphs:
    """The graphs of events ``[start, stop)`` of one input, before splitting into shards.

    Per kept event (``keep`` selects them from the events read): ``labels``, ``targets``,
    ``index`` and ``counts``; flat over their nodes: ``x`` (scaled features), ``pos`` and
    ``nbr`` (kNN neighbours, -1 padded). ``empty`` marks, over every event read, those
    without a node.
    """

    x: np.ndarray
    pos: np.ndarray
    nbr: np.ndarray
    counts: np.ndarray
    labels: np.ndarray
    targets: np.ndarray
    index: np.ndarray
    keep: np.ndarray
    empty: np.ndarray
    alt_counts: np.ndarray | None
    repaired: int

    @property
    def offsets(self) -> np.ndarray:
        return np.concatenate([[0], np.cumsum(self.counts)]).astype(np.int64)


def build_graphs(reader, path: str, start: int, stop: int, cfg: DataConfig, keep_empty: bool | None = None) -> ChunkGraphs:
    """Read events ``[start, stop)`` with ``reader`` and turn them into graphs, exactly as
    ``graphevent preprocess`` does (NaN policy, node building, scaling, kNN).

    Args:
        reader: an open :class:`~graphevent.io.base.Reader` of ``path``.
        keep_empty: keep events without nodes; default from ``cfg.empty_events``.
    """
    thresholds = [c.threshold for c in cfg.channels]
    images = get_reader_type(cfg.reader.format).yields == "images"
    if images:
        itp = ImageToPoints.from_config(cfg)
        # HDF5: reader.read_slab events at a time, so each slab's images stay in the CPU cache
        # from decompression to the occupied-pixel scan (points are per event: the same
        # result). Parquet and ROOT decode whole row groups / baskets: one read per chunk.
        slab_size = reader.read_slab or stop - start
        parts, columns, repaired = [], [], 0
        for a in range(start, stop, slab_size):
            sub = reader.read(a, min(a + slab_size, stop))
            slab, bad = _bad_values(sub.images, None, path, a, cfg)
            parts.append(itp(slab))
            columns.append((sub.labels, sub.targets, sub.index))
            repaired += bad
        pc = PointCloudChunk.concatenate(parts)
        labels, targets, index = (np.concatenate(c) for c in zip(*columns))
    else:
        chunk = reader.read(start, stop)
        values, repaired = _bad_values(chunk.values, chunk.counts, path, start, cfg)
        pc = points_from_hits(values, chunk.eta, chunk.phi, chunk.counts, thresholds, cfg.graph.max_nodes, [c.signed for c in cfg.channels])
        labels, targets, index = chunk.labels, chunk.targets, chunk.index

    n = len(index)
    empty = pc.counts == 0
    if keep_empty is None:
        keep_empty = cfg.empty_events != "skip"
    keep = np.ones(n, bool) if keep_empty else ~empty
    pc = pc.select(keep)

    scales = [c.scale for c in cfg.channels]
    transforms = [c.transform for c in cfg.channels]
    if cfg.graph.node_mode == "per_channel" and images:
        x = PerChannelValueTransform(scales, transforms)(pc.values)
    else:
        x = ScaleTransform(scales, transforms)(pc.values)
    periods, lattice_periods = cfg.periods, None
    if periods is not None and images:  # lattice_pos: eta-pixel units, phi scaled by the pixel aspect
        aspect = cfg.image.pixel_size[1] / cfg.image.pixel_size[0]
        spans = (float(cfg.image.height), cfg.image.width if aspect == 1.0 else cfg.image.width * aspect)
        lattice_periods = tuple(spans[i] if p else 0.0 for i, p in enumerate(periods))
    elif periods is not None:  # points: positions into each periodic axis's range
        pc.pos = wrap_positions(pc.pos, periods)
    nbr = KNNGraph(cfg.graph.k, cfg.graph.knn_backend, periods, lattice_periods)(pc.pos, pc.counts, pc.lattice_pos)
    return ChunkGraphs(x=x, pos=pc.pos, nbr=nbr, counts=pc.counts, labels=labels[keep], targets=targets[keep],
                       index=index[keep], keep=keep, empty=empty, alt_counts=pc.alt_counts, repaired=repaired)


def process_chunk(task: ChunkTask, cfg: DataConfig, out_dir: str, dataset_id: str) -> dict:
    """Turn one chunk into shards (tagged with ``dataset_id``); returns (and writes) its marker dict."""
    out = Path(out_dir)
    g = build_graphs(_reader(task.path, cfg), task.path, task.start, task.stop, cfg)
    x, nbr, labels, targets, index, empty, repaired = g.x, g.nbr, g.labels, g.targets, g.index, g.empty, g.repaired
    n = len(g.keep)
    if not np.all(np.isfinite(targets)):
        bad = int(np.flatnonzero(~np.isfinite(targets).all(axis=1))[0])
        raise DataError(f"{Path(task.path).name}: event {int(index[bad])} has a NaN/Inf regression target; expected finite values")

    split = assign_splits(Path(task.path).name, index, (cfg.split.train, cfg.split.val, cfg.split.test), cfg.split.seed)
    offsets = g.offsets
    marker = {"chunk": task.name, "events_read": n, "skipped": {"empty": int(empty.sum()) if cfg.empty_events == "skip" else 0},
              "repaired": {"nan_events_zeroed": repaired}, "shards": []}
    n_cls = len(cfg.classes)
    for code, split_name in enumerate(SPLITS):
        sel = np.flatnonzero(split == code)
        if len(sel) == 0:
            continue
        node_sel = np.concatenate([np.arange(offsets[e], offsets[e + 1]) for e in sel]) if len(sel) else np.zeros(0, int)
        counts = g.counts[sel]
        arrays = {
            "x": x[node_sel],
            "pos": g.pos[node_sel],
            "nbr": nbr[node_sel],
            "offsets": np.concatenate([[0], np.cumsum(counts)]).astype(np.int64),
            "y": labels[sel].astype(np.int64),
            "targets": targets[sel].astype(np.float32),
            "event_id": (task.event_offset + index[sel]).astype(np.int64),
            "source": np.full(len(sel), task.source, np.int32),
            "index": index[sel].astype(np.int64),
        }
        if g.alt_counts is not None:
            arrays["alt_counts"] = g.alt_counts[sel].astype(np.int32)
        rel = Path("shards") / split_name / f"{task.name}.h5"
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        digest = write_shard(out / rel, arrays, {"dataset_id": dataset_id, "split": split_name})
        xs = arrays["x"].astype(np.float64)
        ts = arrays["targets"].astype(np.float64)
        marker["shards"].append({
            "path": rel.as_posix(), "split": split_name, "sha256": digest, "events": int(len(sel)),
            "nodes": int(len(node_sel)), "edges": int((arrays["nbr"] >= 0).sum()),
            "class_counts": np.bincount(arrays["y"], minlength=n_cls).tolist(),
            "x_sum": xs.sum(0).tolist(), "x_sumsq": (xs**2).sum(0).tolist(),
            "t_sum": ts.sum(0).tolist(), "t_sumsq": (ts**2).sum(0).tolist(),
        })
    _write_json_atomic(out / "chunks" / f"{task.name}.json", marker)
    return marker


def _write_json_atomic(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    os.replace(tmp, path)


def _worker_init() -> None:
    """A pool worker: one thread; Ctrl-C (SIGINT to the whole process group) is the parent's
    to handle, which stops the pool and says what was kept."""
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def _process_chunk_in_worker(task: ChunkTask, cfg: DataConfig, out_dir: str, dataset_id: str) -> dict:
    """:func:`process_chunk` in a pool worker: what it raises must survive pickling to the parent.

    Our own errors are rebuilt from their message (exit 2 in the parent, as with one
    worker). Anything else is a bug: re-raised as it is when it pickles, else (isal's
    IsalError does not) as a RuntimeError carrying its traceback, never a PicklingError.
    """
    try:
        return process_chunk(task, cfg, out_dir, dataset_id)
    except GraphEventError as exc:
        raise type(exc)(str(exc)) from None
    except Exception as exc:
        try:
            pickle.loads(pickle.dumps(exc))
        except Exception:
            where = f"{Path(task.path).name} events {task.start}..{task.stop - 1}"
            raise RuntimeError(f"{where}: {''.join(traceback.format_exception(exc))}") from None
        raise


# ----------------------------------------------------------------------------- driver
def _check_distinct(inputs: list[Path], digests: dict[str, str]) -> None:
    """Refuse one file given twice under two names: its events would land in two splits.

    Compared in order: the resolved path (symlinks), the inode (hard links), then the
    SHA-256 of files of equal size (copies); ``digests`` (path -> sha256) is filled in.
    """
    seen_real, seen_inode, seen_size = {}, {}, {}
    for path in inputs:
        real = os.path.realpath(path)
        st = os.stat(real)
        for key, seen, why in ((real, seen_real, f"both are {real}"),
                               ((st.st_dev, st.st_ino), seen_inode, "hard links to one file")):
            if key in seen:
                raise DataError(f"{seen[key]} and {path} are the same file ({why}); give each input once")
            seen[key] = path
        seen_size.setdefault(st.st_size, []).append(path)
    for same_size in seen_size.values():
        by_digest: dict[str, Path] = {}
        for path in same_size:
            digest = digests.get(str(path)) or sha256_file(path)
            digests[str(path)] = digest
            if digest in by_digest:
                raise DataError(
                    f"{by_digest[digest]} and {path} have identical contents (sha256 {digest[:16]}...); give each "
                    "input once (a copy would put the same events in two splits)"
                )
            by_digest[digest] = path


def _plan(inputs: list[Path], cfg: DataConfig, limit: int | None, digests: dict[str, str] | None = None):
    """Open every input (validating it against the config), refuse duplicates, plan the chunks.

    ``digests``: sha256 of inputs already hashed (path -> hex), reused.
    """
    info, tasks, offset, remaining = [], [], 0, limit
    totals = []
    for path in inputs:
        with open_reader(path, cfg) as reader:
            totals.append(reader.n_events)
    digests = dict(digests or {})
    _check_distinct(inputs, digests)
    for src, (path, total) in enumerate(zip(inputs, totals)):
        use = total if remaining is None else min(total, remaining)
        info.append({"path": str(Path(path).resolve()), "name": Path(path).name, "size": Path(path).stat().st_size,
                     "sha256": digests.get(str(path)) or sha256_file(path),
                     "events_total": int(total), "events_read": int(use)})
        for c, start in enumerate(range(0, use, cfg.chunk_size)):
            tasks.append(ChunkTask(src, c, str(path), start, min(start + cfg.chunk_size, use), offset))
        offset += total
        if remaining is not None:
            remaining -= use
    names = [i["name"] for i in info]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})
        raise DataError(f"input file names must be unique (event ids and splits use them); repeated: {', '.join(dup)}")
    return info, tasks


def _prepare_out(od: OutputDir, state: dict, overwrite: bool) -> bool:
    """Create, resume or (``overwrite``) clear the locked output directory. Returns True if resuming."""
    out = od.path
    if od.has_content():
        manifest, state_file = out / MANIFEST, out / STATE_FILE
        if not overwrite:
            if manifest.exists():
                raise DataError(f"{out}: a dataset already exists there; pass --overwrite to replace it")
            old = json.loads(state_file.read_text()) if state_file.is_file() else {}
            if old.get("config_hash") != state["config_hash"]:
                raise DataError(
                    f"{out}: holds an unfinished dataset made with other inputs or config; rerun the same command "
                    "to resume it, or pass --overwrite to start again"
                )
            od.start(DATASET_ENTRIES)
            return True
        od.clear()
    od.start(DATASET_ENTRIES)
    _write_json_atomic(out / STATE_FILE, state)
    return False


def _summarise(values: np.ndarray) -> dict:
    if len(values) == 0:
        return {"mean": 0.0, "p10": 0.0, "p50": 0.0, "p90": 0.0, "max": 0}
    p10, p50, p90 = np.percentile(values, [10, 50, 90])
    return {"mean": float(values.mean()), "p10": float(p10), "p50": float(p50), "p90": float(p90), "max": int(values.max())}


def _mean_std(s, ss, n) -> list[dict]:
    s, ss = np.asarray(s, np.float64), np.asarray(ss, np.float64)
    mean = s / max(n, 1)
    var = np.maximum(ss / max(n, 1) - mean**2, 0.0)
    return [{"mean": float(m), "std": float(np.sqrt(v)) if v > 0 else 1.0} for m, v in zip(mean, var)]


def _finalise(out: Path, cfg: DataConfig, inputs: list[dict], tasks: list[ChunkTask], markers: dict, chash: str) -> dict:
    import h5py

    shards, skipped, repaired = [], {"empty": 0}, {"nan_events_zeroed": 0}
    splits = {s: 0 for s in SPLITS}
    class_counts = {s: [0] * len(cfg.classes) for s in SPLITS}
    F = len(node_feature_names(cfg))
    T = len(cfg.reader.target_keys)
    x_sum, x_ss, t_sum, t_ss, n_nodes_train, n_ev_train = np.zeros(F), np.zeros(F), np.zeros(T), np.zeros(T), 0, 0
    n_edges = 0
    for task in tasks:  # chunk order: deterministic merge
        m = markers[task.name]
        for k in skipped:
            skipped[k] += m["skipped"].get(k, 0)
        for k in repaired:
            repaired[k] += m["repaired"].get(k, 0)
        for sh in m["shards"]:
            shards.append({k: sh[k] for k in ("path", "split", "sha256", "events", "nodes", "edges")})
            splits[sh["split"]] += sh["events"]
            class_counts[sh["split"]] = [a + b for a, b in zip(class_counts[sh["split"]], sh["class_counts"])]
            n_edges += sh["edges"]
            if sh["split"] == "train":
                x_sum += sh["x_sum"]; x_ss += sh["x_sumsq"]; n_nodes_train += sh["nodes"]
                t_sum += sh["t_sum"]; t_ss += sh["t_sumsq"]; n_ev_train += sh["events"]
    counts, alt = [], []
    for sh in shards:
        with h5py.File(out / sh["path"], "r") as f:
            counts.append(np.diff(f["offsets"][:]))
            if "alt_counts" in f:
                alt.append(f["alt_counts"][:])
    counts = np.concatenate(counts) if counts else np.zeros(0, int)
    alt = np.concatenate(alt) if alt else np.zeros((0, len(ALT_MODES)), int)
    n_events = int(sum(splits.values()))
    names = node_feature_names(cfg)
    image = None
    if get_reader_type(cfg.reader.format).yields == "images":
        image = {"shape": [len(cfg.channels), cfg.image.height, cfg.image.width], "pixel_size": list(cfg.image.pixel_size)}
    manifest = {
        "format_version": FORMAT_VERSION,
        "dataset_id": chash,
        "graphevent_version": __version__,
        "name": cfg.name,
        "n_events": n_events,
        "splits": splits,
        "classes": list(cfg.classes),
        "class_counts": {s: dict(zip(cfg.classes, c)) for s, c in class_counts.items()},
        "targets": list(cfg.reader.target_keys),
        "node_features": names,
        "edge_features": EDGE_FEATURES,
        "k": cfg.graph.k,
        "node_mode": cfg.graph.node_mode + ("+collapse" if cfg.graph.collapse_upsampled and any(c.upsample > 1 for c in cfg.channels) else ""),
        "image": image,
        "nodes_per_event": _summarise(counts),
        "nodes_per_event_by_mode": {m: _summarise(alt[:, i]) for i, m in enumerate(ALT_MODES)} if len(alt) else {},
        "edges_per_event": float(n_edges / max(n_events, 1)),
        "skipped": skipped,
        "repaired": repaired,
        "feature_stats": dict(zip(names, _mean_std(x_sum, x_ss, n_nodes_train))),
        "target_stats": dict(zip(cfg.reader.target_keys, _mean_std(t_sum, t_ss, n_ev_train))),
        "stats_produced_by": {"config_hash": chash, "split": "train"},
        "config_hash": chash,
        "inputs": inputs,
        "shards": shards,
        "config": to_dict(cfg),
    }
    if cfg.periods is not None:  # only then: a jet-crop dataset's manifest stays as it was
        manifest["periods"] = list(cfg.periods)
    return manifest


def preprocess(
    inputs: list[Path],
    cfg: DataConfig,
    out: Path,
    workers: int = 1,
    limit: int | None = None,
    overwrite: bool = False,
    data_manifest: Path | None = None,
    progress=None,
) -> dict:
    """Build a graph dataset from raw files; returns the manifest.

    Raises:
        DataError: bad inputs (checked before anything is written), an existing output
            directory without ``overwrite``, or bad values met while streaming.
    """
    progress = progress or NullProgress()
    inputs = [Path(p) for p in inputs]
    if not inputs:
        raise DataError("no input files given")
    if limit is not None and limit < 1:
        raise DataError(f"--limit: invalid value {limit}; expected >= 1")
    if data_manifest is not None:
        from graphevent.io.manifest import check_inputs, load_data_manifest

        checked = {c["path"]: c["sha256"] for c in check_inputs(inputs, load_data_manifest(data_manifest)) if c.get("sha256")}
    else:
        checked = {}
    input_info, tasks = _plan(inputs, cfg, limit, checked)
    chash = config_hash(cfg, input_info, limit)
    od = OutputDir(out, "dataset", inputs=[*inputs, *([data_manifest] if data_manifest else [])]).acquire()
    resuming = False
    try:
        resuming = _prepare_out(od, {"config_hash": chash, "graphevent_version": __version__}, overwrite)
        manifest = _build(od.path, cfg, input_info, tasks, chash, checked, resuming, workers, progress)
        od.complete()
    except Exception:
        if not resuming:  # a failed new dataset leaves nothing behind (an interrupted one can be resumed)
            od.abandon()
        raise
    finally:
        od.release()
    return manifest


def _build(out: Path, cfg: DataConfig, input_info: list[dict], tasks: list[ChunkTask], chash: str,
           checked: dict, resuming: bool, workers: int, progress) -> dict:
    """Process every chunk not done yet, then write the manifest (the dataset is complete)."""
    markers: dict[str, dict] = {}
    todo = []
    for t in tasks:
        mpath = out / "chunks" / f"{t.name}.json"
        if resuming and mpath.exists():
            m = json.loads(mpath.read_text())
            if all((out / s["path"]).exists() for s in m["shards"]):
                markers[t.name] = m
                continue
        todo.append(t)
    total = sum(t.stop - t.start for t in tasks)
    progress.start(total, "preprocess")
    progress.advance(sum(m["events_read"] for m in markers.values()))
    try:
        if workers <= 1:
            for t in todo:
                markers[t.name] = process_chunk(t, cfg, str(out), chash)
                progress.advance(t.stop - t.start)
        else:
            ctx = mp.get_context("spawn")
            with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_worker_init) as pool:
                pending, it = {}, iter(todo)
                for t in it:  # keep a bounded number of chunks in flight: memory stays flat
                    pending[pool.submit(_process_chunk_in_worker, t, cfg, str(out), chash)] = t
                    if len(pending) >= 2 * workers:
                        break
                while pending:
                    done, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
                    for fut in done:
                        t = pending.pop(fut)
                        markers[t.name] = fut.result()
                        progress.advance(t.stop - t.start)
                        nxt = next(it, None)
                        if nxt is not None:
                            pending[pool.submit(_process_chunk_in_worker, nxt, cfg, str(out), chash)] = nxt
    finally:
        progress.stop()
    written = sum(sh["events"] for m in markers.values() for sh in m["shards"])
    if written == 0:
        read = sum(m["events_read"] for m in markers.values())
        empty = sum(m["skipped"].get("empty", 0) for m in markers.values())
        names = ", ".join(i["name"] for i in input_info)
        raise DataError(
            f"{names}: no event left to write: {read} events read, {empty} skipped as empty (no node above the "
            f"channel thresholds); expected at least one non-empty event (check the channel thresholds and the reader keys)"
        )
    manifest = _finalise(out, cfg, input_info, tasks, markers, chash)
    from graphevent.config.base import dump_yaml

    dump_yaml(cfg, out / "data_config.yaml")
    _write_json_atomic(out / MANIFEST, manifest)
    shutil.rmtree(out / "chunks", ignore_errors=True)
    (out / STATE_FILE).unlink(missing_ok=True)
    return manifest
