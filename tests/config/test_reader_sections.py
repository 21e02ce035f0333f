"""Each reader format owns its ``reader:`` section; sections are recorded in the form dataset ids hash."""

import re
from pathlib import Path

import pytest

from graphevent.config.base import from_dict, to_dict
from graphevent.config.data import DataConfig, load_data_config
from graphevent.config.readers import READERS, RECORDED_KEYS, ImageArrayConfig, ParticlesConfig, RootHitsConfig
from graphevent.errors import ConfigError

SHIPPED = sorted((Path(__file__).parents[2] / "graphevent" / "configs" / "data").glob("*.yaml"))
HDF5_KEYS = "file_labels, format, image_key, label, label_key, layout, target_keys"


def data(reader: dict, **extra) -> dict:
    return {"reader": reader, "classes": ["quark", "gluon"], "channels": [{"name": "e"}], **extra}


def test_the_section_is_the_class_of_its_format():
    cfg = from_dict(DataConfig, data({"format": "ml4sci_hdf5", "image_key": "X"}), "d")
    assert type(cfg.reader) is ImageArrayConfig and cfg.reader.image_key == "X" and cfg.reader.layout == "channels_last"
    cfg = from_dict(DataConfig, data({"format": "particles", "label": 1}), "d")
    assert type(cfg.reader) is ParticlesConfig and cfg.reader.particles_key == "X" and cfg.reader.label == 1
    hits = {"format": "root_hits", "channel_keys": ["e"], "eta_key": "eta", "phi_key": "phi"}
    assert type(from_dict(DataConfig, data(hits), "d").reader) is RootHitsConfig


@pytest.mark.parametrize(
    "reader, message",
    [
        ({"format": "ml4sci_hdf5", "image_key": "X", "tree": "Events"},
         f"d.reader.tree: not a key of format 'ml4sci_hdf5' (a key of root_hits, root_image); format 'ml4sci_hdf5' accepts {HDF5_KEYS}"),
        ({"format": "ml4sci_hdf5", "image_key": "X", "colour": "red"},
         f"d.reader.colour: not a key of format 'ml4sci_hdf5' (no format reads it); format 'ml4sci_hdf5' accepts {HDF5_KEYS}"),
        ({"format": "particles", "image_key": "X"},
         "d.reader.image_key: not a key of format 'particles' (a key of e2e_parquet, ml4sci_hdf5, root_image); "
         "format 'particles' accepts file_labels, format, label, label_key, particles_key, target_keys"),
        ({"format": "root_hits", "channel_keys": ["e"], "eta_key": "eta", "phi_key": "phi", "layout": "channels_first"},
         "d.reader.layout: not a key of format 'root_hits' (a key of e2e_parquet, ml4sci_hdf5, root_image); format 'root_hits' "
         "accepts channel_eta_keys, channel_keys, channel_phi_keys, eta_key, file_labels, format, label, label_key, phi_key, "
         "target_keys, tree"),
        ({"image_key": "X"}, "d.reader: missing required key 'format'"),
        ({"format": "ml4sci_hdf5"}, "d.reader.image_key: required for format 'ml4sci_hdf5'"),
        ({"format": "root_image"}, "d.reader: format 'root_image' needs image_key or channel_keys"),
        ({"format": "root_hits", "channel_keys": ["e"], "eta_key": "eta"},
         "d.reader: format 'root_hits' needs eta_key/phi_key or channel_eta_keys/channel_phi_keys"),
    ],
)
def test_a_section_takes_only_its_formats_keys(reader, message):
    with pytest.raises(ConfigError) as exc:
        from_dict(DataConfig, data(reader), "d")
    assert str(exc.value).startswith(message)


def test_a_format_checks_the_rest_of_the_data_config():
    with pytest.raises(ConfigError, match=re.escape("d.graph.node_mode: particles format supports only 'union'")):
        from_dict(DataConfig, data({"format": "particles"}, graph={"node_mode": "per_channel"}), "d")


def test_the_recorded_form_is_the_one_dataset_ids_hash():
    """A section is written with every format's keys, unset ones at their recorded values, in one order."""
    cfg = load_data_config("ml4sci_qg_hdf5")
    assert to_dict(cfg)["reader"] == {
        "format": "ml4sci_hdf5", "image_key": "X_jets", "layout": "channels_last", "channel_keys": [], "eta_key": None,
        "phi_key": None, "channel_eta_keys": [], "channel_phi_keys": [], "label_key": "y", "label": None,
        "file_labels": {}, "target_keys": ["m0", "pt"], "tree": "Events", "particles_key": "X",
    }
    assert list(to_dict(load_data_config("root_hits"))["reader"]) == list(RECORDED_KEYS)


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.stem)
def test_recorded_sections_load_back(path, tmp_path):
    """manifest.json's config and data_config.yaml (the recorded form) build the same config again."""
    from graphevent.config.base import dump_yaml

    cfg = load_data_config(path)
    recorded = to_dict(cfg)
    assert from_dict(DataConfig, recorded, "manifest.json:config") == cfg
    dump_yaml(cfg, tmp_path / "data_config.yaml")
    assert load_data_config(tmp_path / "data_config.yaml") == cfg


def test_a_recorded_section_keeps_other_formats_keys_only_at_their_recorded_values():
    recorded = to_dict(load_data_config("ml4sci_qg_hdf5"))
    recorded["reader"]["tree"] = "Jets"  # set, not a placeholder: the hdf5 reader would ignore it
    with pytest.raises(ConfigError, match=re.escape("r.reader.tree: not a key of format 'ml4sci_hdf5' (a key of root_hits")):
        from_dict(DataConfig, recorded, "r")


def test_every_format_is_accepted_by_the_data_config():
    # the smallest valid section of each registered format (its required keys from its checks)
    minimal = {"ml4sci_hdf5": {"image_key": "X"}, "e2e_parquet": {"image_key": "X"}, "root_image": {"image_key": "X"},
               "root_hits": {"channel_keys": ["e"], "eta_key": "eta", "phi_key": "phi"}, "particles": {}}
    assert sorted(minimal) == sorted(READERS)
    for name, keys in minimal.items():
        cfg = from_dict(DataConfig, data({"format": name, **keys}), "d")
        assert type(cfg.reader) is READERS[name].config
