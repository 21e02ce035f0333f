"""Tables of a ``metrics.json`` document: rich (terminal), Markdown and CSV.

Markdown tables put runs as rows; the terminal puts them as columns, one table per task, so
several runs fit 80 columns.
The terminal table shows each task's headline figures with their 95 % intervals; the
Markdown file adds every scalar metric (per-class AUCs, per-channel errors) and the
confusion matrices. The CSV is long-form, one metric per line:
``run,task,metric,value,ci95_low,ci95_high,unit`` (``inf`` for infinite rejection, empty when
undefined; ``unit`` e.g. ``GeV`` for a regression MAE, empty when unitless or unknown; confusion matrices are in the JSON and Markdown only).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

from rich.console import Group
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from graphevent.config.tasks import TASK_TYPES
from graphevent.metrics.schema import decode_value

#: table labels: each task type's own (:attr:`TaskType.labels <graphevent.config.tasks.TaskType>`)
#: plus a pretraining run's reconstruction metrics.
LABELS = {
    **{name: label for t in TASK_TYPES.values() for name, label in t.labels},
    "recon_error_mean": "recon. error",
    "set_distance": "set distance",
}


def metric_label(name: str, short: bool = False, unit: str | None = None) -> str:
    """Human label: ``rejection_at_0.3`` -> ``1/εB @ εS=0.3`` (``1/εB @ 0.3`` if ``short``);
    with a ``unit``: ``mae`` -> ``MAE [GeV]``."""
    if name.startswith("rejection_at_"):
        eff = name[len("rejection_at_"):]
        return f"1/εB @ {eff}" if short else f"1/εB @ εS={eff}"
    if name.startswith("rejection_") and "_at_" in name:  # rejection_<background>_at_<eff> (multi-class)
        background, eff = name[len("rejection_"):].rsplit("_at_", 1)
        return f"1/εB({background}) @ {eff}" if short else f"1/εB({background}) @ εS={eff}"
    label = LABELS.get(name, name)
    return f"{label} [{unit}]" if unit else label


def metric_unit(doc: dict[str, Any], task: str, name: str) -> str | None:
    """The unit of metric ``name`` of ``task`` as the runs record it (``run_info.RUN.tasks.TASK.units``);
    ``None`` when unitless, unknown, or when the runs disagree."""
    units = {ri["tasks"][task].get("units", {}).get(name) for ri in doc["run_info"].values() if task in ri["tasks"]}
    return units.pop() if len(units) == 1 else None


def format_value(value: Any, digits: int = 4) -> str:
    """``0.91234`` -> ``0.9123``; ``"inf"`` -> ``∞``; ``None`` -> ``n/a``."""
    v = decode_value(value)
    if v is None:
        return "n/a"
    if v == float("inf"):
        return "∞"
    if v == float("-inf"):
        return "-∞"
    return f"{v:.{digits}g}"


def format_interval(interval: list | None, digits: int = 4) -> str:
    """``[0.91, 0.93]`` -> ``"[0.91, 0.93]"``; ``None`` -> ``""``."""
    if not interval:
        return ""
    return f"[{format_value(interval[0], digits)}, {format_value(interval[1], digits)}]"


def _columns(doc: dict[str, Any], full: bool) -> list[tuple[str, str]]:
    """(task, metric) columns in first-seen order over all runs."""
    cols: list[tuple[str, str]] = []
    for run, tasks in doc["runs"].items():
        for task, metrics in tasks.items():
            names = doc["run_info"][run]["tasks"][task]["headline"]
            if full:
                names = [*names, *(m for m in metrics if m not in names and not m.endswith("_ci95") and m != "confusion_matrix")]
            for name in names:
                if (task, name) not in cols:
                    cols.append((task, name))
    return cols


def _caption(doc: dict[str, Any]) -> str:
    ds, bs = doc["dataset"], doc["bootstrap"]
    text = f"{ds['split']} split of {ds['path']} ({ds['n_events']} events), {doc['checkpoint']} checkpoint"
    if bs["resamples"]:
        text += f"; \\[low, high]: {bs['confidence']:.0%} bootstrap interval ({bs['resamples']} resamples)"
    if any(name.startswith("rejection_") for _, name in _columns(doc, full=False)):
        text += "; 1/εB @ x: background rejection at signal efficiency x"
    return text


def rich_table(doc: dict[str, Any]) -> Table | Group:
    """The terminal table.

    One run: one row per (task, metric) with value and interval. Several runs: one table
    per task, metrics as rows and runs as columns, with the paired AUC difference of
    binary classification tasks (fits 80 columns up to about four runs).
    """
    cols = _columns(doc, full=False)
    if len(doc["runs"]) == 1:
        run, tasks = next(iter(doc["runs"].items()))
        table = Table(title=f"graphevent eval: {escape(run)}")
        for header, justify in (("task", "left"), ("metric", "left"), ("value", "right"), ("95% interval", "right")):
            table.add_column(header, justify=justify)
        previous = None
        for task, name in cols:
            metrics = tasks[task]
            table.add_row(escape(task) if task != previous else "", metric_label(name, True, metric_unit(doc, task, name)), format_value(metrics[name]),
                          escape(format_interval(metrics.get(f"{name}_ci95"))), end_section=False)
            previous = task
        # the caption below the table, wrapped at the terminal's width rather than the table's
        return Group(table, Text(_caption(doc).replace("\\[", "["), style="dim"))
    return Group(*(_task_comparison(doc, task, [n for t, n in cols if t == task])
                   for task in dict.fromkeys(t for t, _ in cols)), Text(_caption(doc).replace("\\[", "["), style="dim"))


def _task_comparison(doc: dict[str, Any], task: str, names: list[str]) -> Table:
    """One task of several runs: its headline metrics as rows, runs as columns (value over
    its interval), and for binary classification the paired AUC difference to the reference
    run. Columns grow with runs, not metrics: four runs fit 80 columns."""
    runs = [run for run, tasks in doc["runs"].items() if task in tasks]
    table = Table(title=f"graphevent eval: {escape(task)}", title_justify="left", show_lines=True)
    table.add_column("metric", no_wrap=True)
    for run in runs:
        table.add_column(escape(run), justify="right", overflow="fold")
    for name in names:
        cells = []
        for run in runs:
            metrics = doc["runs"][run][task]
            if name not in metrics:
                cells.append("")
                continue
            ci = escape(format_interval(metrics.get(f"{name}_ci95"), digits=3).replace(", ", ","))
            cells.append(format_value(metrics[name]) + (f"\n[dim]{ci}[/dim]" if ci else ""))
        table.add_row(metric_label(name, True, metric_unit(doc, task, name)), *cells)
    comp = doc.get("comparison", {}).get(task)
    if comp:
        cells = []
        for run in runs:
            d = comp["runs"].get(run)
            if run == comp["reference"]:
                cells.append("[dim]reference[/dim]")
            elif d is None:
                cells.append("")
            else:
                ci = escape(format_interval(d.get("auc_diff_ci95"), digits=2).replace(", ", ","))
                cells.append(f"{format_value(d['auc_diff'], 3):s}" + (f"\n[dim]{ci}[/dim]" if ci else ""))
        table.add_row("ΔAUC paired", *cells)
        table.caption = (f"ΔAUC paired: AUC minus that of {escape(comp['reference'])} on the same resampled events; "
                         "an interval that excludes 0 means the runs differ")
    return table


def markdown(doc: dict[str, Any], figures: list[tuple[str, str]] | None = None) -> str:
    """``metrics.md``: one table per task (runs as rows, every scalar metric), confusion
    matrices, conventions, and links to ``figures`` given as ``(title, relative path)``."""
    ds, bs = doc["dataset"], doc["bootstrap"]
    lines = [
        "# graphevent eval",
        "",
        f"- dataset: `{ds['path']}`, split `{ds['split']}`, {ds['n_events']} events",
        f"- checkpoint: `{doc['checkpoint']}`",
        f"- intervals: {bs['confidence']:.0%} percentile bootstrap, {bs['resamples']} resamples of the events (seed {bs['seed']})"
        if bs["resamples"] else "- intervals: none (`--bootstrap 0`)",
        "- 1/εB @ εS=x: background rejection at signal efficiency x, εB linearly interpolated between the "
        "two ROC points around x; ∞ means no background event passes that cut",
        "- resol. of const.: the resolution of a constant prediction (the mean true value), the baseline "
        "a model's resolution must beat",
        "",
    ]
    all_cols = _columns(doc, full=True)
    for task in dict.fromkeys(t for t, _ in all_cols):
        names = [n for t, n in all_cols if t == task]
        kinds = {ri["tasks"][task]["kind"] for ri in doc["run_info"].values() if task in ri["tasks"]}
        details = []
        for ri in doc["run_info"].values():
            tinfo = ri["tasks"].get(task, {})
            if "signal" in tinfo:
                details.append(f"signal class `{tinfo['signal']}`")
            if "target" in tinfo:
                details.append(f"target `{tinfo['target']}`")
        detail = ", ".join(dict.fromkeys(details))
        lines += [f"## {task} ({', '.join(sorted(kinds))}{', ' + detail if detail else ''})", ""]
        lines.append("| run | " + " | ".join(metric_label(n, unit=metric_unit(doc, task, n)) for n in names) + " |")
        lines.append("|---|" + "---:|" * len(names))
        for run, tasks in doc["runs"].items():
            metrics = tasks.get(task)
            if metrics is None:
                continue
            cells = []
            for n in names:
                if n not in metrics:
                    cells.append("")
                    continue
                ci = format_interval(metrics.get(f"{n}_ci95"))
                cells.append(format_value(metrics[n]) + (f" {ci}" if ci else ""))
            lines.append(f"| {run} | " + " | ".join(cells) + " |")
        lines.append("")
        for run, tasks in doc["runs"].items():
            cm = tasks.get(task, {}).get("confusion_matrix")
            if cm is None:
                continue
            classes = doc["run_info"][run]["tasks"][task].get("classes", [str(i) for i in range(len(cm))])
            lines += [f"Confusion matrix, {run} (rows: true class, columns: predicted):", ""]
            lines.append("| true \\ predicted | " + " | ".join(classes) + " |")
            lines.append("|---|" + "---:|" * len(classes))
            lines += [f"| {c} | " + " | ".join(str(v) for v in row) + " |" for c, row in zip(classes, cm)]
            lines.append("")
    for task, comp in doc.get("comparison", {}).items():
        lines += [f"## {task}: AUC difference to `{comp['reference']}` (paired bootstrap)", "",
                  "Every resample draws the same test events for all runs, so the interval is that of the "
                  "difference itself; an interval that excludes 0 means the runs differ.", "",
                  "| run | AUC - AUC(reference) |", "|---|---:|"]
        for run, d in comp["runs"].items():
            ci = format_interval(d.get("auc_diff_ci95"))
            lines.append(f"| {run} | {format_value(d['auc_diff'])}{' ' + ci if ci else ''} |")
        lines.append("")
    if figures:
        lines += ["## Figures", ""]
        lines += [f"![{title}]({path})" for title, path in figures]
        lines.append("")
    return "\n".join(lines)


def csv_text(doc: dict[str, Any]) -> str:
    """Long-form CSV: ``run,task,metric,value,ci95_low,ci95_high,unit`` (``unit`` empty when unitless or unknown)."""

    def cell(v: Any) -> str:
        d = decode_value(v)
        if d is None:
            return ""
        if math.isinf(d):
            return "inf" if d > 0 else "-inf"
        return f"{d:.10g}"

    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["run", "task", "metric", "value", "ci95_low", "ci95_high", "unit"])
    for run, tasks in doc["runs"].items():
        for task, metrics in tasks.items():
            for name, value in metrics.items():
                if name.endswith("_ci95") or name == "confusion_matrix":
                    continue
                ci = metrics.get(f"{name}_ci95") or [None, None]
                unit = doc["run_info"][run]["tasks"][task].get("units", {}).get(name, "")
                writer.writerow([run, task, name, cell(value), cell(ci[0]), cell(ci[1]), unit])
    for task, comp in doc.get("comparison", {}).items():
        for run, d in comp["runs"].items():
            ci = d.get("auc_diff_ci95") or [None, None]
            writer.writerow([run, task, f"auc_diff_vs_{comp['reference']}", cell(d["auc_diff"]), cell(ci[0]), cell(ci[1]), ""])
    return out.getvalue()
