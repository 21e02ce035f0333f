"""Every YAML graphevent reads refuses a key given twice; every --set value is checked, even one a
later --set or option replaces; a config path that is a directory is named as one."""

from __future__ import annotations

import pytest
import yaml

from graphevent.config.base import StrictLoader, load_yaml, parse_override
from graphevent.config.data import load_data_config
from graphevent.config.experiment import load_experiment
from graphevent.errors import ConfigError
from graphevent.io.manifest import load_data_manifest

EXPERIMENT = """\
stage: pretrain
model:
  name: masked_gt_ae
train:
  epochs: 2
  lr: 0.001
  batch_size: 8
  lr: 0.5
"""


def test_a_key_twice_in_an_experiment_names_file_key_lines_and_section(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text(EXPERIMENT)
    with pytest.raises(ConfigError, match=rf"^{path}: key 'lr' appears twice \(lines 6 and 8\) in section train$"):
        load_experiment(path)


def test_a_top_level_key_twice_and_a_key_twice_in_a_list_item(tmp_path):
    path = tmp_path / "exp.yaml"
    path.write_text("stage: pretrain\nseed: 1\nseed: 2\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'seed' appears twice \(lines 2 and 3\)$"):
        load_yaml(path)
    path.write_text("tasks:\n  - name: a\n    type: classification\n    name: b\n")
    with pytest.raises(ConfigError, match=rf"^{path}: key 'name' appears twice \(lines 2 and 4\) in section tasks\[0\]$"):
        load_yaml(path)


def test_keys_equal_only_as_values_are_the_same_key(tmp_path):
    """``1`` and ``0x1`` are one key once read (the second would silently win)."""
    path = tmp_path / "x.yaml"
    path.write_text("classes:\n  1: quark\n  0x1: gluon\n")
    with pytest.raises(ConfigError, match=r"key 1 appears twice \(lines 2 and 3\) in section classes"):
        load_yaml(path)


def test_a_data_config_and_a_manifest_with_a_key_twice(tmp_path):
    data = tmp_path / "data.yaml"
    data.write_text("classes: [quark, gluon]\ngraph:\n  k: 8\n  k: 16\n")
    with pytest.raises(ConfigError, match=rf"^{data}: key 'k' appears twice \(lines 3 and 4\) in section graph$"):
        load_data_config(data)
    manifest = tmp_path / "manifest.yaml"
    manifest.write_text("name: qg\nformat: hdf5\nname: other\nfiles: []\n")
    with pytest.raises(ConfigError, match=rf"^{manifest}: key 'name' appears twice \(lines 1 and 3\)$"):
        load_data_manifest(manifest)


def test_a_set_value_with_a_key_twice():
    with pytest.raises(ConfigError, match=r"^--set model=\{name: a, name: b\}: key 'name' appears twice in section model$"):
        parse_override("model={name: a, name: b}")


def test_merge_keys_and_anchors_still_load_and_nothing_but_plain_data(tmp_path):
    path = tmp_path / "x.yaml"
    path.write_text("base: &b {k: 8, max_nodes: 0}\ngraph:\n  <<: *b\n  k: 16\n")
    assert load_yaml(path)["graph"] == {"k": 16, "max_nodes": 0}  # an explicit key overrides a merged one
    with pytest.raises(yaml.YAMLError, match="could not determine a constructor"):
        yaml.load("x: !!python/object/apply:os.system ['true']", Loader=StrictLoader)


def test_a_shadowed_set_value_is_still_checked():
    with pytest.raises(ConfigError, match=r"^--set train.epochs=abc: expected an integer, found 'abc'$"):
        load_experiment("particlenet", ["train.epochs=abc", "train.epochs=1"])
    with pytest.raises(ConfigError, match=r"^--set train.epochs=0: invalid value 0; expected an integer >= 1$"):
        load_experiment("particlenet", ["train.epochs=0", "train.epochs=1"])
    with pytest.raises(ConfigError, match=r"^--set graph.k=abc: expected an integer, found 'abc'$"):
        load_data_config("ml4sci_qg_hdf5", ["graph.k=abc", "graph={k: 8}"])
    assert load_experiment("particlenet", ["train.epochs=2", "train.epochs=3"]).train.epochs == 3


def test_a_shadowed_value_is_checked_alone_not_against_values_it_never_met():
    """``epochs=2`` is a valid epoch count; that it would clash with ``encoder_frozen_epochs=5``
    is a combination that never runs."""
    cfg = load_experiment("particlenet", ["train.epochs=2", "train.encoder_frozen_epochs=5", "train.epochs=10"])
    assert (cfg.train.epochs, cfg.train.encoder_frozen_epochs) == (10, 5.0)


def test_an_error_names_the_option_that_gave_the_value():
    labels = {"train.batch_size=0": "--batch-size 0"}
    with pytest.raises(ConfigError, match=r"^--batch-size 0: invalid value 0; expected an integer >= 1$"):
        load_experiment("particlenet", ["train.batch_size=0"], labels)
    with pytest.raises(ConfigError, match=r"^--set train.batch_size=0: invalid value 0; expected an integer >= 1$"):
        load_experiment("particlenet", ["train.batch_size=0"])
    # a --set replaced by an option: the --set is named
    with pytest.raises(ConfigError, match=r"^--set train.epochs=abc: expected an integer, found 'abc'$"):
        load_experiment("particlenet", ["train.epochs=abc", "train.epochs=1"], {"train.epochs=1": "--epochs 1"})


@pytest.mark.parametrize("load", [load_experiment, load_data_config, load_yaml, load_data_manifest])
def test_a_config_path_that_is_a_directory(load, tmp_path):
    folder = tmp_path / "configs"
    folder.mkdir()
    with pytest.raises(ConfigError, match=rf"^{folder}: is a directory; expected a YAML file$"):
        load(folder)


def test_a_shipped_name_wins_over_a_folder_of_that_name(tmp_path, monkeypatch):
    """A run directory ``-o particlenet`` next to the command does not hide the shipped config."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "particlenet").mkdir()
    assert load_experiment("particlenet").model["name"] == "particlenet"
