"""The encoder contract, for every registered encoder; the autoencoders that compose them;
multitask's encoder list and its old form."""

from __future__ import annotations

import inspect
import warnings
from dataclasses import fields, is_dataclass, replace

import pytest
import torch
from torch import nn

from nn_helpers import SIZES, TINY, TINY_ENCODERS, build_tiny, make_batch, tiny_info
from graphevent.config.base import from_dict
from graphevent.errors import ConfigError
from graphevent.nn import build_model
from graphevent.nn.models.base import AutoencoderModel, Backbone
from graphevent.nn.reconstruction import Reconstruction
from graphevent.nn.registry import (
    ENCODER_CONTRACT, autoencoder_for, build_encoder, list_encoders, register_encoder, section_class,
)

ENCODERS = list(list_encoders())
#: the registered encoders that have an autoencoder of their own
WITH_AUTOENCODER = [n for n in ENCODERS if autoencoder_for(n) is not None]


def tiny_encoder(name: str) -> nn.Module:
    torch.manual_seed(0)
    cls = list_encoders()[name]
    return build_encoder(name, tiny_info(), from_dict(cls.config_class, TINY_ENCODERS[name], f"model.{name}"))


def test_every_registered_encoder_has_tiny_settings():
    assert sorted(TINY_ENCODERS) == ENCODERS


@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_keeps_the_contract(name):
    cls = list_encoders()[name]
    assert issubclass(cls, nn.Module) and is_dataclass(cls.config_class) and cls.encoder_name == name
    assert isinstance(cls.not_exportable, str)
    for method, lead in ENCODER_CONTRACT.items():
        params = list(inspect.signature(getattr(cls, method)).parameters)[1:]
        assert tuple(params[: len(lead)]) == lead
    assert not any(hasattr(cls, m) for m in ("decode", "recon_loss", "reconstruct"))  # nothing about decoders

    encoder = tiny_encoder(name).train()
    batch = make_batch()
    tokens, pooled = encoder(batch)
    assert tokens.shape == (sum(SIZES), encoder.out_dim) and pooled.shape == (len(SIZES), encoder.out_dim)
    assert torch.isfinite(tokens).all() and torch.isfinite(pooled).all()
    (tokens.square().mean() + pooled.square().mean()).backward()
    assert [n for n, p in encoder.named_parameters() if p.grad is None or p.grad.abs().sum() == 0] == []


@pytest.mark.parametrize("name", ENCODERS)
def test_every_encoder_is_one_backbone_with_its_keys_under_encoder(name):
    encoder = tiny_encoder(name)
    backbone = Backbone(tiny_info(), name, encoder.config)
    assert backbone.dim == encoder.out_dim
    assert sorted(backbone.state_dict()) == sorted(f"encoder.{k}" for k in encoder.state_dict())


#: the keys an autoencoder's config adds to its encoder's (decoder, masking, loss)
AUTOENCODER_KEYS = {
    "masked_gt": {"mask_ratio", "mask_mode", "mask_patches", "decoder_dim", "decoder_depth", "decoder_global", "eval_mask_seed"},
    "edgeconv": {"num_points", "query_dim", "decoder_hidden", "pos_weight", "count_weight"},
    "sparse_conv": {"bottleneck", "decoder_blocks", "occupancy_weight"},
}


@pytest.mark.parametrize("name", WITH_AUTOENCODER)
def test_an_encoder_has_a_config_of_its_own_and_its_autoencoder_adds_the_decoder(name):
    """The encoder's config holds only what the encoder reads; its autoencoder's derives from it,
    and is the encoder's section in the models that compose it (old sections keep loading)."""
    own, full = list_encoders()[name].config_class, autoencoder_for(name).config_class
    assert issubclass(full, own) and section_class(name) is full
    assert {f.name for f in fields(full)} - {f.name for f in fields(own)} == AUTOENCODER_KEYS[name]
    key = sorted(AUTOENCODER_KEYS[name])[0]
    with pytest.raises(ConfigError, match=rf"model.{name}: unknown key '{key}'; valid keys: "):
        from_dict(own, {key: 1}, f"model.{name}")
    # the decoder's settings leave the encoder alone: same weights from the same seed
    encoder = tiny_encoder(name)
    torch.manual_seed(0)
    decoder = {k: 4 for k in ("decoder_dim", "num_points", "bottleneck") if k in AUTOENCODER_KEYS[name]}
    other = build_encoder(name, tiny_info(), replace(from_dict(full, TINY_ENCODERS[name]), **decoder))
    assert encoder.state_dict().keys() == other.state_dict().keys()
    assert all(torch.equal(v, other.state_dict()[k]) for k, v in encoder.state_dict().items())


def test_encoders_without_autoencoder_of_their_own():
    assert WITH_AUTOENCODER == ENCODERS  # every packaged encoder has one
    assert {n: autoencoder_for(n).name for n in WITH_AUTOENCODER} == {
        "edgeconv": "edgeconv_ae", "masked_gt": "masked_gt_ae", "sparse_conv": "sparse_conv_ae"}
    assert autoencoder_for("nothing") is None


@pytest.mark.parametrize("name", WITH_AUTOENCODER)
def test_every_autoencoder_composes_its_encoder(name):
    model = build_tiny(autoencoder_for(name).name).train()
    assert isinstance(model, AutoencoderModel) and model.supports_pretrain
    assert list(model.encoder_modules()) == [name] and model.encoder_modules()[name] is model.encoder
    assert isinstance(model.encoder, list_encoders()[name])
    batch = make_batch()
    n, b = sum(SIZES), len(SIZES)
    tokens, pooled = model.encode(batch)
    assert tokens.shape == (n, model.dim) and pooled.shape == (b, model.dim)
    assert model.decode(tokens, pooled, batch) is not None

    torch.manual_seed(0)
    loss = model.recon_loss(batch)
    assert loss.dim() == 0 and torch.isfinite(loss)
    loss.backward()
    missing = [p for p, t in model.named_parameters() if t.grad is None or not torch.isfinite(t.grad).all() or t.grad.abs().sum() == 0]
    assert missing == []
    # target replaces batch.x as what is reconstructed
    torch.manual_seed(0)
    with torch.no_grad():
        assert model.recon_loss(batch, target=batch.x + 1.0).item() != pytest.approx(model.recon_loss(batch).item())

    model.eval()
    rec = model.reconstruct(batch)
    assert isinstance(rec, Reconstruction) and rec.num_events == b
    assert rec.pos.shape[1] == 2 and rec.values.shape[1] == 3 and rec.batch.shape[0] == rec.pos.shape[0]
    info = tiny_info()
    images = rec.to_images(info.pixel_size, info.image_shape[1:])
    assert images.shape == (b, 3, 21, 21) and torch.isfinite(images).all()


@pytest.mark.parametrize("name", WITH_AUTOENCODER)
def test_every_encoder_drops_into_multitask_with_the_pretrained_weights(name):
    """The multitask encoder has the pretraining model's encoder keys (what --init-from copies)."""
    ae = build_tiny(autoencoder_for(name).name)
    mt = build_tiny("multitask", encoders=[name])
    assert list(mt.encoder_modules()) == [name]
    mt.encoder_modules()[name].load_state_dict(ae.encoder.state_dict(), strict=True)
    assert isinstance(mt.backbones[name], Backbone)  # no aux reconstruction: no decoder
    ae.eval(), mt.eval()
    batch = make_batch()
    with torch.no_grad():
        assert torch.equal(ae.encode(batch)[1], mt.backbones[name].encode(batch)[1])


def test_multitask_takes_every_registered_encoder_at_once_with_aux_reconstruction():
    model = build_tiny("multitask", encoders=ENCODERS, aux_recon_weight=0.5).train()
    assert list(model.encoder_modules()) == ENCODERS
    assert [type(bb) for bb in model.backbones.values()] == [autoencoder_for(n) for n in ENCODERS]
    loss, logs = model.loss(make_batch(), "finetune")
    assert {f"recon_{n}" for n in ENCODERS} <= set(logs)
    loss.backward()
    assert [n for n, p in model.named_parameters() if p.grad is None] == []


def test_old_encoder_key_is_translated_with_a_deprecation_note_and_round_trips():
    old = {"name": "multitask", **TINY["multitask"], "encoder": "both"}
    with pytest.warns(FutureWarning, match=r"model.encoder: 'both' is deprecated; write model.encoders: \[masked_gt, edgeconv\]"):
        model = build_model(old, tiny_info())
    assert model.config.encoders == ("masked_gt", "edgeconv")
    cfg = model.model_config
    assert "encoder" not in cfg and cfg["encoders"] == ["masked_gt", "edgeconv"]
    assert cfg["sparse_conv"]["channels"] == [8, 12, 16]  # sections of unused encoders are kept
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = build_model(cfg, tiny_info())
    assert again.model_config == cfg
    # parameter names are unchanged: an old multitask state dict loads as is
    assert any(k.startswith("backbones.masked_gt.encoder.") for k in again.state_dict())
    again.load_state_dict(model.state_dict(), strict=True)


def test_multitask_config_errors_name_the_key_and_the_registered_encoders():
    registered = ", ".join(ENCODERS)
    with pytest.raises(ConfigError, match=rf"model.encoders: unknown encoder 'cnn'; registered encoders: {registered}$"):
        build_model({"name": "multitask", "encoders": ["cnn"]}, tiny_info())
    with pytest.raises(ConfigError, match=rf"model: unknown key 'sprase_conv'; valid keys: .*, or an encoder's section: {registered}$"):
        build_model({"name": "multitask", "sprase_conv": {}}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.sparse_conv.channels: \[8\]; expected at least 2 levels"):
        build_model({"name": "multitask", "encoders": ["sparse_conv"], "sparse_conv": {"channels": [8]}}, tiny_info())
    with pytest.raises(ConfigError, match=r"model.encoders: \['edgeconv', 'edgeconv'\]; expected a non-empty list without repeats"):
        build_model({"name": "multitask", "encoders": ["edgeconv", "edgeconv"]}, tiny_info())
    with pytest.raises(ConfigError, match=rf"model.encoder: unknown encoder 'cnn'; registered encoders: {registered}$"):
        build_encoder("cnn", tiny_info())


def test_an_encoder_breaking_the_contract_is_refused_at_registration():
    class Bad(nn.Module):
        config_class = dict

        def __init__(self, info, config):
            super().__init__()

        def forward(self, x, pos):  # the contract is forward(batch)
            return x

    with pytest.raises(TypeError, match=r"encoder 'bad': Bad.forward takes \('x', 'pos'\); the encoder contract is forward\('batch',\)"):
        register_encoder("bad")(Bad)
    with pytest.raises(TypeError, match=r"encoder 'bad': int must be an nn.Module with a config_class"):
        register_encoder("bad")(int)
    assert "bad" not in list_encoders()


@pytest.mark.parametrize("name", ["edgeconv_ae", "sparse_conv_ae"])
def test_a_loss_of_weighted_terms_is_their_sum_and_logs_each(name):
    (first, _), (second, weight) = build_tiny(name).recon_weights.items()
    w = 0.3
    model = build_tiny(name, **{weight: w}).eval()
    batch = make_batch()
    with torch.no_grad():
        terms = model.recon_terms(batch)
        loss, logs = model.loss(batch)
        assert torch.equal(loss, model.recon_loss(batch))
    assert list(logs) == ["recon", first, second]
    assert logs["recon"] == pytest.approx(terms[first].item() + w * terms[second].item(), rel=1e-6)
    assert (logs[first], logs[second]) == pytest.approx((terms[first].item(), terms[second].item()), rel=1e-6)
