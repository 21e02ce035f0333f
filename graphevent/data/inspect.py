"""Dataset summary for ``graphevent inspect`` / ``preprocess --summary``."""

from __future__ import annotations

from pathlib import Path

from graphevent.data.info import load_manifest  # torch-free: preprocess --summary imports this
from graphevent.data.splits import SPLITS


def dataset_summary(root: str | Path) -> dict:
    """Plain-data summary of a dataset directory (from its manifest; reads no shard)."""
    m = load_manifest(root)
    return {
        "name": m.get("name", Path(root).name),
        "path": str(root),
        "n_events": m["n_events"],
        "splits": m["splits"],
        "classes": m["classes"],
        "class_counts": m["class_counts"],
        "node_mode": m["node_mode"],
        "k": m["k"],
        "node_features": m["node_features"],
        "nodes_per_event": m["nodes_per_event"],
        "nodes_per_event_by_mode": m.get("nodes_per_event_by_mode", {}),
        "edges_per_event": m["edges_per_event"],
        "skipped": m["skipped"],
        "repaired": m.get("repaired", {}),
        "inputs": [(i["name"], i["events_read"]) for i in m["inputs"]],
        "n_shards": len(m["shards"]),
    }


def summary_tables(s: dict):
    """Rich renderables (a Group of tables) for a :func:`dataset_summary`."""
    from rich.console import Group
    from rich.table import Table

    t1 = Table(title=f"Dataset {s['name']}: {s['n_events']:,} events in {s['n_shards']} shards", title_justify="left")
    t1.add_column("split")
    for c in s["classes"]:
        t1.add_column(c, justify="right")
    t1.add_column("total", justify="right")
    for sp in SPLITS:
        cc = s["class_counts"][sp]
        t1.add_row(sp, *[f"{cc[c]:,}" for c in s["classes"]], f"{s['splits'][sp]:,}")

    t2 = Table(title=f"Nodes per event (k={s['k']}, features: {', '.join(s['node_features'])})", title_justify="left")
    for col in ("node mode", "mean", "p10", "p50", "p90", "max"):
        t2.add_column(col, justify="right" if col != "node mode" else "left")

    def row(name, d, style=None):
        t2.add_row(name, f"{d['mean']:.1f}", f"{d['p10']:.0f}", f"{d['p50']:.0f}", f"{d['p90']:.0f}", f"{d['max']}", style=style)

    row(f"{s['node_mode']} (this dataset)", s["nodes_per_event"], "bold")
    for mode, d in s["nodes_per_event_by_mode"].items():
        row(mode, d)

    t3 = Table(title="Edges and bookkeeping", title_justify="left", show_header=False)
    t3.add_column("what")
    t3.add_column("value", justify="right")
    t3.add_row("edges per event (mean)", f"{s['edges_per_event']:.1f}")
    for reason, n in s["skipped"].items():
        t3.add_row(f"skipped: {reason}", f"{n:,}")
    for reason, n in s["repaired"].items():
        t3.add_row(f"repaired: {reason}", f"{n:,}")
    for name, n in s["inputs"]:
        t3.add_row(f"input {name}", f"{n:,} events read")
    return Group(t1, t2, t3)
