"""Every registered reader format: its class, what it yields, the config keys it reads."""

import dataclasses
import importlib

import pytest

from graphevent.config.data import ReaderConfig
from graphevent.config.readers import READERS, get_reader_type
from graphevent.errors import ConfigError
from graphevent.io.base import Reader
from graphevent.io.manifest import FORMATS


def test_the_registry_holds_the_shipped_formats():
    assert sorted(READERS) == ["e2e_parquet", "ml4sci_hdf5", "particles", "root_hits", "root_image"]
    assert FORMATS == tuple(READERS)  # the raw-data manifest accepts exactly the registered formats
    assert sorted(n for n, r in READERS.items() if r.yields == "points") == ["particles", "root_hits"]


@pytest.mark.parametrize("name", list(READERS))
def test_reader_type_names_a_reader_and_its_keys(name):
    spec = READERS[name]
    module, cls_name = spec.reader.split(":")
    cls = getattr(importlib.import_module(f"graphevent.io.{module}"), cls_name)
    assert issubclass(cls, Reader)
    assert spec.yields in ("images", "points")
    fields = {f.name for f in dataclasses.fields(ReaderConfig)}
    assert set(spec.keys) <= fields


def test_unknown_format_lists_the_registry():
    expected = "reader.format: invalid value 'jpeg'; expected one of " + ", ".join(map(repr, READERS))
    with pytest.raises(ConfigError) as exc:
        get_reader_type("jpeg")
    assert str(exc.value) == expected
    with pytest.raises(ConfigError, match=r"^data\.reader\.format: invalid value 'jpeg'; expected one of 'ml4sci_hdf5'"):
        ReaderConfig(format="jpeg").validate("data.reader")
