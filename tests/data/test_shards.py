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


SUBPROCESS_WRITE = """
import sys
import numpy as np
from pathlib import Path
from graphevent.data.shards import write_shard
y = np.array([1, 0, 1, 0, 1], np.int64)  # the 40-byte chunk ISA-L encoded two ways in two runs
arrays = {"x": np.linspace(0, 1, 117 * 3, dtype=np.float32).reshape(117, 3), "offsets": np.array([0, 60, 117]),
          "y": y, "event_id": np.arange(5)}
junk = [np.random.default_rng(int(sys.argv[2])).bytes(n) for n in (40, 4096, 1 << 17)]  # another heap history
print(write_shard(Path(sys.argv[1]), arrays))
"""


def test_every_chunk_is_the_canonical_zlib_encoding_of_its_bytes(tmp_path):
    # Shard checksums must depend on the data alone. The encoder used before (ISA-L's one-shot
    # deflate) sometimes gave another, equally valid encoding of the same chunk in another run;
    # zlib's encoding is a function of the bytes and the level, so it is checked chunk by chunk.
    import zlib

    rng = np.random.default_rng(3)
    arrays = {"x": rng.normal(size=(20000, 3)).astype(np.float32), "y": np.array([1, 0, 1, 0, 1], np.int64),
              "offsets": np.array([0, 5000], np.int64)}
    write_shard(tmp_path / "s.h5", arrays)
    checked = 0
    with h5py.File(tmp_path / "s.h5", "r") as f:
        for name in arrays:
            ds = f[name]
            for i in range(ds.id.get_num_chunks()):
                info = ds.id.get_chunk_info(i)
                _, stored = ds.id.read_direct_chunk(info.chunk_offset)
                assert stored == zlib.compress(zlib.decompress(stored), 1), (name, i)
                checked += 1
    assert checked == 4 + 1 + 1  # x: 20,000 rows in chunks of 65,536 // 12 = 5,461 rows; y, offsets: one each


def test_same_shard_written_by_two_processes_is_byte_identical(tmp_path):
    import subprocess
    import sys

    digests = []
    for seed in (0, 1):
        out = subprocess.run([sys.executable, "-c", SUBPROCESS_WRITE, str(tmp_path / f"{seed}.h5"), str(seed)],
                             capture_output=True, text=True, check=True)
        digests.append(out.stdout.strip())
    assert digests[0] == digests[1] and len(digests[0]) == 64
    assert (tmp_path / "0.h5").read_bytes() == (tmp_path / "1.h5").read_bytes()
