import h5py
import numpy as np
import pytest

from graphevent.data.shards import CHUNK_BYTES, write_shard


@pytest.mark.parametrize("n_nodes", [1, 5, 4097, 20000])
def test_shard_round_trip_through_plain_h5py(tmp_path, n_nodes):
    rng = np.random.default_rng(n_nodes)
    arrays = {
        "x": rng.normal(size=(n_nodes, 3)).astype(np.float32),
        "pos": rng.normal(size=(n_nodes, 2)).astype(np.float32),
        "nbr": rng.integers(-1, 50, size=(n_nodes, 16)).astype(np.int32),
        "offsets": np.array([0, n_nodes], np.int64),
        "y": np.array([1], np.int64),
        "targets": np.array([[3.5, -1.0]], np.float32),
        "event_id": np.array([7], np.int64),
        "source": np.zeros(1, np.int32),
        "index": np.array([7], np.int64),
    }
    digest = write_shard(tmp_path / "a.h5", arrays)
    assert write_shard(tmp_path / "b.h5", arrays) == digest  # byte-reproducible
    with h5py.File(tmp_path / "a.h5", "r") as f:
        for name, a in arrays.items():
            d = f[name]
            assert d.dtype == a.dtype and d.compression == "gzip" and d.shuffle
            assert d.chunks[0] * a.itemsize * int(np.prod(a.shape[1:])) <= max(CHUNK_BYTES, a.itemsize * int(np.prod(a.shape[1:])))
            np.testing.assert_array_equal(d[:], a)
            np.testing.assert_array_equal(d[len(a) // 2 :], a[len(a) // 2 :])  # partial reads cross chunks
