"""``graphevent export``: a trained run as an ONNX or TorchScript file of its padded form.

The exported module is :func:`graphevent.nn.export.padded_module` of the run's model:
inputs ``features (B, N, F)``, ``positions (B, N, 2)``, ``mask (B, N)``, both ``B`` and
``N`` dynamic; outputs ``score_<task>`` / ``pred_<task>``. Each format is one function
in :data:`EXPORTERS`. After writing, the file is loaded back and compared with the eager
module on events of different sizes; the largest difference is returned.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from graphevent.errors import ConfigError, RunError

if TYPE_CHECKING:
    import torch

INPUT_NAMES = ["features", "positions", "mask"]


@dataclass
class ExportResult:
    """The file written, its inputs and outputs, and the check against the eager model."""

    path: Path
    format: str
    model: str
    inputs: dict[str, str]
    outputs: list[str]
    max_abs_diff: float


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


def _export_torchscript(module: torch.nn.Module, example: tuple, path: Path, meta: dict[str, Any]) -> Callable:
    import torch

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script: deprecated, still the C++ loader's format
        scripted = torch.jit.script(module)
    buffer = io.BytesIO()  # torch's file writer aborts the process when a write fails (full disk): write here
    torch.jit.save(scripted, buffer, _extra_files={"graphevent.json": json.dumps(meta)})
    path.write_bytes(buffer.getbuffer())

    def run(path: Path):
        loaded = torch.jit.load(str(path))
        return lambda f, p, m: [t.detach().numpy() for t in loaded(f, p, m)]

    return run


class _TorchvisionNotice(logging.Filter):
    """Drops torch's "torchvision is not installed. Skipping torchvision::nms" warnings: the
    ONNX exporter logs one per torchvision operator it cannot register, and graphevent's
    models use none of them."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith("torchvision is not installed")


@contextlib.contextmanager
def _without_torchvision_notice():
    """While exporting to ONNX: torch's ONNX registry logs no torchvision notices."""
    log = logging.getLogger("torch.onnx._internal.exporter._registration")
    notice = _TorchvisionNotice()
    log.addFilter(notice)
    try:
        yield
    finally:
        log.removeFilter(notice)


def _export_onnx(module: torch.nn.Module, example: tuple, path: Path, meta: dict[str, Any]) -> Callable:
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

    batch, nodes = Dim("batch"), Dim("nodes")
    set_onnx(module, True)  # ONNX has no stable sort: top-k, whose ties go to the lower index
    try:
        with warnings.catch_warnings(), _without_torchvision_notice():
            warnings.simplefilter("ignore")
            program = torch.onnx.export(
                module, example, dynamo=True, input_names=INPUT_NAMES, output_names=list(module.output_names),
                dynamic_shapes={n: {0: batch, 1: nodes} for n in INPUT_NAMES}, verbose=False,
            )
    finally:
        set_onnx(module, False)
    proto = program.model_proto
    onnx.helper.set_model_props(proto, {"graphevent": json.dumps(meta)})
    onnx.save(proto, str(path))

    def run(path: Path):
        import onnxruntime as ort

        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        return lambda f, p, m: session.run(None, {"features": f.numpy(), "positions": p.numpy(), "mask": m.numpy()})

    return run


#: format name -> exporter(module, example inputs, path, metadata) -> loader of the written file
EXPORTERS: dict[str, Callable] = {"torchscript": _export_torchscript, "onnx": _export_onnx}


def export_run(run_dir: str | Path, fmt: str, out: str | Path, checkpoint: str = "best", overwrite: bool = False) -> ExportResult:
    """Export a trained run's padded-input model to ``out``, atomically, and check it.

    Raises:
        ConfigError: unknown format, a model without padded form, missing ONNX packages.
        OutputError: ``out`` is not a file graphevent may write (an input, inside the run,
            exists without ``overwrite`` or is not an export, in use; see
            :class:`~graphevent.utils.outfile.OutputFile`).
        RunError: the run cannot be loaded, or the exported file disagrees with the eager model.
    """
    from graphevent.utils.outdir import ReadLock
    from graphevent.utils.outfile import SIGNATURE_KEY, OutputFile

    if fmt not in EXPORTERS:
        raise ConfigError(f"--format {fmt!r}: expected one of {', '.join(EXPORTERS)}")
    if not Path(run_dir).exists():
        raise RunError(f"{run_dir}: run directory not found")
    output = OutputFile(out, "export", inputs=[run_dir], overwrite=overwrite)
    output.check()  # before the seconds of loading torch and the model
    with ReadLock(run_dir, "run"):
        return _export(Path(run_dir), fmt, output, checkpoint, {SIGNATURE_KEY: "export"})


def _export(run_dir: Path, fmt: str, output: Any, checkpoint: str, signature: dict[str, str]) -> ExportResult:
    """:func:`export_run` once the options are checked and the run is locked for reading."""
    import torch

    from graphevent.nn.export import padded_module
    from graphevent.nn.checkpoint import load_run
    model, cfg, info = load_run(run_dir, checkpoint)
    module = padded_module(model)
    meta = {**signature, "run": str(run_dir.resolve()), "checkpoint": checkpoint, "model": model.name,
            "inputs": {"features": f"(B, N, {info.num_node_features}) float32: {', '.join(info.node_features)}",
                       "positions": "(B, N, 2) float32: eta, phi relative to the event centre", "mask": "(B, N) bool"},
            "outputs": list(module.output_names), "classes": list(info.classes), "targets": list(info.targets),
            "k": int(module.k)}
    k = max(int(module.k), 8)  # the largest k of the model's kNN graphs (0: none): sizes around it
    example = example_inputs(info.num_node_features, [2 * k + 3, k + 2])
    with output as tmp:
        loader = EXPORTERS[fmt](module, example, tmp, meta)
        run = loader(tmp)
        diff = 0.0
        with torch.inference_mode():
            for i, sizes in enumerate(_check_sizes(k)):
                f, p, m = example_inputs(info.num_node_features, sizes, seed=i + 1)
                for a, b in zip(run(f, p, m), module(f, p, m)):
                    diff = max(diff, float(np.abs(np.asarray(a) - b.numpy()).max()))
        if not diff <= 1e-4:
            raise RunError(f"--format {fmt}: the exported model differs from the eager one by {diff:.3g} (expected <= 1e-4); "
                           "please report this with the run's config")
    return ExportResult(path=output.path, format=fmt, model=model.name, inputs=meta["inputs"], outputs=list(module.output_names),
                        max_abs_diff=diff)
