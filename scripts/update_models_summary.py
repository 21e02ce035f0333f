"""Rewrite graphevent/nn/models/summary.json (the `graphevent models` tables for the default
inputs) and the models and encoders tables of docs/models.md, from the registries.

Run after adding or changing a model or an encoder (tests/cli/test_fast_errors.py and
tests/nn/test_registry.py fail until then):

    python scripts/update_models_summary.py
"""

import json
from pathlib import Path

from graphevent.nn.registry import SUMMARY_CACHE, registry_summary, summary_markdown, with_doc_tables

DOCS = Path(__file__).resolve().parents[1] / "docs" / "models.md"

if __name__ == "__main__":
    summary = registry_summary(packaged_only=True)
    SUMMARY_CACHE.write_text(json.dumps(summary, indent=1) + "\n")
    DOCS.write_text(with_doc_tables(DOCS.read_text(), summary_markdown(summary)))
    print(f"{SUMMARY_CACHE}: {len(summary['models'])} models, {len(summary['encoders'])} encoders; {DOCS} tables")
