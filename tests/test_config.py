import json

import pytest
from verticals.config import parse_set, resolve_config
from verticals.errors import ConfigError


def test_layering_pack_defaults_then_file_then_set(tmp_path):
    config_file = tmp_path / "config.json"
    config_file.write_text(json.dumps({"training": {"epochs": 7, "learning_rate": 1e-4}}))
    defaults = {"training": {"epochs": 3, "learning_rate": 5e-5, "batch_size": 16}}
    cfg = resolve_config(defaults, config_file, ["training.learning_rate=2e-4", "data.text_column=utterance"])
    assert cfg.training.batch_size == 16  # pack default survives
    assert cfg.training.epochs == 7  # file beats pack default
    assert cfg.training.learning_rate == 2e-4  # --set beats file
    assert cfg.data == {"text_column": "utterance"}


def test_set_values_parse_as_json_when_possible():
    assert parse_set("training.early_stopping_patience=null") == {"training": {"early_stopping_patience": None}}
    assert parse_set("labels=[\"a\",\"b\"]") == {"labels": ["a", "b"]}
    assert parse_set("data.label_column=intent") == {"data": {"label_column": "intent"}}


@pytest.mark.parametrize("bad, fragment", [
    ("training.epoch=3", "training.epoch"),
    ("trainin.epochs=3", "unknown section 'trainin'"),
    ("training.epochs", "KEY=VALUE"),
    ("training.precision=fp8", "training.precision"),
])
def test_bad_options_are_named(bad, fragment):
    with pytest.raises(ConfigError, match=fragment.replace(".", r"\.")):
        resolve_config({}, None, [bad])


def test_invalid_config_file_names_line(tmp_path):
    bad = tmp_path / "c.json"
    bad.write_text('{\n "training": {\n  "epochs": ,\n }\n}')
    with pytest.raises(ConfigError, match=r"c\.json:3"):
        resolve_config({}, bad, [])
