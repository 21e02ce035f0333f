"""Inference on new files and on graphs: the library behind ``graphevent predict``.

:func:`predict_files` streams raw input files (any reader) through the run's own
preprocessing (the data config its dataset was made with, recorded in the run directory)
and its model, one chunk of events at a time, and writes one row per input event to a
Parquet or ROOT file (columns: :mod:`graphevent.evaluate.predictions`). Labels and
regression targets are carried along when the files have them and never required.

:func:`predict` is the notebook-level call: a trained model and a ``Data``, a list of
them, a ``Batch`` or a dataset in, numpy columns out.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphevent.config.base import from_dict, to_dict
from graphevent.config.data import DataConfig, load_data_config
from graphevent.errors import ConfigError, DataError, RunError
from graphevent.evaluate.options import DEFAULT_BATCH_SIZE

if TYPE_CHECKING:
    import torch

#: data config sections that decide what the model sees; a ``--config`` must agree on them
PREPROCESSING_SECTIONS = ("channels", "image", "graph", "geometry", "classes")


@dataclass(frozen=True)
class PredictOptions:
    """Options of :func:`predict_files`.

    Args:
        config: a data config YAML to read the inputs with (e.g. another file format);
            its preprocessing sections must equal the run's.
        checkpoint: ``best`` or ``last``.
        batch_size: events per model call.
        device: ``auto``, ``cpu``, ``cuda`` or ``cuda:N``.
        seed: torch seed (masked autoencoders draw masks at inference).
        overwrite: replace an existing output file.
        overrides: ``--set`` overrides of how the inputs are read (``reader.image_key=X``,
            ``chunk_size=256``): only ``reader.*`` keys and ``chunk_size``, since the
            preprocessing must stay the run's.
    """

    config: Path | None = None
    checkpoint: str = "best"
    batch_size: int = DEFAULT_BATCH_SIZE
    device: str = "auto"
    seed: int = 0
    overwrite: bool = False
    overrides: tuple[str, ...] = ()


@dataclass
class PredictResult:
    """What :func:`predict_files` wrote: the file, events per input, empty events, labels found."""

    out: Path
    events: int
    empty: int
    per_input: dict[str, int] = field(default_factory=dict)
    unlabelled: list[str] = field(default_factory=list)
    missing_targets: dict[str, list[str]] = field(default_factory=dict)


# ----------------------------------------------------------------------------- config
def _recorded_config(run_dir: Path) -> tuple[dict[str, Any] | None, str]:
    """The data config recorded for a run: ``dataset.json`` ``data_config``, else the
    ``config`` of the dataset manifest it names. Returns (mapping or None, where it was looked for)."""
    record = run_dir / "dataset.json"
    if not record.is_file():
        return None, str(record)
    info = json.loads(record.read_text())
    if isinstance(info.get("data_config"), dict):
        return info["data_config"], str(record)
    manifest = Path(info.get("manifest", ""))
    if manifest.is_file():
        cfg = json.loads(manifest.read_text()).get("config")
        if isinstance(cfg, dict):
            return cfg, str(manifest)
    return None, f"{record} (and the manifest {manifest} it names)"


def run_data_config(run_dir: str | Path, config: str | Path | None = None, info: Any = None,
                    overrides: Sequence[str] = ()) -> DataConfig:
    """The data config that turns raw files into the graphs the run was trained on.

    Args:
        run_dir: a run directory written by ``graphevent train``.
        config: optional data config YAML (another reader for the same preprocessing).
        info: the run's :class:`~graphevent.data.info.DatasetInfo` (checks a ``config``
            when the run recorded none).
        overrides: ``--set`` overrides of ``reader.*`` keys and ``chunk_size`` (``reader.image_key=X``).

    Raises:
        RunError: no recorded config and no ``config`` given.
        ConfigError: ``config`` differs from the run's preprocessing (names the key), or an
            override of another key, or of a bad value (names the ``--set``).
    """
    check_reader_overrides(overrides)
    cfg = _run_data_config(Path(run_dir), config, info)
    if not overrides:
        return cfg
    from graphevent.config.base import build_with_overrides

    where = str(config) if config is not None else "data config"
    return build_with_overrides(lambda raw: from_dict(DataConfig, raw, where=where), to_dict(cfg), overrides, where)


def check_reader_overrides(overrides: Sequence[str]) -> None:
    """Refuse a ``--set`` of anything but a ``reader.<key>`` or ``chunk_size`` (names the override).

    Raises:
        ConfigError: ``--set graph.k=4: predict reads the inputs with the run's preprocessing; ...``.
    """
    from graphevent.config.base import parse_override

    for item in overrides:
        parts, _ = parse_override(item)
        if parts == ["chunk_size"] or (parts[0] == "reader" and len(parts) > 1):
            continue
        raise ConfigError(f"--set {item}: predict reads the inputs with the run's preprocessing; only reader.* keys "
                          f"and chunk_size may be set, not {'.'.join(parts)!r}")


def _run_data_config(run_dir: Path, config: str | Path | None, info: Any) -> DataConfig:
    """:func:`run_data_config` without overrides."""
    from graphevent.data.preprocess import node_feature_names

    recorded, where = _recorded_config(run_dir)
    run_cfg = from_dict(DataConfig, recorded, where) if recorded is not None else None
    if config is None:
        if run_cfg is None:
            raise RunError(f"{run_dir}: the data config of its dataset is not recorded in {where}; "
                           "pass --config DATA.yaml (the config the dataset was preprocessed with)")
        return run_cfg
    given = load_data_config(config)
    if run_cfg is not None:
        a, b = to_dict(run_cfg), to_dict(given)
        for section in PREPROCESSING_SECTIONS:
            if a.get(section) != b.get(section):  # geometry: absent when nothing wraps
                key = _first_difference(a.get(section), b.get(section), section)
                raise ConfigError(
                    f"--config {config}: {key} differs from the preprocessing run {run_dir.name} was trained with "
                    f"({where}); only reader settings and chunk_size may differ"
                )
    elif info is not None:
        if node_feature_names(given) != list(info.node_features) or list(given.classes) != list(info.classes):
            raise ConfigError(
                f"--config {config}: gives node features {node_feature_names(given)} and classes {list(given.classes)}; "
                f"run {run_dir.name} was trained on {list(info.node_features)} and {list(info.classes)}"
            )
    return given


def _first_difference(a: Any, b: Any, where: str) -> str:
    """Dotted name of the first place two config mappings differ, with both values."""
    if isinstance(a, dict) and isinstance(b, dict):
        for k in list(a) + [k for k in b if k not in a]:
            if a.get(k) != b.get(k):
                return _first_difference(a.get(k), b.get(k), f"{where}.{k}")
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        for i, (x, y) in enumerate(zip(a, b)):
            if x != y:
                return _first_difference(x, y, f"{where}[{i}]")
    return f"{where} is {b!r} (run: {a!r})"


# ----------------------------------------------------------------------------- graphs -> outputs
def output_columns(out: dict[str, torch.Tensor], classes: Sequence[str], features: Sequence[str]) -> dict[str, np.ndarray]:
    """``model.predict`` outputs as prediction-file columns (names as in ``graphevent eval``).

    Classification ``(B, C)`` -> ``score_<class>`` (``<task>_score_<class>`` with several
    classification tasks); regression ``(B,)`` -> ``pred_<task>``; ``recon_error (B, F)``
    -> ``recon_error_<feature>``.
    """
    cols: dict[str, np.ndarray] = {}
    n_cls = sum(1 for k, v in out.items() if k != "recon_error" and v.dim() == 2)
    for name, value in out.items():
        v = value.detach().float().cpu().numpy()
        if name == "recon_error":
            cols.update({f"recon_error_{f}": v[:, i] for i, f in enumerate(features)})
        elif v.ndim == 2:
            prefix = f"{name}_" if n_cls > 1 else ""
            cols.update({f"{prefix}score_{c}": v[:, i] for i, c in enumerate(classes)})
        else:
            cols[f"pred_{name}"] = v.reshape(-1)
    return cols


def predict(model: Any, data: Any, batch_size: int = DEFAULT_BATCH_SIZE, device: str | torch.device | None = None,
            amp: torch.dtype | None = None) -> dict[str, np.ndarray]:
    """Per-event outputs of a trained model, as numpy columns.

    Args:
        model: a GraphModel (e.g. from :func:`graphevent.nn.checkpoint.load_run`); run in
            eval mode (its training mode is restored afterwards).
        data: a ``Data`` (one event), a ``Batch``, a list of ``Data`` or a dataset
            (e.g. :class:`~graphevent.data.dataset.GraphDataset`).
        batch_size: events per model call (lists and datasets).
        device: where to run (default: the model's device); the model is moved there.
        amp: autocast dtype (``None``: full precision).

    Returns:
        ``score_<class>`` / ``pred_<task>`` / ``recon_error_<feature>`` arrays, one row per
        event in input order (see :func:`output_columns`).
    """
    from graphevent.evaluate.inference import infer, model_device

    device = device if device is not None else model_device(model)
    model.to(device)
    parts = [output_columns(out, model.info.classes, model.info.node_features)
             for _, out in infer(model, data, batch_size=batch_size, device=device, amp=amp)]
    if not parts:
        return {}
    return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}


# ----------------------------------------------------------------------------- files
def _chunk_events(g: Any, start_id: int, periods: Any = None) -> list[Any]:
    """The kept events of a :class:`~graphevent.data.preprocess.ChunkGraphs` as ``Data``
    (edge features wrapped along the periodic axes of ``periods``)."""
    from graphevent.data.dataset import event_to_data

    off = g.offsets
    return [
        event_to_data({"x": g.x[off[e]:off[e + 1]], "pos": g.pos[off[e]:off[e + 1]], "nbr": g.nbr[off[e]:off[e + 1]],
                       "y": g.labels[e], "targets": g.targets[e], "event_id": start_id + e}, periods)
        for e in range(len(g.counts))
    ]


def predict_files(
    run_dir: str | Path,
    inputs: Sequence[str | Path],
    out: str | Path,
    options: PredictOptions = PredictOptions(),
    progress: Any = None,
) -> PredictResult:
    """Score every event of raw ``inputs`` with the run's model; write ``out`` (.parquet or .root).

    Events are read, preprocessed and scored ``chunk_size`` (data config) events at a time,
    and each chunk is appended to the output, so memory does not grow with the inputs.
    The file appears only when complete. Events without nodes get NaN outputs.

    Raises:
        ConfigError: bad options, unknown output suffix.
        OutputError: ``out`` is not a file graphevent may write
            (:class:`~graphevent.utils.outfile.OutputFile`: exists without ``overwrite``, an
            input, not a predictions file, in use, ...).
        RunError: not a run directory, or no recorded data config and no ``config``.
        DataError: unreadable inputs (checked before anything is written).
    """
    from graphevent.evaluate.predictions import FORMATS, PredictionWriter
    from graphevent.utils.outdir import ReadLock
    from graphevent.utils.outfile import OutputFile
    from graphevent.utils.progress import NullProgress

    progress = progress or NullProgress()
    run_dir, out = Path(run_dir), Path(out)
    if not inputs:
        raise DataError("predict: no input files given")
    if options.batch_size < 1:
        raise ConfigError(f"--batch-size {options.batch_size}: expected an integer >= 1")
    check_reader_overrides(options.overrides)
    output = OutputFile(out, "predictions", inputs=[run_dir, *inputs, *([options.config] if options.config else [])],
                        overwrite=options.overwrite)
    output.check()  # first: an input or a file of the user's is never replaced, whatever else is wrong
    if out.suffix not in FORMATS:
        PredictionWriter(out, {})  # raises, naming the formats
    if not run_dir.is_dir():
        raise RunError(f"{run_dir}: run directory not found")
    for path in inputs:
        if not Path(path).is_file():
            raise DataError(f"{path}: input file not found")
    reading = ReadLock(run_dir, "run").acquire()
    try:
        return _predict_files(run_dir, inputs, output, options, progress)
    finally:
        reading.release()


def _predict_files(run_dir: Path, inputs: Sequence[str | Path], output: Any, options: PredictOptions,
                   progress: Any) -> PredictResult:
    """:func:`predict_files` once the options are checked and the run is locked for reading."""
    import torch

    from graphevent.data.preprocess import build_graphs
    from graphevent.evaluate.device import resolve_device
    from graphevent.evaluate.predictions import FORMATS, PredictionWriter
    from graphevent.io import open_reader
    from graphevent.nn.checkpoint import load_run

    out = output.path
    model, exp, info = load_run(run_dir, options.checkpoint)
    cfg = run_data_config(run_dir, options.config, info, options.overrides)
    device = resolve_device(options.device)
    model.to(device).eval()

    sizes = []
    for path in inputs:  # every input is opened (and checked) before anything is written
        with open_reader(path, cfg, labels_required=False) as reader:
            sizes.append(reader.n_events)
    metadata = {"run": str(run_dir.resolve()), "checkpoint": options.checkpoint, "classes": list(info.classes),
                "targets": list(cfg.reader.target_keys), "stage": exp.stage,
                "sources": [str(Path(p).resolve()) for p in inputs], "data_config": to_dict(cfg)}
    result = PredictResult(out=out, events=0, empty=0)
    first_ids = np.cumsum([0, *sizes])  # event_id of each input's first event
    torch.manual_seed(options.seed)
    progress.start(sum(sizes), f"predict {run_dir.name}")
    try:
        with output as tmp, PredictionWriter(tmp, metadata, FORMATS[out.suffix]) as writer:
            for src, (path, n_events) in enumerate(zip(inputs, sizes)):
                name = Path(path).name
                with open_reader(path, cfg, labels_required=False) as reader:
                    if not reader.has_labels:
                        result.unlabelled.append(name)
                    if reader.missing_targets:
                        result.missing_targets[name] = list(reader.missing_targets)
                    for start in range(0, n_events, cfg.chunk_size):
                        stop = min(start + cfg.chunk_size, n_events)
                        g = build_graphs(reader, str(path), start, stop, cfg)
                        writer.write(_chunk_columns(model, g, src, name, start, stop, options.batch_size, device, cfg, info,
                                                    int(first_ids[src])))
                        result.empty += int((~g.keep).sum())
                        progress.advance(stop - start)
                result.per_input[name] = n_events
                result.events += n_events
            if result.events == 0:
                raise DataError(f"predict: the inputs hold no events ({', '.join(map(str, inputs))})")
    finally:
        progress.stop()
    return result


def _chunk_columns(model, g, src: int, name: str, start: int, stop: int, batch_size: int, device, cfg, info,
                   first_id: int = 0) -> dict[str, np.ndarray]:
    """One row per event read ([start, stop) of input ``src``, whose first event has id
    ``first_id``): identity, truth, outputs."""
    n = stop - start
    kept = np.flatnonzero(g.keep)
    counts = np.zeros(n, np.int32)
    counts[kept] = g.counts
    labels = np.full(n, -1, np.int64)
    labels[kept] = g.labels
    targets = np.full((n, len(cfg.reader.target_keys)), np.nan, np.float32)
    targets[kept] = g.targets
    cols: dict[str, np.ndarray] = {
        "event_id": np.arange(first_id + start, first_id + stop, dtype=np.int64),
        "source": np.full(n, src, np.int32),
        "source_file": np.full(n, name, dtype=object),
        "index": np.arange(start, stop, dtype=np.int64),
        "n_nodes": counts,
        "label": labels,
    }
    for j, t in enumerate(cfg.reader.target_keys):
        cols[f"true_{t}"] = targets[:, j]
    outputs = predict(model, _chunk_events(g, 0, cfg.periods), batch_size, device) if len(kept) else {}
    if not outputs:  # no event with nodes in this chunk: the output columns' names from a dry run are unknown
        outputs = _empty_outputs(model, info, len(kept))
    for k, v in outputs.items():
        full = np.full(n, np.nan, np.float32)
        full[kept] = v
        cols[k] = full
    return cols


def _empty_outputs(model, info, n: int) -> dict[str, np.ndarray]:
    """Output columns (NaN) of a chunk without any scorable event, named as the model's outputs."""
    import torch
    from torch_geometric.data import Data

    probe = Data(x=torch.zeros(2, info.num_node_features), pos=torch.zeros(2, 2),
                 edge_index=torch.tensor([[1, 0], [0, 1]]), edge_attr=torch.zeros(2, 3),
                 y=torch.zeros(1, dtype=torch.long), targets=torch.zeros(1, len(info.targets)),
                 event_id=torch.zeros(1, dtype=torch.long))
    names = predict(model, probe)
    return {k: np.full(n, np.nan, np.float32) for k in names}
