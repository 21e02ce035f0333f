"""Readers opened for inference (``labels_required=False``): labels and targets may be absent."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from graphevent.errors import DataError
from graphevent.io import open_reader

from io_files import known_images, make_cfg, write_h5


def test_hdf5_without_labels_and_targets(tmp_path):
    path = write_h5(tmp_path / "new.h5", known_images(5), label_key="", targets={"m0": np.arange(5.0)})
    cfg = make_cfg("ml4sci_hdf5", image_key="X_jets", target_keys=["m0", "pt"])
    with pytest.raises(DataError, match=r"new.h5: key 'y' not found; keys in file: 'X_jets', 'm0'"):
        open_reader(path, cfg)  # preprocess (training data) still requires them
    with open_reader(path, cfg, labels_required=False) as r:
        chunk = r.read(1, 4)
        assert not r.has_labels and r.missing_targets == ["pt"]
        np.testing.assert_array_equal(chunk.labels, [-1, -1, -1])
        np.testing.assert_array_equal(chunk.targets[:, 0], [1.0, 2.0, 3.0])
        assert np.isnan(chunk.targets[:, 1]).all()


def test_present_labels_are_still_checked(tmp_path):
    path = write_h5(tmp_path / "bad.h5", known_images(3), labels=np.array([0.0, 1.0, 5.0], np.float32))
    cfg = make_cfg("ml4sci_hdf5", image_key="X_jets", target_keys=["m0"])
    with pytest.raises(DataError, match=r"bad.h5: label of event 2 is 5; expected 0..1"):
        open_reader(path, cfg, labels_required=False)


def test_parquet_without_labels_and_file_labels(tmp_path):
    imgs = known_images(4)
    typ = pa.list_(pa.list_(pa.list_(pa.float64())))
    path = tmp_path / "unlabelled.parquet"
    pq.write_table(pa.table({"X_jets": pa.array([e.astype(np.float64).tolist() for e in imgs], type=typ),
                             "pt": pa.array([1.0, 2.0, 3.0, 4.0])}), path)
    cfg = make_cfg("e2e_parquet", image_key="X_jets", layout="channels_first", target_keys=["m0", "pt"])
    with open_reader(path, cfg, labels_required=False) as r:
        chunk = r.read(0, 4)
        assert not r.has_labels and r.missing_targets == ["m0"]
        np.testing.assert_array_equal(chunk.labels, -1)
        np.testing.assert_array_equal(chunk.targets[:, 1], [1, 2, 3, 4])
        np.testing.assert_array_equal(chunk.images, imgs)
    by_name = make_cfg("e2e_parquet", image_key="X_jets", layout="channels_first", file_labels={"Quark*": 0, "Gluon*": 1})
    with pytest.raises(DataError, match="unlabelled.parquet: file name matches no reader.file_labels pattern"):
        open_reader(path, by_name)
    with open_reader(path, by_name, labels_required=False) as r:
        assert not r.has_labels and (r.read(0, 2).labels == -1).all()
