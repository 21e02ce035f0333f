"""``graphevent export``: a trained run as an ONNX or TorchScript file for experiment software.

Three input forms (``--input``). ``image`` (the default for runs trained on images): the raw
image batch as the reader reads it from the file, ``images (B, H, W, C)`` float32 (``(B, C,
H, W)`` for ``layout: channels_first``), with the run's preprocessing inside the graph
(:func:`graphevent.nn.export.image_module`), so ONNX Runtime alone turns images into
scores. ``points`` (the default for runs on point inputs): the points a point-form reader
yields, padded, ``points (B, P, C + 2)`` float32 (channel values, eta, phi) and ``n_points
(B,)`` int64, the run's preprocessing inside (:func:`graphevent.nn.export.points_module`).
Both add an output ``bad_input`` (B,) int64. ``nodes``:
:func:`graphevent.nn.export.padded_module` of the run's model, inputs ``features (B, N, F)``,
``positions (B, N, 2)``, ``mask (B, N)``.
``B`` (and ``N``, ``P``) are dynamic; outputs ``score_<task>`` / ``pred_<task>``. The file carries
its metadata (input layout, classes, what each output means, graphevent version, dataset id,
preprocessing; :func:`onnx_properties`). Each format is one function in :data:`EXPORTERS`.
After writing, the file is loaded back and compared with the eager module on batches of
different sizes (ties at the node cap included); the largest difference is returned.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphevent.errors import ConfigError, RunError

if TYPE_CHECKING:
    import torch

#: the node-level inputs (``--input nodes``)
INPUT_NAMES = ["features", "positions", "mask"]
#: each input's dynamic leading axes, by name (the image's H, W, C are the dataset's)
DYNAMIC_AXES = {"features": ("batch", "nodes"), "positions": ("batch", "nodes"), "mask": ("batch", "nodes"),
                "images": ("batch",), "points": ("batch", "points"), "n_points": ("batch",)}


@dataclass
class ExportResult:
    """The file written, its inputs and outputs, and the check against the eager model."""

    path: Path
    format: str
    model: str
    inputs: dict[str, str]
    outputs: list[str]
    max_abs_diff: float
    input: str = "nodes"
    output_meaning: dict[str, str] = field(default_factory=dict)


def example_inputs(num_features: int, sizes: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Padded random events with ``sizes`` nodes (positions on a 0.0174 lattice, so
    equidistant neighbours occur, as in detector images)."""
    import torch

    g = torch.Generator().manual_seed(seed)
    n = max(sizes)
    feats = torch.rand(len(sizes), n, num_features, generator=g) * 3
    pos = torch.randint(-6, 7, (len(sizes), n, 2), generator=g).float() * 0.0174
    mask = torch.arange(n)[None, :] < torch.tensor(sizes)[:, None]
    return feats, pos, mask


def _check_sizes(k: int) -> list[list[int]]:
    """Batches to compare on: fewer nodes than k, about k, many; padded and unpadded."""
    return [[2 * k + 5, k + 1, 3], [1], [k], [4 * k, 2 * k, k - 1 if k > 1 else 1, 2 * k + 1]]


def _export_torchscript(module: torch.nn.Module, example: tuple, path: Path, meta: dict[str, Any],
                        input_names: list[str] = INPUT_NAMES) -> Callable:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script: deprecated, still the C++ loader's format
        scripted = torch.jit.script(module)
    buffer = io.BytesIO()  # torch's file writer aborts the process when a write fails (full disk): write here
    torch.jit.save(scripted, buffer, _extra_files={"graphevent.json": json.dumps(meta)})
    path.write_bytes(buffer.getbuffer())

    def run(path: Path):
        loaded = torch.jit.load(str(path))
        return lambda *inputs: [t.detach().numpy() for t in loaded(*inputs)]

    return run


class _ExporterNotices(logging.Filter):
    """Drops the ONNX exporter's notices that say nothing to a graphevent user: torch's
    "torchvision is not installed. Skipping torchvision::nms" (one per torchvision operator
    it cannot register; graphevent's models use none) and onnx_ir's "Attribute type is
    ambiguous because it is an empty sequence" (an empty attribute it writes as INTS, right)."""

    NOTICES = ("torchvision is not installed", "Attribute type is ambiguous because it is an empty sequence")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.NOTICES)


#: the loggers :class:`_ExporterNotices` filters
_NOTICE_LOGGERS = ("torch.onnx._internal.exporter._registration", "onnx_ir._convenience")


@contextlib.contextmanager
def _without_exporter_notices():
    """While exporting to ONNX: no torchvision or empty-attribute notices in the output."""
    notice = _ExporterNotices()
    for name in _NOTICE_LOGGERS:
        logging.getLogger(name).addFilter(notice)
    try:
        yield
    finally:
        for name in _NOTICE_LOGGERS:
            logging.getLogger(name).removeFilter(notice)


def _export_onnx(module: torch.nn.Module, example: tuple, path: Path, meta: dict[str, Any],
                 input_names: list[str] = INPUT_NAMES) -> Callable:
    try:
        import onnx
        import onnxruntime  # noqa: F401  (the check below)
        import onnxscript  # noqa: F401  (torch.onnx.export(dynamo=True) needs it)
    except ImportError as exc:
        raise ConfigError(f"--format onnx: needs {exc.name} (pip install 'graphevent[export]'); "
                          "or use --format torchscript") from None
    import torch
    from torch.export import Dim

    from graphevent.nn.export import set_onnx

    dims = {name: Dim(name) for name in ("batch", "nodes", "points")}
    dynamic = {n: {axis: dims[d] for axis, d in enumerate(DYNAMIC_AXES[n])} for n in input_names}
    set_onnx(module, True)  # ONNX has no stable sort: top-k, whose ties go to the lower index
    try:
        with warnings.catch_warnings(), _without_exporter_notices():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, example, dynamo=True, input_names=list(input_names), output_names=list(module.output_names),
                dynamic_shapes=dynamic, verbose=False,
            )
    finally:
        set_onnx(module, False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, onnx_properties(meta))
    onnx.save(proto, str(path))

    def run(path: Path):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda *inputs: session.run(None, {n: t.numpy() for n, t in zip(input_names, inputs)})

    return run


#: format name -> exporter(module, example inputs, path, metadata, input names) -> loader of the written file
EXPORTERS: dict[str, Callable] = {"torchscript": _export_torchscript, "onnx": _export_onnx}


def example_images(shape: tuple[int, int, int], thresholds: list[float], signed: list[bool], occupied: list[int],
                   seed: int = 0, channels_last: bool = True) -> torch.Tensor:
    """Sparse random images, one per entry of ``occupied`` (its number of pixel values above
    threshold, 0: an empty event), values on a few levels so that equal values meet at a
    node cap; NaN in a few empty pixels (read as 0).

    Shapes:
        -> (len(occupied), H, W, C) float32 (``channels_last``) or (len(occupied), C, H, W)
    """
    import torch

    h, w, c = shape
    rng = np.random.default_rng(seed)
    x = np.zeros((len(occupied), h * w * c), np.float32)
    thr = np.maximum(np.asarray(thresholds, np.float32), 0.0)
    for i, n in enumerate(occupied):
        flat = rng.choice(h * w * c, min(n, h * w * c), replace=False)
        levels = rng.choice(np.float32([0.5, 1.0, 2.0, 7.5]), len(flat))
        sign = np.where(np.asarray(signed)[flat % c] & (rng.random(len(flat)) < 0.5), -1.0, 1.0)
        x[i, flat] = sign * (thr[flat % c] + levels)
        empty = np.flatnonzero(x[i] == 0)
        if len(empty):
            x[i, empty[rng.integers(len(empty))]] = np.nan
    x = x.reshape(len(occupied), h, w, c)
    return torch.from_numpy(x if channels_last else np.ascontiguousarray(x.transpose(0, 3, 1, 2)))


def example_points(thresholds: list[float], signed: list[bool], sizes: list[int], seed: int = 0,
                   bad: tuple[int, ...] = ()) -> tuple[torch.Tensor, torch.Tensor]:
    """Random events of ``sizes`` points as a point-form reader yields them (0: an empty
    event), padded with NaN (ignored) to 3 rows more than the largest: half the values 1 or 2
    above the threshold's integer part, so that equal sums meet at a node cap, half at
    threshold (zeroed; a point with none above is dropped); positions uniform in ``|eta|, |phi| < 0.4``;
    a NaN value in each event of ``bad`` that has points (read as 0, flagged).

    Shapes:
        -> points (len(sizes), max(sizes) + 3, C + 2) float32, n_points (len(sizes),) int64
    """
    import torch

    rng = np.random.default_rng(seed)
    c = len(thresholds)
    x = np.full((len(sizes), max(sizes) + 3, c + 2), np.nan, np.float32)
    thr = np.asarray(thresholds, np.float32)
    for i, n in enumerate(sizes):
        levels = rng.choice(np.float32([1.0, 2.0]), (n, c)) * (rng.random((n, c)) < 0.5)
        sign = np.where(np.asarray(signed) & (rng.random((n, c)) < 0.5), -1.0, 1.0)
        base = np.maximum(thr, 0.0)
        x[i, :n, :c] = sign * np.where(levels > 0, np.floor(base) + levels, base)
        x[i, :n, c:] = rng.uniform(-0.4, 0.4, (n, 2))
        if i in bad and n:
            x[i, rng.integers(n), rng.integers(c)] = np.nan
    return torch.from_numpy(x), torch.tensor(sizes, dtype=torch.int64)


@dataclass
class ExportForm:
    """What one input form exports: the module, its inputs (names, descriptions, layout) and
    batches to trace it with and to check the written file on."""

    name: str
    module: Any
    input_names: list[str]
    inputs: dict[str, str]
    layout: dict[str, Any]
    example: tuple
    checks: list[tuple]
    preprocessing: dict[str, Any] | None = None


def _node_form(module: Any, info: Any) -> ExportForm:
    """``--input nodes``: padded node arrays (see :mod:`graphevent.nn.export`)."""
    f = info.num_node_features
    inputs = {"features": f"(B, N, {f}) float32: {', '.join(info.node_features)}",
              "positions": "(B, N, 2) float32: eta, phi relative to the event centre", "mask": "(B, N) bool"}
    layout = {"features": {"shape": ["B", "N", f], "dtype": "float32", "columns": list(info.node_features)},
              "positions": {"shape": ["B", "N", 2], "dtype": "float32", "columns": ["eta", "phi"]},
              "mask": {"shape": ["B", "N"], "dtype": "bool"}}
    k = max(int(module.k), 8)  # the largest k of the model's kNN graphs (0: none): sizes around it
    checks = [example_inputs(f, sizes, seed=i + 1) for i, sizes in enumerate(_check_sizes(k))]
    return ExportForm("nodes", module, list(INPUT_NAMES), inputs, layout, example_inputs(f, [2 * k + 3, k + 2]), checks)


def _preprocessing(data_cfg: Any, sections: tuple[str, ...], **extra: Any) -> dict[str, Any]:
    """The metadata's ``preprocessing``: the data config's ``sections`` the raw-input graph
    runs, ``extra``, and how it reads non-finite values and empty events."""
    from graphevent.config.base import to_dict

    d = to_dict(data_cfg)
    return {**{key: d[key] for key in sections}, **extra, "non_finite_values": "read as 0 (bad_input flags the event)",
            "empty_events": d["empty_events"] + (": NaN outputs" if d["empty_events"] == "skip" else "")}


def _check_sizes_raw(data_cfg: Any, k: int) -> list[list[int]]:
    """Events per batch to check a raw-input form on: empty ones, fewer than k nodes, more than the cap."""
    cap = data_cfg.graph.max_nodes or 4 * k
    return [[0, 2 * k + 3, k + 2], [cap + 9, 1, 0], [k], [3 * k, cap, 2, k + 1]]


def _image_form(model: Any, data_cfg: Any) -> ExportForm:
    """``--input image``: the raw images, the run's preprocessing inside the graph."""
    from graphevent.nn.export import image_module

    module = image_module(model, data_cfg)
    h, w, c = data_cfg.image.height, data_cfg.image.width, len(data_cfg.channels)
    last = getattr(data_cfg.reader, "layout", "channels_last") == "channels_last"
    names = [ch.name for ch in data_cfg.channels]
    key = getattr(data_cfg.reader, "image_key", None)
    shape = ["B", h, w, c] if last else ["B", c, h, w]
    axes = "(B, H, W, C)" if last else "(B, C, H, W)"
    source = f" (the file's {key!r})" if key else ""
    inputs = {"images": f"{axes} = ({', '.join(map(str, shape))}) float32{source}: channels {', '.join(names)}; "
                        "rows eta, columns phi"}
    layout = {"images": {"shape": shape, "dtype": "float32", "layout": "channels_last" if last else "channels_first",
                         "channels": names, "rows": "eta", "columns": "phi", "pixel_size": list(data_cfg.image.pixel_size),
                         "file_key": key}}
    thr, signed = [ch.threshold for ch in data_cfg.channels], [ch.signed for ch in data_cfg.channels]
    k = max(int(module.k), 8)
    checks = [(example_images((h, w, c), thr, signed, s, seed=i + 1, channels_last=last),)
              for i, s in enumerate(_check_sizes_raw(data_cfg, k))]
    example = (example_images((h, w, c), thr, signed, [2 * k + 3, k + 2], channels_last=last),)
    pre = _preprocessing(data_cfg, ("channels", "image", "graph"), layout=layout["images"]["layout"])
    return ExportForm("image", module, ["images"], inputs, layout, example, checks, pre)


def _points_form(model: Any, data_cfg: Any) -> ExportForm:
    """``--input points``: the points a point-form reader yields, padded, the run's preprocessing inside the graph."""
    from graphevent.nn.export import points_module

    module = points_module(model, data_cfg)
    names = [ch.name for ch in data_cfg.channels]
    c, fmt = len(names), data_cfg.reader.format
    inputs = {"points": f"(B, P, {c + 2}) float32: {', '.join(names)}, eta, phi of each point as the {fmt!r} reader "
                        "yields them (eta, phi relative to the event centre); rows from n_points on are padding",
              "n_points": "(B,) int64: points of each event"}
    layout = {"points": {"shape": ["B", "P", c + 2], "dtype": "float32", "columns": [*names, "eta", "phi"], "reader": fmt,
                         "padding": "rows from n_points[b] on are ignored"},
              "n_points": {"shape": ["B"], "dtype": "int64"}}
    thr, signed = [ch.threshold for ch in data_cfg.channels], [ch.signed for ch in data_cfg.channels]
    k = max(int(module.k), 8)
    checks = [example_points(thr, signed, s, seed=i + 1, bad=(1,)) for i, s in enumerate(_check_sizes_raw(data_cfg, k))]
    periods = list(data_cfg.periods) if data_cfg.periods is not None else None
    pre = _preprocessing(data_cfg, ("channels", "graph"), reader=fmt, periods=periods)
    return ExportForm("points", module, ["points", "n_points"], inputs, layout,
                      example_points(thr, signed, [2 * k + 3, k + 2]), checks, pre)


#: raw-input form (``--input``) -> its builder
RAW_FORMS = {"image": _image_form, "points": _points_form}
#: what a reader yields (``yields`` of the reader registry) -> the raw-input form that starts from it
READER_FORMS = {"images": "image", "points": "points"}
#: what ``bad_input`` holds
BAD_INPUT_MEANING = ("(B,) int64: 1 where the event's raw input held a non-finite (NaN/Inf) value: predict would "
                     "refuse this event's file under bad_values: fail; the scores treat those values as 0")


def describe_outputs(model: Any, info: Any, names: list[str]) -> dict[str, str]:
    """What each output holds, by output name: ``score_<task>`` class probabilities,
    ``pred_<task>`` a target in its unit (``[GeV]``, :func:`~graphevent.config.tasks.target_unit`)."""
    from graphevent.config.tasks import target_unit

    out = {}
    for name, task in zip(names, model.taskset.tasks):
        if task.task_type.label_target:
            out[name] = f"(B, {len(info.classes)}) softmax probabilities of classes {', '.join(info.classes)} (task {task.name})"
        else:
            unit = target_unit(task.target)
            out[name] = f"(B,) predicted {task.target}" + (f" [{unit}]" if unit else "") + f" (task {task.name})"
    return out


def onnx_properties(meta: dict[str, Any]) -> dict[str, str]:
    """ONNX ``metadata_props``: ``graphevent`` (all of ``meta`` as JSON, with the signature)
    and, each readable alone, ``graphevent_version``, ``dataset_id``, ``input``,
    ``input_layout``, ``classes``, ``outputs`` and ``preprocessing``."""
    props = {"graphevent": json.dumps(meta)}
    for key in ("graphevent_version", "dataset_id", "input"):
        if meta.get(key) is not None:
            props[key] = str(meta[key])
    for key, value in (("input_layout", meta.get("layout")), ("classes", meta.get("classes")),
                       ("outputs", meta.get("output_meaning")), ("preprocessing", meta.get("preprocessing"))):
        if value is not None:
            props[key] = json.dumps(value)
    return props


#: ``--input`` values
INPUT_FORMS = (*RAW_FORMS, "nodes")


def export_run(run_dir: str | Path, fmt: str, out: str | Path, checkpoint: str = "best", overwrite: bool = False,
               input: str | None = None) -> ExportResult:
    """Export a trained run to ``out``, atomically, and check it against the eager module.

    Args:
        input: ``image`` (the raw images a reader yields, the run's preprocessing inside the
            graph; the default for runs trained on an image dataset), ``points`` (the points a
            point-form reader yields, padded; the default for runs on point inputs) or
            ``nodes`` (padded node arrays).

    Raises:
        ConfigError: unknown format or input form, a model without padded form, missing
            ONNX packages, ``--input image`` for a run on point inputs or ``--input points``
            for a run on images.
        OutputError: ``out`` is not a file graphevent may write (an input, inside the run,
            exists without ``overwrite`` or is not an export, in use; see
            :class:`~graphevent.utils.outfile.OutputFile`).
        RunError: the run cannot be loaded, its data config is not recorded (``--input
            image`` or ``points``), or the exported file disagrees with the eager model.
    """
    from graphevent.utils.outdir import ReadLock
    from graphevent.utils.outfile import SIGNATURE_KEY, OutputFile

    if fmt not in EXPORTERS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(EXPORTERS)}")
    if input is not None and input not in INPUT_FORMS:
        raise ConfigError(f"--input {input!r}: expected one of {', '.join(INPUT_FORMS)}")
    if not Path(run_dir).exists():
        raise RunError(f"{run_dir}: run directory not found")
    output = OutputFile(out, "export", inputs=[run_dir], overwrite=overwrite)
    output.check()  # before the seconds of loading torch and the model
    with ReadLock(run_dir, "run"):
        return _export(Path(run_dir), fmt, output, checkpoint, {SIGNATURE_KEY: "export"}, input)


def _raw_config(run_dir: Path, input: str | None) -> tuple[str, Any] | None:
    """The raw-input form of the run's reader (``image`` or ``points``) and the run's data
    config, when ``input`` is that form or left out; ``None`` for the node form (``input``
    ``nodes``, or left out for a run without a recorded data config).

    Raises:
        ConfigError: ``--input image`` for a run on point inputs, ``--input points`` for a run on images.
        RunError: ``--input image`` or ``points`` and no data config recorded.
    """
    from graphevent.config.readers import get_reader_type
    from graphevent.evaluate.predict import run_data_config

    if input == "nodes":
        return None
    try:
        cfg = run_data_config(run_dir)
    except RunError:
        if input is not None:
            raise
        return None
    yields = get_reader_type(cfg.reader.format).yields
    form = READER_FORMS[yields]
    if input is not None and input != form:
        what = "images" if yields == "images" else "point inputs"
        raise ConfigError(f"--input {input}: run {run_dir.name} was trained on {what} (reader format {cfg.reader.format!r}); "
                          f"use --input {form} (its default) or --input nodes")
    return form, cfg


def _export(run_dir: Path, fmt: str, output: Any, checkpoint: str, signature: dict[str, str],
            input: str | None = None) -> ExportResult:
    """:func:`export_run` once the options are checked and the run is locked for reading."""
    import torch

    from graphevent import __version__
    from graphevent.nn.checkpoint import load_run
    from graphevent.nn.export import BAD_INPUT, padded_module

    model, cfg, info = load_run(run_dir, checkpoint)
    raw = _raw_config(run_dir, input)
    form = _node_form(padded_module(model), info) if raw is None else RAW_FORMS[raw[0]](model, raw[1])
    module = form.module
    names = list(module.output_names)
    record = run_dir / "dataset.json"
    identity = json.loads(record.read_text()).get("identity", {}) if record.is_file() else {}
    meaning = describe_outputs(model, info, names)
    if BAD_INPUT in names:
        meaning[BAD_INPUT] = BAD_INPUT_MEANING
    meta = {**signature, "graphevent_version": __version__, "run": str(run_dir.resolve()), "checkpoint": checkpoint,
            "model": model.name, "dataset_id": identity.get("dataset_id"), "input": form.name, "inputs": form.inputs,
            "layout": form.layout, "outputs": names, "output_meaning": meaning,
            "classes": list(info.classes), "targets": list(info.targets), "k": int(module.k)}
    if form.preprocessing is not None:
        meta["preprocessing"] = form.preprocessing
    with output as tmp:
        loader = EXPORTERS[fmt](module, form.example, tmp, meta, form.input_names)
        run = loader(tmp)
        diff = 0.0
        with torch.inference_mode():
            for inputs in form.checks:
                for a, b in zip(run(*inputs), module(*inputs)):
                    diff = max(diff, _max_diff(np.asarray(a), b.numpy()))
        if not diff <= 1e-4:
            raise RunError(f"--format {fmt}: the exported model differs from the eager one by {diff:.3g} (expected <= 1e-4); "
                           "please report this with the run's config")
    return ExportResult(path=output.path, format=fmt, model=model.name, inputs=form.inputs, outputs=names,
                        max_abs_diff=diff, input=form.name, output_meaning=meta["output_meaning"])


def _max_diff(a: np.ndarray, b: np.ndarray) -> float:
    """Largest ``|a - b|``; NaN (an event without nodes) must be NaN in both (else ``inf``)."""
    nan = np.isnan(a)
    if a.shape != b.shape or not np.array_equal(nan, np.isnan(b)):
        return float("inf")
    return float(np.abs(a[~nan] - b[~nan]).max(initial=0.0))
