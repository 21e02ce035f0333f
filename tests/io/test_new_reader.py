"""Adding a reader touches its own file, its config section and a test: this test is all three.

A toy point format (hits of one channel in an ``.npz``), registered here with its own
section, goes through the data config, the raw-data manifest and ``preprocess`` without any
other module naming it.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Any, Mapping

import numpy as np
import pytest

from graphevent.config.base import from_dict, to_dict
from graphevent.config.data import DataConfig
from graphevent.config.readers import READERS, ReaderConfig, ReaderType, register_reader_type
from graphevent.errors import ConfigError
from graphevent.io import open_reader
from graphevent.io._common import check_range, missing_key
from graphevent.io.base import EventChunk, Reader
from graphevent.io.manifest import check_inputs, describe_file, load_data_manifest


@dataclasses.dataclass(frozen=True)
class ToyHitsConfig(ReaderConfig):
    """``toy_hits``: arrays ``<prefix>eta``, ``<prefix>phi``, ``<prefix>e`` over all hits, ``<prefix>n`` hits per event."""

    prefix: str = "hit_"

    def validate(self, where: str) -> None:
        super().validate(where)
        if not self.prefix:
            raise ConfigError(f"{where}.prefix: invalid value ''; expected a non-empty array name prefix")


class ToyHitsReader(Reader):
    def __init__(self, path, cfg, labels_required: bool = True) -> None:
        super().__init__(path, cfg, labels_required)
        with np.load(self.path) as z:
            self._arrays = {k: z[k] for k in z.files}
        p = cfg.reader.prefix
        counts = self._per_event(p + "n").astype(np.int64)
        self.n_events = len(counts)
        self._counts, self._offsets = counts, np.concatenate([[0], np.cumsum(counts)])
        self.load_labels_and_targets(self._per_event)

    @classmethod
    def describe(cls, path: Path, manifest: Mapping[str, Any]) -> dict[str, tuple[tuple[int, ...], str]]:
        with np.load(path) as z:
            return {k: (z[k].shape, str(z[k].dtype)) for k in z.files}

    def _per_event(self, key: str) -> np.ndarray:
        if key not in self._arrays:
            raise missing_key(self.path, key, self._arrays)
        return self._arrays[key]

    def read(self, start: int, stop: int) -> EventChunk:
        check_range(self.n_events, start, stop)
        a, b, p = self._offsets[start], self._offsets[stop], self.cfg.reader.prefix
        return EventChunk(
            labels=self._labels[start:stop].copy(), targets=self._targets[start:stop].copy(),
            index=np.arange(start, stop, dtype=np.int64), values=self._arrays[p + "e"][a:b, None].astype(np.float32),
            eta=self._arrays[p + "eta"][a:b].astype(np.float32), phi=self._arrays[p + "phi"][a:b].astype(np.float32),
            counts=self._counts[start:stop].copy(),
        )


@pytest.fixture()
def toy_format():
    register_reader_type(ReaderType("toy_hits", ToyHitsReader, "points", ToyHitsConfig))
    yield "toy_hits"
    del READERS["toy_hits"]


def toy_data(**reader) -> dict:
    return {"name": "toy", "reader": {"format": "toy_hits", **reader}, "classes": ["a", "b"], "channels": [{"name": "e"}],
            "graph": {"k": 2}, "chunk_size": 8}


def write_toy(path: Path, n_events: int = 20) -> tuple[Path, np.ndarray]:
    rng = np.random.default_rng(0)
    counts = rng.integers(1, 6, n_events)
    hits = int(counts.sum())
    np.savez(path, my_eta=rng.normal(size=hits), my_phi=rng.normal(size=hits), my_e=rng.uniform(1, 2, hits),
             my_n=counts, y=np.arange(n_events) % 2)
    return path, counts


def test_the_data_config_builds_the_new_section(toy_format):
    cfg = from_dict(DataConfig, toy_data(prefix="my_"), "toy")
    assert type(cfg.reader) is ToyHitsConfig and cfg.reader.prefix == "my_"
    assert from_dict(DataConfig, to_dict(cfg), "recorded") == cfg  # the recorded form loads back
    assert list(to_dict(cfg)["reader"])[-1] == "prefix"  # its own keys follow the recorded ones
    with pytest.raises(ConfigError) as exc:
        from_dict(DataConfig, toy_data(image_key="X"), "toy")
    assert str(exc.value) == (
        "toy.reader.image_key: not a key of format 'toy_hits' (a key of e2e_parquet, ml4sci_hdf5, root_image); "
        "format 'toy_hits' accepts file_labels, format, label, label_key, prefix, target_keys"
    )
    with pytest.raises(ConfigError, match=re.escape("toy.reader.prefix: invalid value ''; expected a non-empty")):
        from_dict(DataConfig, toy_data(prefix=""), "toy")
    with pytest.raises(ConfigError, match=re.escape("toy.reader.prefix: not a key of format 'ml4sci_hdf5' (a key of toy_hits)")):
        from_dict(DataConfig, {**toy_data(prefix="my_"), "reader": {"format": "ml4sci_hdf5", "image_key": "X", "prefix": "my_"}}, "toy")


def test_the_new_reader_reads_describes_and_preprocesses(toy_format, tmp_path):
    from graphevent.data.preprocess import preprocess

    path, counts = write_toy(tmp_path / "toy.npz")
    cfg = from_dict(DataConfig, toy_data(prefix="my_"), "toy")
    with open_reader(path, cfg) as r:
        chunk = r.read(3, 7)
    assert isinstance(r, ToyHitsReader) and chunk.values.shape == (counts[3:7].sum(), 1)
    np.testing.assert_array_equal(chunk.labels, [1, 0, 1, 0])

    assert describe_file(path, "toy_hits")["my_n"] == ((20,), "int64")
    (tmp_path / "m.yaml").write_text("name: toy\nformat: toy_hits\nfiles: [{name: toy.npz, events: 20}]\nkeys: {my_n: {shape: [N]}}\n")
    [info] = check_inputs([path], load_data_manifest(tmp_path / "m.yaml"))
    assert info["events"] == 20 and info["checked"] == ["name", "keys"]

    manifest = preprocess([path], cfg, tmp_path / "ds")
    assert manifest["n_events"] == 20 and manifest["image"] is None and manifest["config"]["reader"]["prefix"] == "my_"
    nodes = manifest["nodes_per_event"]  # every hit (energy > 0) is a node
    assert nodes["max"] == counts.max() and nodes["mean"] == pytest.approx(counts.mean())
