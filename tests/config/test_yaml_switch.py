"""A bare YAML off/on where a choice of strings is expected (YAML 1.1 reads them as booleans)."""

import pytest

from graphevent.config.experiment import load_experiment
from graphevent.errors import ConfigError


def test_set_amp_off_means_the_string_off():
    cfg = load_experiment("particlenet", ["train.amp=off"])
    assert cfg.train.amp == "off"


def test_a_boolean_where_no_on_off_choice_exists_is_still_refused():
    with pytest.raises(ConfigError, match=r"--set train.amp=true: invalid value True; expected one of 'auto', 'bf16', 'fp16', 'off'"):
        load_experiment("particlenet", ["train.amp=true"])
