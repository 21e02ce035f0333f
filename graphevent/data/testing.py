"""Tiny synthetic datasets for tests and examples (no physics: use ``graphevent simulate`` for that).

"Quark" jets are narrow with few hard constituents, "gluon" jets wider with more, softer
ones, so the classes are separable; ``m0`` and ``pt`` follow from the pixels.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np

PIXEL = 0.0174


def make_jet_images(n_events: int, seed: int = 0, size: int = 125, hcal_tower: int = 5) -> dict[str, np.ndarray]:
    """ML4SCI-like quark/gluon arrays: ``X_jets`` (n, size, size, 3) float32 channels-last,
    ``y`` (n,) float32 alternating 0/1, ``m0`` and ``pt`` (n,) float32."""
    rng = np.random.default_rng(seed)
    X = np.zeros((n_events, size, size, 3), np.float32)
    y = (np.arange(n_events) % 2).astype(np.float32)
    m0 = np.zeros(n_events, np.float32)
    pt = np.zeros(n_events, np.float32)
    c = (size - 1) / 2
    for i in range(n_events):
        gluon = y[i] == 1
        n_part = rng.integers(25, 45) if gluon else rng.integers(8, 18)
        width = 4.0 if gluon else 1.8
        r = np.clip(np.round(rng.normal(c, width, n_part)), 0, size - 1).astype(int)
        col = np.clip(np.round(rng.normal(c, width, n_part)), 0, size - 1).astype(int)
        e = rng.exponential(30.0 if not gluon else 12.0, n_part).astype(np.float32) + 1.0
        kind = rng.integers(0, 3, n_part)
        for ch in range(2):
            np.add.at(X[i, :, :, ch], (r[kind == ch], col[kind == ch]), e[kind == ch])
        tr, tc = r[kind == 2] // hcal_tower, col[kind == 2] // hcal_tower
        tower = np.zeros((size // hcal_tower, size // hcal_tower), np.float32)
        np.add.at(tower, (tr, tc), e[kind == 2])
        X[i, :, :, 2] = np.kron(tower, np.ones((hcal_tower, hcal_tower), np.float32)) / hcal_tower**2
        eta, phi = (r - c) * PIXEL, (col - c) * PIXEL
        px, py, pz = e * np.cos(phi), e * np.sin(phi), e * np.sinh(eta)
        E = e * np.cosh(eta)
        pt[i] = np.hypot(px.sum(), py.sum())
        m0[i] = np.sqrt(max(E.sum() ** 2 - px.sum() ** 2 - py.sum() ** 2 - pz.sum() ** 2, 0.0))
    return {"X_jets": X, "y": y, "m0": m0, "pt": pt}


def write_ml4sci_hdf5(path: str | Path, arrays: dict[str, np.ndarray], compression: str | None = "gzip") -> Path:
    """Write arrays in the ML4SCI HDF5 layout (one dataset per key)."""
    path = Path(path)
    with h5py.File(path, "w") as f:
        for k, v in arrays.items():
            kw = {"compression": compression, "chunks": (1,) + v.shape[1:]} if (compression and v.ndim == 4) else {}
            f.create_dataset(k, data=v, **kw)
    return path


def tiny_data_config(k: int = 8, **graph):
    """The data config used for tiny test datasets (ML4SCI quark/gluon layout)."""
    from graphevent.config.base import from_dict
    from graphevent.config.data import DataConfig

    return from_dict(
        DataConfig,
        {
            "name": "tiny",
            "reader": {"format": "ml4sci_hdf5", "image_key": "X_jets", "label_key": "y", "target_keys": ["m0", "pt"]},
            "classes": ["quark", "gluon"],
            "channels": [
                {"name": "tracks", "transform": "log1p"},
                {"name": "ecal", "transform": "log1p"},
                {"name": "hcal", "transform": "log1p", "upsample": 5},
            ],
            "graph": {"k": k, **graph},
            "split": {"train": 0.6, "val": 0.2, "test": 0.2, "seed": 0},
            "chunk_size": 32,
        },
        "tiny",
    )


def make_tiny_dataset(root: str | Path, n_events: int = 96, seed: int = 0, k: int = 8, workers: int = 1) -> Path:
    """Write a tiny raw HDF5 file next to ``root`` and preprocess it into ``root``."""
    from graphevent.data.preprocess import preprocess

    root = Path(root)
    raw = root.parent / f"{root.name}-raw.h5"
    write_ml4sci_hdf5(raw, make_jet_images(n_events, seed))
    preprocess([raw], tiny_data_config(k), root, workers=workers)
    return root
