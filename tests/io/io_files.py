"""Writers of tiny input files with contents known by construction (imported by the tests).

``known_images(n, C, H, W)``: event i has, in channel c, the value ``100*c + i + 1`` at
pixel ``((i + c) % H, (2*i + c) % W)`` and ``-(i + 1) / 4`` at ``(H-1, W-1)`` in channel 0;
every other pixel is 0. Labels are ``i % 2``; targets ``m0 = 10*i``, ``pt = 1000 + i``.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from graphevent.config.base import from_dict
from graphevent.config.data import DataConfig

H, W = 8, 6
CHANNELS = ("tracks", "ecal", "hcal")


def known_images(n: int, c: int = 3, h: int = H, w: int = W) -> np.ndarray:
    """(n, C, H, W) float32, channels-first."""
    x = np.zeros((n, c, h, w), np.float32)
    for i in range(n):
        for ch in range(c):
            x[i, ch, (i + ch) % h, (2 * i + ch) % w] = 100 * ch + i + 1
        x[i, 0, h - 1, w - 1] = -(i + 1) / 4
    return x


def known_labels(n: int) -> np.ndarray:
    return np.arange(n) % 2


def known_targets(n: int) -> dict[str, np.ndarray]:
    return {"m0": 10.0 * np.arange(n), "pt": 1000.0 + np.arange(n)}


def make_cfg(fmt: str, channels=CHANNELS, height: int = H, width: int = W, classes=("quark", "gluon"), **reader) -> DataConfig:
    raw = {
        "reader": {"format": fmt, **reader},
        "classes": list(classes),
        "channels": [{"name": c} for c in channels],
        "image": {"height": height, "width": width},
    }
    return from_dict(DataConfig, raw, where="test")


def write_h5(path: Path, images_cf: np.ndarray, layout: str = "channels_last", image_key: str = "X_jets",
             labels=None, label_key: str = "y", targets=None) -> Path:
    n = len(images_cf)
    with h5py.File(path, "w") as f:
        f[image_key] = images_cf.transpose(0, 2, 3, 1) if layout == "channels_last" else images_cf
        if label_key:
            f[label_key] = known_labels(n).astype(np.float32) if labels is None else labels
        for k, v in (known_targets(n) if targets is None else targets).items():
            f[k] = v
    return path


def write_parquet(path: Path, images_cf: np.ndarray, rows_per_group: int = 1, layout: str = "channels_first",
                  labels=None, targets=None, image_key: str = "X_jets") -> Path:
    """Like the E2E files: nested lists of doubles, double labels/targets, snappy."""
    n = len(images_cf)
    imgs = images_cf if layout == "channels_first" else images_cf.transpose(0, 2, 3, 1)
    typ = pa.list_(pa.list_(pa.list_(pa.float64())))
    columns = {
        image_key: pa.array([e.astype(np.float64).tolist() for e in imgs], type=typ),
        "y": pa.array((known_labels(n) if labels is None else labels).astype(np.float64)),
    }
    for k, v in (known_targets(n) if targets is None else targets).items():
        columns[k] = pa.array(v)
    pq.write_table(pa.table(columns), path, row_group_size=rows_per_group, compression="snappy")
    return path


def truncate(path: Path, fraction: float = 0.5) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * fraction)])
    return path


def write_root_image(path: Path, images_cf: np.ndarray, per_channel: bool = False, labels=None, tree: str = "Events") -> Path:
    """TTree with ``img`` float[H][W][C] (channels-last) or one ``ch<c>`` float[H][W] per channel."""
    import uproot

    n = len(images_cf)
    data = {"y": (known_labels(n) if labels is None else labels).astype(np.int32), **known_targets(n)}
    if per_channel:
        for c in range(images_cf.shape[1]):
            data[f"ch{c}"] = images_cf[:, c]
    else:
        data["img"] = images_cf.transpose(0, 2, 3, 1)
    with uproot.recreate(path) as f:
        f.mktree(tree, {k: (v.dtype, v.shape[1:]) if v.ndim > 1 else v.dtype for k, v in data.items()})
        f[tree].extend(data)
    return path


def write_root_branches(path: Path, branches: dict, tree: str = "Events") -> Path:
    """TTree from numpy arrays and awkward (jagged) arrays."""
    import awkward as ak
    import uproot

    types = {}
    for k, v in branches.items():
        types[k] = "var * float64" if isinstance(v, ak.Array) else v.dtype
    with uproot.recreate(path) as f:
        f.mktree(tree, types)
        f[tree].extend(branches)
    return path
