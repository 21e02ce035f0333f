"""Rewrite graphevent/nn/models/summary.json: the `graphevent models` table for the default inputs.

Run after adding or changing a model (tests/cli/test_models_cli.py fails until then):

    python scripts/update_models_summary.py
"""

import json

from graphevent.nn.registry import SUMMARY_CACHE, model_summaries

if __name__ == "__main__":
    SUMMARY_CACHE.write_text(json.dumps(model_summaries(packaged_only=True), indent=1) + "\n")
    print(f"{SUMMARY_CACHE}: {len(json.loads(SUMMARY_CACHE.read_text()))} models")
