"""Shared fixtures: tiny datasets are generated, never committed."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "2")


@pytest.fixture
def one_torch_thread():
    """Tiny tensors: one intra-op thread avoids stalls on a busy shared machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dataset(tmp_path_factory):
    """A preprocessed 96-event synthetic quark/gluon dataset (3 channels, k=8)."""
    from graphevent.data.testing import make_tiny_dataset

    return make_tiny_dataset(tmp_path_factory.mktemp("tiny") / "ds", n_events=96, seed=0)


@pytest.fixture(scope="session")
def tiny_raw(tmp_path_factory):
    """A raw ML4SCI-like HDF5 file of 64 synthetic events."""
    from graphevent.data.testing import make_jet_images, write_ml4sci_hdf5

    return write_ml4sci_hdf5(tmp_path_factory.mktemp("raw") / "qg.h5", make_jet_images(64, seed=1))


def flip_tensor_bytes(path, n: int = 8) -> str:
    """Invert ``n`` bytes in the middle of the largest tensor's data in the torch checkpoint
    ``path`` (a zip archive), leaving its zip structure intact; returns the entry's name."""
    import struct
    import zipfile

    with zipfile.ZipFile(path) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
    with open(path, "r+b") as f:
        f.seek(entry.header_offset + 26)  # local file header: name and extra-field lengths
        name_len, extra_len = struct.unpack("<HH", f.read(4))
        at = entry.header_offset + 30 + name_len + extra_len + entry.file_size // 2
        f.seek(at)
        data = f.read(n)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))
    return entry.filename


@pytest.fixture
def flip_bytes():
    """:func:`flip_tensor_bytes`: damage a checkpoint inside a tensor's data."""
    return flip_tensor_bytes
