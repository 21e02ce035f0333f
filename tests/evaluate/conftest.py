"""Tiny trained runs (one epoch, small models) shared by the eval tests."""

from __future__ import annotations

from pathlib import Path

import pytest

MULTITASK = """
stage: supervised
name: mt
model:
  name: multitask
  encoder: masked_gt
  dim: 16
  heads: 2
  queries_per_task: 1
  head_hidden: 16
  masked_gt: {dim: 16, depth: 1, heads: 2, edge_dim: 8, k: 4, decoder_dim: 8}
tasks:
  - {name: label, type: classification}
  - {name: m0, type: regression, target: m0}
train: {epochs: 1, batch_size: 32}
"""

AUTOENCODER = """
stage: pretrain
name: ae
model: {name: edgeconv_ae, k: 4, channels: [[16]], dim: 16, num_points: 64, query_dim: 8, decoder_hidden: 32}
train: {epochs: 1, batch_size: 32}
"""


def _train(root: Path, dataset: Path, name: str, text: str) -> Path:
    from graphevent.train.run import TrainOptions, train

    cfg = root / f"{name}.yaml"
    cfg.write_text(text)
    out = root / name
    train(TrainOptions(data=dataset, out=out, config=cfg, gpus=0, progress=False))
    return out


@pytest.fixture(scope="session")
def trained_runs(tmp_path_factory, tiny_dataset) -> dict[str, Path]:
    """``{"mt": multitask run (label + m0), "ae": edgeconv_ae pretraining run}``."""
    root = tmp_path_factory.mktemp("runs")
    return {name: _train(root, tiny_dataset, name, text) for name, text in (("mt", MULTITASK), ("ae", AUTOENCODER))}
