"""ParquetImageReader: row-group mapping, nested-list conversion, equivalences, bad inputs."""

import re

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from io_files import H, W, known_images, make_cfg, truncate, write_h5, write_parquet

from graphevent.errors import DataError
from graphevent.io import open_reader
from graphevent.io.parquet import ParquetImageReader


def pq_cfg(**kw):
    kw.setdefault("layout", "channels_first")
    return make_cfg("e2e_parquet", image_key="X_jets", target_keys=["m0", "pt"], **kw)


@pytest.mark.parametrize("rows_per_group", [1, 3, 50])
def test_ranges_across_row_groups(tmp_path, rows_per_group):
    x = known_images(11)
    path = write_parquet(tmp_path / "qg.parquet", x, rows_per_group=rows_per_group)
    assert pq.ParquetFile(path).metadata.num_row_groups == -(-11 // rows_per_group)
    with open_reader(path, pq_cfg()) as r:
        assert isinstance(r, ParquetImageReader) and r.n_events == 11
        # ranges that start/stop inside, at and across row-group boundaries
        for start, stop in [(0, 11), (0, 1), (2, 5), (3, 6), (5, 11), (10, 11), (1, 10)]:
            c = r.read(start, stop)
            np.testing.assert_array_equal(c.images, x[start:stop])
            np.testing.assert_array_equal(c.index, np.arange(start, stop))
            np.testing.assert_array_equal(c.labels, np.arange(start, stop) % 2)
            np.testing.assert_array_equal(c.targets[:, 0], 10.0 * np.arange(start, stop))
            np.testing.assert_array_equal(c.targets[:, 1], 1000.0 + np.arange(start, stop))
    assert c.images.dtype == np.float32 and c.images.flags.c_contiguous


def test_known_pixel(tmp_path):
    path = write_parquet(tmp_path / "qg.parquet", known_images(6))
    with open_reader(path, pq_cfg()) as r:
        c = r.read(4, 6)
    # event 5, channel 2: 100*2 + 5 + 1 = 206 at ((5+2) % 8, (10+2) % 6) = (7, 0)
    assert c.images[1, 2, 7, 0] == 206.0
    assert c.images[1, 0, H - 1, W - 1] == -1.5
    assert np.count_nonzero(c.images[1]) == 4


def test_channels_last_parquet_and_hdf5_equivalent(tmp_path):
    x = known_images(5)
    first = write_parquet(tmp_path / "first.parquet", x, rows_per_group=2)
    last = write_parquet(tmp_path / "last.parquet", x, rows_per_group=1, layout="channels_last")
    h5 = write_h5(tmp_path / "same.h5", x)
    with open_reader(first, pq_cfg()) as a, open_reader(last, pq_cfg(layout="channels_last")) as b, open_reader(
        h5, make_cfg("ml4sci_hdf5", image_key="X_jets", target_keys=["m0", "pt"])
    ) as c:
        ca, cb, cc = a.read(1, 5), b.read(1, 5), c.read(1, 5)
    for other in (cb, cc):
        np.testing.assert_array_equal(ca.images, other.images)
        np.testing.assert_array_equal(ca.labels, other.labels)
        np.testing.assert_array_equal(ca.targets, other.targets)


def test_float32_and_large_list_columns(tmp_path):
    x = known_images(3)
    typ = pa.large_list(pa.list_(pa.list_(pa.float32())))
    table = pa.table({"X_jets": pa.array([e.tolist() for e in x], type=typ), "y": pa.array([0, 1, 1], pa.int64()),
                      "m0": [1.0, 2.0, 3.0], "pt": [4.0, 5.0, 6.0]})
    pq.write_table(table, tmp_path / "f.parquet", row_group_size=1)
    with open_reader(tmp_path / "f.parquet", pq_cfg()) as r:
        c = r.read(0, 3)
    np.testing.assert_array_equal(c.images, x)
    np.testing.assert_array_equal(c.labels, [0, 1, 1])


# ---- bad inputs -------------------------------------------------------------------------
def test_missing_image_column(tmp_path):
    path = write_parquet(tmp_path / "qg.parquet", known_images(2), image_key="X_jet")
    msg = "qg.parquet: key 'X_jets' not found; columns in file: 'X_jet', 'm0', 'pt', 'y'"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, pq_cfg())


def test_target_column_missing(tmp_path):
    path = write_parquet(tmp_path / "qg.parquet", known_images(2), targets={"m0": np.zeros(2)})
    with pytest.raises(DataError, match=re.escape("qg.parquet: key 'pt' not found; columns in file: 'X_jets', 'm0', 'y'")):
        open_reader(path, pq_cfg())


def test_wrong_channel_count(tmp_path):
    path = write_parquet(tmp_path / "qg.parquet", known_images(2, c=2))
    msg = "qg.parquet: key 'X_jets' of event 0 has shape (2, 8, 6); expected (3, 8, 6) (channels_first; channels tracks, ecal, hcal)"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, pq_cfg())


def test_wrong_shape_in_a_later_event(tmp_path):
    x = known_images(4).tolist()
    x[2][1] = [row[:-1] for row in x[2][1]]  # event 2, channel 1: width 5 instead of 6
    typ = pa.list_(pa.list_(pa.list_(pa.float64())))
    pq.write_table(pa.table({"X_jets": pa.array(x, type=typ), "y": [0.0, 1, 0, 1], "m0": [0.0] * 4, "pt": [0.0] * 4}),
                   tmp_path / "qg.parquet", row_group_size=1)
    with open_reader(tmp_path / "qg.parquet", pq_cfg()) as r:
        np.testing.assert_array_equal(r.read(0, 2).images, known_images(4)[:2])
        msg = "qg.parquet: key 'X_jets' of event 2 has shape (3, 8, 5..6); expected (3, 8, 6)"
        with pytest.raises(DataError, match=re.escape(msg)):
            r.read(1, 4)


def test_flat_list_column_rejected(tmp_path):
    table = pa.table({"X_jets": pa.array([[1.0, 2.0]], pa.list_(pa.float64())), "y": [0.0], "m0": [0.0], "pt": [0.0]})
    pq.write_table(table, tmp_path / "flat.parquet")
    msg = "flat.parquet: key 'X_jets' has type list<element: double>; expected nested lists of numbers of shape (3, 8, 6)"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(tmp_path / "flat.parquet", pq_cfg())


def test_label_outside_classes(tmp_path):
    path = write_parquet(tmp_path / "qg.parquet", known_images(3), labels=np.array([1, 0, 3]))
    msg = "qg.parquet: label of event 2 is 3; expected 0..1 (classes ['quark', 'gluon'])"
    with pytest.raises(DataError, match=re.escape(msg)):
        open_reader(path, pq_cfg())


def test_target_not_a_number(tmp_path):
    path = write_parquet(tmp_path / "qg.parquet", known_images(2), targets={"m0": np.zeros(2), "pt": np.array(["a", "b"])})
    with pytest.raises(DataError, match=re.escape("qg.parquet: key 'pt' has type string; expected one number per event")):
        open_reader(path, pq_cfg())


def test_missing_label_values(tmp_path):
    table = pa.table({"X_jets": pa.array([e.tolist() for e in known_images(2)]), "y": pa.array([0.0, None]),
                      "m0": [0.0, 0.0], "pt": [0.0, 0.0]})
    pq.write_table(table, tmp_path / "qg.parquet")
    with pytest.raises(DataError, match=re.escape("qg.parquet: key 'y' has 1 missing values; expected one number per event")):
        open_reader(tmp_path / "qg.parquet", pq_cfg())


def test_truncated_file(tmp_path):
    path = truncate(write_parquet(tmp_path / "qg.parquet", known_images(6)))
    with pytest.raises(DataError, match=r"^qg\.parquet: cannot read as Parquet: .*magic bytes not found"):
        open_reader(path, pq_cfg())


def test_text_file_given_as_parquet(text_file):
    path = text_file("fake.parquet")
    with pytest.raises(DataError, match=r"^fake\.parquet: cannot read as Parquet: .*magic bytes not found"):
        open_reader(path, pq_cfg())
