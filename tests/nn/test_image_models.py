"""The sparse-convolution autoencoder and the ResNet-15 image baseline: fitting, reconstruction, images."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch_geometric.data import Batch, Data

from nn_helpers import build_tiny, make_batch, tiny_info
from test_models import TASKS
from test_training import _fit
from graphevent.data.info import DatasetInfo
from graphevent.data.transforms.image_to_points import ImageToPoints
from graphevent.nn import build_model
from graphevent.nn.batch import padded_nodes
from graphevent.nn.layers.pixels import dense_images


def test_sparse_conv_autoencoder_overfits_one_batch_and_reconstructs_its_pixels():
    model = build_tiny("sparse_conv_ae").train()
    batch = make_batch()
    first, last = _fit(model, lambda: model.recon_loss(batch), 100.0, 400, lr=1e-2)
    assert last * 100 <= first
    model.eval()
    rec = model.reconstruct(batch)
    info = tiny_info()
    images = rec.to_images(info.pixel_size, info.image_shape[1:])
    true = dense_images(batch.x, batch.pos, batch.batch, 3, info.pixel_size, info.image_shape[1:])
    # the generated occupied pixels are the event's occupied pixels (decoded, not copied)
    assert torch.equal(images.abs().sum(1) > 0, true.abs().sum(1) > 0)
    occupied = (true.abs().sum(1, keepdim=True) > 0).expand_as(true)
    assert (images - true)[occupied].abs().mean() < 0.1 * true[occupied].abs().mean() + 0.02


def test_sparse_conv_encoder_needs_a_pixel_size_on_point_datasets():
    from graphevent.errors import ConfigError

    info = DatasetInfo(node_features=["a", "b", "c"], classes=["q", "g"])
    model = build_model({"name": "sparse_conv_ae", "channels": [4, 4]}, info)
    with pytest.raises(ConfigError, match=r"^model.pixel_size: the dataset has no image geometry \(pixel_size\) and none is set"):
        model.encode(make_batch())
    with_size = build_model({"name": "sparse_conv_ae", "channels": [4, 4], "pixel_size": [0.1, 0.1]}, info)
    tokens, pooled = with_size.encode(make_batch())
    assert tokens.shape == (75, 64) and pooled.shape == (3, 64)


def _fixture_events():
    """Three 3-channel 15x15 images and their union nodes without collapse, as a PyG batch."""
    rng = np.random.default_rng(1)
    images = (rng.random((3, 3, 15, 15)) * (rng.random((3, 3, 15, 15)) < 0.25)).astype(np.float32)
    chunk = ImageToPoints([0.0, 0.0, 0.0], [1, 1, 5], (0.0174, 0.0174), mode="union", collapse=False)(images)
    offsets = chunk.offsets
    events = [
        Data(x=torch.from_numpy(chunk.values[s:t]), pos=torch.from_numpy(chunk.pos[s:t]), y=torch.tensor([i % 2]),
             targets=torch.tensor([[50.0, 200.0]]), event_id=torch.tensor([i]))
        for i, (s, t) in enumerate(zip(offsets[:-1], offsets[1:]))
    ]
    return torch.from_numpy(images), Batch.from_data_list(events)


def test_resnet15_rebuilds_the_original_images_from_union_nodes():
    images, batch = _fixture_events()
    info = DatasetInfo(node_features=["tracks", "ecal", "hcal"], classes=["quark", "gluon"],
                       feature_stats={f: {"mean": 0.1, "std": 0.5} for f in ("tracks", "ecal", "hcal")},
                       pixel_size=(0.0174, 0.0174), image_shape=(3, 15, 15))
    model = build_model({"name": "resnet15", "fmaps": [4, 8], "nblocks": 1}, info)
    rebuilt = model.images(*padded_nodes(batch))
    assert rebuilt.shape == (3, 3, 15, 15) and rebuilt.device == batch.x.device
    assert torch.equal(rebuilt * 0.5, images)  # values / std: empty pixels stay zero
    tokens, pooled = model.encode(batch)
    assert tokens.shape == (batch.num_nodes, 8) and pooled.shape == (3, 8)


def test_resnet15_overfits_a_labelled_batch():
    model = build_tiny("resnet15", tasks=TASKS).train()
    batch = make_batch()
    first, last = _fit(model, lambda: model.loss(batch, "supervised")[0], 10.0, 400)
    assert last * 10 <= first
    assert torch.equal(model.predict(batch)["label"].argmax(1), batch.y)


def test_sparse_conv_algorithms_give_the_same_model_outputs_with_the_same_weights():
    gather = build_tiny("sparse_conv_ae", conv_algorithm="gather").eval()
    rules = build_tiny("sparse_conv_ae", conv_algorithm="rules").eval()
    rules.load_state_dict(gather.state_dict(), strict=True)
    batch = make_batch()
    with torch.no_grad():
        for a, b in zip(gather.encode(batch), rules.encode(batch)):
            torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5)
        torch.testing.assert_close(gather.recon_loss(batch), rules.recon_loss(batch), rtol=1e-5, atol=1e-6)
