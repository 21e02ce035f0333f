"""Every registered reader format: its class, what it yields, the config keys it reads."""

import dataclasses
import importlib
import inspect

import pytest

from graphevent.config.data import ReaderConfig
from graphevent.config.readers import READERS, RECORDED_KEYS, get_reader_type
from graphevent.errors import ConfigError
from graphevent.io.base import Reader


def test_the_registry_holds_the_shipped_formats():
    assert sorted(READERS) == ["e2e_parquet", "ml4sci_hdf5", "particles", "root_hits", "root_image"]
    assert sorted(n for n, r in READERS.items() if r.yields == "points") == ["particles", "root_hits"]


@pytest.mark.parametrize("name", list(READERS))
def test_reader_type_names_a_reader_and_its_section(name):
    spec = READERS[name]
    module, cls_name = spec.reader.split(":")
    cls = getattr(importlib.import_module(f"graphevent.io.{module}"), cls_name)
    assert issubclass(cls, Reader) and not inspect.isabstract(cls)
    assert spec.yields in ("images", "points")
    assert issubclass(spec.config, ReaderConfig)
    # the shipped formats' keys are all in the recorded form (dataset ids hash it)
    assert {f.name for f in dataclasses.fields(spec.config)} <= set(RECORDED_KEYS)


def test_unknown_format_lists_the_registry():
    expected = "reader.format: invalid value 'jpeg'; expected one of " + ", ".join(map(repr, READERS))
    with pytest.raises(ConfigError) as exc:
        get_reader_type("jpeg")
    assert str(exc.value) == expected
    with pytest.raises(ConfigError, match=r"^data\.reader\.format: invalid value 'jpeg'; expected one of 'ml4sci_hdf5'"):
        ReaderConfig.section_for({"format": "jpeg"}, "data.reader")
