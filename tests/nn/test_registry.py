"""Building models by name from config mappings; errors name the key and the valid choices."""

from __future__ import annotations

import pytest

from nn_helpers import tiny_info
from graphevent.errors import ConfigError
from graphevent.nn import build_model
from graphevent.nn.registry import default_info, list_models, model_summaries


def test_unknown_name_lists_the_registered_models():
    with pytest.raises(ConfigError, match=rf"model.name: unknown model 'gnn'; registered models: {', '.join(list_models())}$"):
        build_model({"name": "gnn"}, tiny_info())


def test_unknown_and_invalid_kwargs_name_the_valid_ones():
    with pytest.raises(ConfigError, match=r"model: unknown key 'width'; valid keys: channels, dropout, fc_dim, k"):
        build_model({"name": "particlenet", "width": 3}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.fusion: invalid value 'sum'; expected one of 'cross_attention', 'concat', 'none'"):
        build_model({"name": "multitask", "fusion": "sum"}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.masked_gt.dim: 30 is not divisible by heads=4"):
        build_model({"name": "multitask", "masked_gt": {"dim": 30}}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.mask_ratio: 1.0; expected a fraction in \(0, 1\)"):
        build_model({"name": "masked_gt_ae", "mask_ratio": 1.0}, tiny_info())


def test_stage_checks():
    ae = build_model({"name": "edgeconv_ae"}, tiny_info())
    with pytest.raises(ConfigError, match="model 'edgeconv_ae' has no task heads; use stage pretrain"):
        ae.check_stage("finetune")
    pn = build_model({"name": "particlenet"}, tiny_info())
    with pytest.raises(ConfigError, match="model 'particlenet' has no pretraining objective"):
        pn.loss(None, "pretrain")


def test_input_sizes_come_from_the_dataset_info():
    from dataclasses import replace

    info = replace(tiny_info(), node_features=["a", "b", "c", "d", "e"], classes=["x", "y", "z"])
    model = build_model({"name": "particlenet"}, info)
    assert model.blocks[0].in_channels == 5 + 2 and model.heads["label"][-1].out_features == 3


def test_model_summaries_count_parameters():
    rows = {r["name"]: r for r in model_summaries(default_info())}
    # the built-in models, in name order (other test modules may register toy models too)
    builtin = [n for n in rows if n in {"edgeconv_ae", "masked_gt_ae", "multitask", "particlenet"}]
    assert builtin == ["edgeconv_ae", "masked_gt_ae", "multitask", "particlenet"]
    assert list(rows) == sorted(rows)
    pn = build_model({"name": "particlenet"}, default_info())
    assert rows["particlenet"]["parameters"] == sum(p.numel() for p in pn.parameters())
    assert rows["multitask"]["encoders"] == ["masked_gt", "edgeconv"]
    assert rows["masked_gt_ae"]["pretrain"] and not rows["masked_gt_ae"]["tasks"]


def test_the_docs_tables_are_generated_from_the_registries():
    """docs/models.md's models and encoders tables are those of summary.json (itself checked
    against the registries by tests/cli/test_fast_errors.py), and its details cover every model."""
    import json
    import re
    from pathlib import Path

    from graphevent.nn.registry import SUMMARY_CACHE, summary_markdown, with_doc_tables

    docs = Path(__file__).resolve().parents[2] / "docs" / "models.md"
    text = docs.read_text()
    summary = json.loads(SUMMARY_CACHE.read_text())
    assert with_doc_tables(text, summary_markdown(summary)) == text, "run: python scripts/update_models_summary.py"
    details = re.findall(r"^- `(\w+)`: ", text.split("In more detail:", 1)[1], flags=re.M)
    assert sorted(details) == sorted(r["name"] for r in summary["models"])


def test_summary_markdown_rows_by_hand():
    from graphevent.nn.registry import summary_markdown

    summary = {
        "models": [{"name": "m", "description": "A ``m``.", "pretrain": True, "tasks": False, "encoders": ["e"], "parameters": 1234}],
        "encoders": [{"name": "e", "class": "E", "description": "Enc.", "autoencoder": "", "not_exportable": "why"}],
    }
    tables = summary_markdown(summary)
    assert tables["models"].splitlines()[-1] == "| `m` | A `m`. | pretrain | `e` | 1,234 |"
    assert tables["encoders"].splitlines()[-1] == "| `e` | `E` | Enc. | - | no: why |"
