"""``evaluate``: the one library call behind ``graphevent eval``.

For each run: load its checkpoint, verified (:func:`graphevent.nn.checkpoint.open_run`), check
the dataset matches it, stream the split through the model
(:func:`~graphevent.evaluate.inference.run_inference`), compute metrics with bootstrap
intervals, write its prediction file and per-run figures. Then the comparison figures,
``metrics.json`` / ``.md`` / ``.csv`` and, with ``explain``, the model-understanding
figures. Everything is written into ``OUT/.staging-PID`` and moved into place at the very
end, replacing an earlier output only then, so ``metrics.json`` appears only with a complete
evaluation. The output directory is locked while it is written, and ``--overwrite`` removes
only what an earlier ``graphevent eval`` wrote there (:mod:`graphevent.utils.outdir`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.table import Table

from graphevent.errors import ConfigError, DataError
from graphevent.evaluate.device import eval_context
from graphevent.evaluate.explain import ExplainOutput, explain_events, explain_run, pca_figure
from graphevent.evaluate.inference import EventRecord, TaskBinding, bind_tasks, check_compatible, run_inference
from graphevent.evaluate.options import EvalOptions, check_run_dirs
from graphevent.evaluate.predictions import write_predictions
from graphevent.metrics import ClassificationMetrics
from graphevent.metrics.classification import paired_auc_differences
from graphevent.metrics import plots
from graphevent.metrics.plots import file_stem
from graphevent.metrics.schema import build_document
from graphevent.metrics.tables import csv_text, markdown, rich_table
from graphevent.utils.outdir import OutputDir, ReadLock

@dataclass
class RunEvaluation:
    """Everything computed for one run (per-event arrays are compact numpy)."""

    name: str
    file_stem: str
    run_dir: Path
    bindings: list[TaskBinding]
    record: EventRecord
    metrics: dict[str, dict[str, Any]]
    info: dict[str, Any]
    explain: ExplainOutput | None = None


@dataclass
class EvalResult:
    """What :func:`evaluate` returns.

    Args:
        document: the ``metrics.json`` content.
        out_dir: the output directory (``None`` on non-main DDP ranks).
        files: files written, relative to ``out_dir``.
        warnings: things the user should know (unreadable training log lines, ...).
        is_main: rank 0 (the process that wrote the outputs).
    """

    document: dict[str, Any]
    out_dir: Path | None
    files: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    is_main: bool = True

    def table(self) -> Table:
        return rich_table(self.document)


def run_names(run_dirs: Sequence[str | Path]) -> list[str]:
    """Display names of runs: the directory name, with its parent where names collide."""
    paths = [Path(d).resolve() for d in run_dirs]
    names = [p.name for p in paths]
    for i, p in enumerate(paths):
        if names.count(p.name) > 1:
            names[i] = f"{p.parent.name}/{p.name}"
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n}#{seen[n]}")
    return out


def default_out_dir(run_dirs: Sequence[str | Path], split: str) -> Path:
    """``RUN_DIR/eval-<split>`` for one run; ``./eval-<split>`` to compare several."""
    return Path(run_dirs[0]) / f"eval-{split}" if len(run_dirs) == 1 else Path(f"eval-{split}")


def read_training_log(run_dir: Path) -> tuple[list[dict[str, Any]], list[str]]:
    """Records of ``RUN_DIR/metrics.jsonl`` and a warning per unreadable line."""
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return [], []
    records, warnings = [], []
    for i, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            warnings.append(f"{path}:{i}: not valid JSON; line skipped in the training-curve plot")
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records, warnings


class _Staging:
    """``OUT/.staging-PID``: where rank 0 writes; :meth:`commit` replaces the earlier output
    (only files graphevent listed; see :mod:`graphevent.utils.outdir`) with its content."""

    def __init__(self, out: Path, inputs: Sequence[str | Path], overwrite: bool, active: bool = True) -> None:
        self.od = OutputDir(out, "eval", inputs=inputs) if active else None
        self.overwrite = overwrite
        self.name = f".staging-{os.getpid()}"
        self.tmp = out / self.name

    def __enter__(self) -> Path:
        od = self.od
        if od is None:  # non-main DDP ranks write nothing
            return self.tmp
        od.acquire()
        try:
            if od.has_content():
                if not self.overwrite:
                    raise ConfigError(f"--out {od.path}: already exists; pass --overwrite to replace it")
                od.check_clear()  # refuse now, not after the whole evaluation
            od.start()
            od.claim(self.name)
            self.tmp.mkdir()
        except BaseException:
            od.abandon()
            raise
        return self.tmp

    def commit(self) -> None:
        od = self.od
        names = sorted(os.listdir(self.tmp))
        od.clear(keep={self.name})
        od.claim(*names)
        for name in names:
            os.replace(self.tmp / name, od.path / name)
        self.tmp.rmdir()
        od.complete()

    def __exit__(self, exc_type, exc, tb) -> None:
        if self.od is None:
            return
        if exc_type is not None:
            self.od.abandon()  # the earlier output, if any, stays as it was
        self.od.release()


def _task_info(b: TaskBinding) -> dict[str, Any]:
    return {**b.metrics.describe(), "headline": list(b.metrics.headline)}


def _prediction_columns(ev: RunEvaluation, targets: Sequence[str], dataset: Any) -> dict[str, np.ndarray]:
    ids = ev.record.event_id.array()
    cols: dict[str, np.ndarray] = {"event_id": ids, **dataset.event_sources(ids), "label": ev.record.label.array()}
    t = ev.record.targets.array().reshape(len(cols["event_id"]), -1)
    for j, name in enumerate(targets):
        cols[f"true_{name}"] = t[:, j]
    n_generic = sum(b.metrics.generic_columns for b in ev.bindings)
    for b in ev.bindings:
        for col, values in b.metrics.columns().items():
            cols[f"{b.name}_{col}" if n_generic > 1 and b.metrics.generic_columns else col] = values
    return cols


def _run_figures(ev: RunEvaluation, out: Path, training: list[dict[str, Any]]) -> list[tuple[str, Path]]:
    figs = []
    for b in ev.bindings:
        figs += b.metrics.figures(b.name, ev.name, out, ev.file_stem)
    if training:
        units = {f"val_{b.name}_{m}": u for b in ev.bindings for m, u in b.metrics.describe().get("units", {}).items()}
        fig = plots.training_figure(training, f"{ev.name}: training", units)
        figs.append((f"{ev.name}: training curves", plots.save_figure(fig, out / f"training-{ev.file_stem}.png")))
    return figs


def _comparison_figures(evals: Sequence[RunEvaluation], out: Path) -> list[tuple[str, Path]]:
    """Each task's runs overlaid, drawn by its metrics class (ROC curves, reconstruction errors)."""
    from graphevent.nn.registry import list_models

    models = list_models()
    definitions = {ev.name: models[ev.info.get("model")].recon_error_label for ev in evals
                   if ev.info.get("model") in models and models[ev.info.get("model")].recon_error_label}
    figs = []
    tasks = list(dict.fromkeys(b.name for ev in evals for b in ev.bindings))
    for task in tasks:
        members = [(ev, b) for ev in evals for b in ev.bindings if b.name == task]
        for kind in dict.fromkeys(type(b.metrics) for _, b in members):
            runs = [(ev.name, ev.metrics[task], b.metrics) for ev, b in members if type(b.metrics) is kind]
            figs += kind.comparison_figures(task, runs, out, definitions)
    return figs


def _explain_markdown(evals: Sequence[RunEvaluation], pca: Path | None, out: Path, notes: list[str]) -> str:
    lines = ["# graphevent eval --explain", "",
             "Inputs in (eta, phi) per channel, the attention weights of each task head over the nodes "
             "(mean over attention heads), and a gradient saliency map |d p(true class) / d x| (summed over "
             "node features), for the first events of each class of the split. Autoencoders: the "
             "reconstruction next to the original, channel by channel.", ""]
    for ev in evals:
        if ev.explain is None:
            continue
        lines += [f"## {ev.name}", ""]
        for title, path in ev.explain.figures:
            lines += [f"### {title}", "", f"![{title}]({path.relative_to(out).as_posix()})", ""]
    if pca is not None:
        lines += ["## Embeddings", "",
                  "PCA of the pooled event embeddings (the vector the task heads or decoder read), "
                  "coloured by true class, one panel per run: compare how pretrained and scratch encoders "
                  "organise the events.", "", f"![PCA of pooled embeddings]({pca.relative_to(out).as_posix()})", ""]
    if notes:
        lines += ["## Notes", "", *(f"- {n}" for n in notes), ""]
    return "\n".join(lines)


@dataclass
class _Setting:
    """What every run of one ``evaluate`` call shares."""

    options: EvalOptions
    data_dir: Path
    dataset: Any
    n_total: int
    ctx: Any
    progress: Any
    warnings: list[str] = field(default_factory=list)

    @property
    def positions(self) -> list[int]:
        """This process's share of the events (every world_size-th, no padding)."""
        return list(range(self.ctx.rank, self.n_total, self.ctx.world_size))


def _evaluate_run(run_dir: Path, name: str, st: _Setting) -> tuple[RunEvaluation, Any, Any]:
    """Stream the split through one run's model; metrics computed (with intervals on rank 0)."""
    from torch.utils.data import Subset
    from torch_geometric.loader import DataLoader

    from graphevent.nn.checkpoint import open_run

    opt, ctx = st.options, st.ctx
    model, cfg, info, ckpt_file, epoch = open_run(run_dir, opt.checkpoint, map_location="cpu")
    check_compatible(name, info, str(st.data_dir), st.dataset.info)
    model = model.to(ctx.device).eval()
    bindings = bind_tasks(model, cfg, info, st.dataset.info, opt.signal, name)
    for b in bindings:
        b.metrics.to(ctx.device)
    loader = DataLoader(Subset(st.dataset, st.positions), batch_size=opt.batch_size, shuffle=False, num_workers=opt.num_workers)
    torch.manual_seed(opt.seed)  # masked models draw masks during evaluation
    st.progress.start(st.n_total, f"eval {name}")
    try:
        record = run_inference(model, loader, bindings, ctx.device, lambda n: st.progress.advance(n * ctx.world_size))
    finally:
        st.progress.stop()
    record.gather()
    for b in bindings:
        b.metrics.gather()
    record.sort_by_event_id(bindings)
    metrics = {}
    for b in bindings:
        metrics[b.name] = b.metrics.compute(opt.bootstrap if ctx.is_main else 0, opt.seed, opt.confidence)
        missing = [h for h in b.metrics.headline if f"{h}_ci95" not in metrics[b.name]]
        if opt.bootstrap and ctx.is_main and missing:
            st.warnings.append(f"{name}: {b.name}: no bootstrap interval for {', '.join(missing)} (too few events or batches)")
    ev = RunEvaluation(
        name=name, file_stem=file_stem(name), run_dir=run_dir.resolve(), bindings=bindings, record=record, metrics=metrics,
        info={
            "run_dir": str(run_dir.resolve()), "checkpoint_file": str(ckpt_file.resolve()), "epoch": epoch,
            "model": str(cfg.model.get("name")), "stage": cfg.stage, "experiment": cfg.name,
            "n_events": len(record.event_id), "tasks": {b.name: _task_info(b) for b in bindings},
        },
    )
    return ev, model, info


def _write_run(ev: RunEvaluation, model: Any, info: Any, st: _Setting, tmp: Path) -> list[tuple[str, Path]]:
    """Rank 0: the run's predictions file, its figures and (``explain``) its explain figures."""
    from torch.utils.data import Subset

    opt = st.options
    write_predictions(tmp / f"predictions-{ev.file_stem}", _prediction_columns(ev, list(st.dataset.info.targets), st.dataset),
                      {"run": ev.name, "split": opt.split, "classes": list(info.classes), "tasks": ev.info["tasks"],
                       "sources": [i["path"] for i in st.dataset.manifest.get("inputs", [])]}, opt.format)
    training, bad = read_training_log(ev.run_dir)
    st.warnings.extend(bad)
    figures = _run_figures(ev, tmp, training)
    if opt.explain:
        (tmp / "explain").mkdir(exist_ok=True)
        events = Subset(st.dataset, list(range(st.n_total)))
        labels = st.dataset.labels()[:st.n_total]
        st.progress.start(explain_events(labels, len(info.classes), opt.explain_events), f"explain {ev.name}")
        try:
            ev.explain = explain_run(model, ev.bindings, info.classes, info.node_features, events, labels, opt.explain_events,
                                     opt.batch_size, st.ctx.device, tmp / "explain", ev.name, ev.file_stem, st.progress.advance)
        finally:
            st.progress.stop()
    return figures


def paired_comparisons(evals: Sequence[RunEvaluation], options: EvalOptions) -> dict[str, Any]:
    """AUC differences to a reference run, with paired bootstrap intervals, for every binary
    classification task of at least two runs (same signal class; runs evaluated on the same
    events). The reference is the first run, in the order given, that has the task.

    Returns:
        ``{task: {"reference": run, "runs": {run: {"auc_diff": ..., "auc_diff_ci95": [lo, hi]}}}}``.
    """
    ids = evals[0].record.event_id.array() if evals else None
    if len(evals) < 2 or any(not np.array_equal(ev.record.event_id.array(), ids) for ev in evals[1:]):
        return {}
    by_task: dict[str, list[tuple[str, ClassificationMetrics]]] = {}
    for ev in evals:
        for b in ev.bindings:
            if isinstance(b.metrics, ClassificationMetrics) and b.metrics.binary:
                by_task.setdefault(b.name, []).append((ev.name, b.metrics))
    out: dict[str, Any] = {}
    for task, members in by_task.items():
        ref_name, ref = members[0]
        members = [(name, m) for name, m in members if m.signal == ref.signal]
        if len(members) < 2:
            continue
        scores = {name: m.scores.array()[:, m.signal] for name, m in members}
        is_signal = ref.labels.array() == ref.signal
        runs = paired_auc_differences(scores, is_signal, ref_name, options.bootstrap, options.seed, options.confidence)
        out[task] = {"reference": ref_name, "runs": runs}
    return out


def _write_summary(evals: Sequence[RunEvaluation], document: dict[str, Any], figures: list[tuple[str, Path]],
                   st: _Setting, tmp: Path) -> None:
    """Rank 0: comparison figures, explain.md + PCA, metrics.json / .md / .csv."""
    figures = _comparison_figures(evals, tmp) + figures
    if st.options.explain:
        notes = [n for ev in evals if ev.explain for n in ev.explain.notes]
        emb = {ev.name: ev.explain.embedding for ev in evals if ev.explain and ev.explain.embedding is not None}
        pca = plots.save_figure(pca_figure(emb, st.dataset.info.classes), tmp / "explain" / "pca.png") if emb else None
        (tmp / "explain.md").write_text(_explain_markdown(evals, pca, tmp, notes))
    (tmp / "metrics.json").write_text(json.dumps(document, indent=2) + "\n")
    rel = [(title, p.relative_to(tmp).as_posix()) for title, p in figures]
    (tmp / "metrics.md").write_text(markdown(document, rel))
    (tmp / "metrics.csv").write_text(csv_text(document))


def evaluate(
    run_dirs: Sequence[str | Path],
    data_dir: str | Path,
    options: EvalOptions = EvalOptions(),
    out_dir: str | Path | None = None,
    progress: Any = None,
) -> EvalResult:
    """Evaluate trained runs on a dataset split and write tables, plots and predictions.

    Args:
        run_dirs: run directories written by ``graphevent train``.
        data_dir: dataset directory written by ``graphevent preprocess``.
        options: :class:`EvalOptions`.
        out_dir: output directory (default :func:`default_out_dir`).
        progress: a :mod:`graphevent.utils.progress` reporter (one bar per run); silent if ``None``.

    Returns:
        :class:`EvalResult` (the metrics document, files written, warnings).

    Raises:
        ConfigError: bad options, or ``out_dir`` exists without ``overwrite``.
        RunError: a run directory without checkpoints, or an unreadable checkpoint.
        DataError: a missing split, or a dataset whose classes/features differ from a run's.
    """
    from graphevent.utils.distributed import launcher_env

    check_run_dirs(run_dirs, options)
    out = Path(out_dir) if out_dir is not None else default_out_dir(run_dirs, options.split)
    layout = launcher_env()
    output = _Staging(out, [*run_dirs, data_dir], options.overwrite, active=layout is None or layout["rank"] == 0)
    if output.od is not None:  # check --out before the dataset is read (and again, locked, on entry)
        OutputDir(out, "eval", inputs=[*run_dirs, data_dir]).check_path()
    with ExitStack() as reading:  # the runs and the dataset stay as they are while they are read
        for path, what in [*((Path(r), "run") for r in run_dirs), (Path(data_dir), "--data")]:
            reading.enter_context(ReadLock(path, what))
        return _evaluate(run_dirs, data_dir, out, output, options, progress)


def _evaluate(run_dirs: Sequence[str | Path], data_dir: str | Path, out: Path, output: _Staging, options: EvalOptions,
              progress: Any) -> EvalResult:
    """:func:`evaluate` once the output is checked and the inputs are locked for reading."""
    from graphevent.data.dataset import GraphDataset
    from graphevent.utils.distributed import shutdown
    from graphevent.utils.progress import NullProgress

    dataset = GraphDataset(data_dir, options.split)
    n_total = len(dataset) if options.max_events is None else min(len(dataset), options.max_events)
    if n_total == 0:
        raise DataError(f"{data_dir}: split {options.split!r} has no events")

    ctx, owns_group = eval_context(options.device)
    st = _Setting(options=options, data_dir=Path(data_dir), dataset=dataset, n_total=n_total, ctx=ctx,
                  progress=progress if progress is not None and ctx.is_main else NullProgress())
    try:
        with output as tmp:
            evals: list[RunEvaluation] = []
            figures: list[tuple[str, Path]] = []
            for run_dir, name in zip(map(Path, run_dirs), run_names(run_dirs)):
                ev, model, info = _evaluate_run(run_dir, name, st)
                if ctx.is_main:
                    figures += _write_run(ev, model, info, st, tmp)
                evals.append(ev)
                del model
            document = build_document(
                runs={ev.name: ev.metrics for ev in evals},
                run_info={ev.name: ev.info for ev in evals},
                dataset={"path": str(Path(data_dir).resolve()), "split": options.split,
                         "classes": list(dataset.info.classes), "targets": list(dataset.info.targets), "n_events": n_total},
                checkpoint=options.checkpoint,
                bootstrap={"resamples": options.bootstrap, "confidence": options.confidence, "seed": options.seed,
                           "method": "percentile; events resampled with replacement (set_distance: batches); "
                                     "same seed for every run, so intervals of different runs are paired"},
                comparison=paired_comparisons(evals, options) if ctx.is_main else {},
            )
            if not ctx.is_main:
                return EvalResult(document=document, out_dir=None, warnings=st.warnings, is_main=False)
            _write_summary(evals, document, figures, st, tmp)
            files = sorted(p.relative_to(tmp).as_posix() for p in tmp.rglob("*") if p.is_file())
            output.commit()
    finally:
        if owns_group:
            shutdown(ctx)
    return EvalResult(document=document, out_dir=out, files=files, warnings=st.warnings)
