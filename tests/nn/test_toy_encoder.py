"""Adding an encoder touches its file, its config and its test: a toy encoder, registered inside
this test and nowhere else, is pretrained with ``foldingnet_ae``, fine-tuned in ``multitask`` from
that run (``--init-from``) and exported, through the real commands. It is written once: its
``forward_padded`` is what trains and what exports."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import pytest
import torch
import yaml
from torch import Tensor, nn
from torch_geometric.data import Batch

from graphevent.errors import ConfigError
from graphevent.nn import export as nn_export
from graphevent.nn import registry
from graphevent.nn.batch import masked_mean, padded_nodes

ONNX_READY = all(importlib.util.find_spec(m) is not None for m in ("onnx", "onnxruntime", "onnxscript"))


@dataclass(frozen=True)
class ToyConfig:
    """Keyword arguments of the ``toy`` encoder.

    Args:
        dim: token size.
    """

    dim: int = 8

    def validate(self, where: str = "model") -> None:
        if self.dim < 1:
            raise ConfigError(f"{where}.dim: {self.dim} must be >= 1")


class ToyEncoder(nn.Module):
    """A linear map of each node's values and position, and the mean over the event.

    Shapes:
        batch: x (N, F), pos (N, 2) -> tokens (N, dim), pooled (B, dim)
    """

    config_class = ToyConfig

    def __init__(self, info, config: ToyConfig) -> None:
        super().__init__()
        self.config = config
        self.out_dim = config.dim
        self.embed = nn.Linear(info.num_node_features + 2, config.dim)

    @torch.jit.unused
    def forward(self, batch) -> tuple[Tensor, Tensor]:
        features, positions, mask = padded_nodes(batch)
        tokens, pooled = self.forward_padded(features, positions, mask)
        return tokens[mask], pooled

    def forward_padded(self, features: Tensor, positions: Tensor, mask: Tensor) -> tuple[Tensor, Tensor]:
        tokens = torch.tanh(self.embed(torch.cat([features, positions], dim=-1)))
        return tokens, masked_mean(tokens, mask)


@pytest.fixture
def toy(monkeypatch):
    """``toy`` registered for this test only: the registry is a copy, put back afterwards, so no
    other test sees it. Nothing is registered for export: its own padded path exports."""
    monkeypatch.setattr(registry, "_ENCODERS", dict(registry._ENCODERS))
    registry.register_encoder("toy")(ToyEncoder)
    yield "toy"


def _experiment(path, stage: str, model: dict, tasks=None) -> str:
    cfg = {"stage": stage, "model": model, "seed": 1,
           "train": {"epochs": 1, "batch_size": 16, "lr": 3e-3, "warmup_epochs": 0.5, "num_workers": 0}}
    if tasks:
        cfg["tasks"] = tasks
    path.write_text(yaml.safe_dump(cfg, sort_keys=False))
    return str(path)


def test_a_toy_encoder_pretrains_fine_tunes_and_exports(toy, tiny_dataset, tmp_path, capsys, one_torch_thread):
    from graphevent.cli.app import main
    from graphevent.data.dataset import GraphDataset
    from graphevent.nn.checkpoint import load_run
    from graphevent.nn.export import pad_events, padded_module

    assert "toy" in registry.list_encoders() and registry.autoencoder_for("toy") is None
    assert "toy" in nn_export.exportable_encoders()
    section = {"toy": {"dim": 8}}
    pre_cfg = _experiment(tmp_path / "pre.yaml", "pretrain", {"name": "foldingnet_ae", "encoder": "toy", "grid": 4, "hidden": 8, **section})
    assert main(["train", "-c", pre_cfg, "-d", str(tiny_dataset), "-o", str(tmp_path / "pre"), "--no-progress"]) == 0
    pre, _, _ = load_run(tmp_path / "pre")
    assert list(pre.encoder_modules()) == ["toy"] and isinstance(pre.encoder, ToyEncoder)

    ft_cfg = _experiment(tmp_path / "ft.yaml", "finetune",
                         {"name": "multitask", "encoders": ["toy"], "dim": 8, "heads": 2, "head_hidden": 8, **section},
                         tasks=[{"name": "label", "type": "classification"}])
    code = main(["train", "-c", ft_cfg, "-d", str(tiny_dataset), "-o", str(tmp_path / "ft"), "--init-from", str(tmp_path / "pre"),
                 "--freeze-encoder", "--no-progress"])
    assert code == 0
    assert f"--init-from {(tmp_path / 'pre').resolve()}: loaded encoder toy (2 tensors, frozen)" in capsys.readouterr().out.splitlines()
    ft, _, info = load_run(tmp_path / "ft")
    for key, value in pre.encoder.state_dict().items():  # frozen: the pretrained weights, bit for bit
        assert torch.equal(ft.encoder_modules()["toy"].state_dict()[key], value)

    # the exported form (the same code on arrays) equals predict on dataset events, padding anywhere
    events = [GraphDataset(tiny_dataset, "test")[i] for i in range(5)]
    want = ft.predict(Batch.from_data_list(events))["label"]
    got = padded_module(ft)(*pad_events(events, max_nodes=max(e.num_nodes for e in events) + 3))[0]
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)

    formats = ["torchscript", "onnx"] if ONNX_READY else ["torchscript"]
    for fmt in formats:
        out = tmp_path / f"toy.{fmt}"
        assert main(["export", str(tmp_path / "ft"), "--format", fmt, "--out", str(out)]) == 0
        assert out.is_file()


def test_multitask_reconstruction_needs_an_autoencoder_of_the_encoder(toy):
    from nn_helpers import tiny_info

    from graphevent.nn import build_model

    cfg = {"name": "multitask", "encoders": ["toy"], "dim": 8, "heads": 2, "aux_recon_weight": 0.5}
    with pytest.raises(ConfigError, match=r"^model.aux_recon_weight: encoder 'toy' has no autoencoder of its own to "
                                          r"reconstruct with; set model.aux_recon_weight: 0 or leave 'toy' out of model.encoders$"):
        build_model(cfg, tiny_info())
    assert build_model({**cfg, "aux_recon_weight": 0.0}, tiny_info()).encoder_modules()["toy"].out_dim == 8


def test_the_toy_encoder_is_gone_after_its_test():
    assert "toy" not in registry.list_encoders() and "toy" not in nn_export.exportable_encoders()
