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


# ---- unknown options name the closest one; `verticals config` lists every option ---------------------
@pytest.mark.parametrize("bad, message", [
    ("training.epoch=3", "unknown option training.epoch; did you mean training.epochs?"),
    ("training.head.dropuot=0.2", "unknown option training.head.dropuot; did you mean training.head.dropout?"),
    ("training.zzz=1", "the options of 'training' are: backbone, strategy"),
    ("trainin.epochs=3", "did you mean 'training'?"),
])
def test_unknown_option_suggests_a_name(bad, message):
    with pytest.raises(ConfigError) as err:
        resolve_config({}, None, [bad], task="text-classification")
    assert message in str(err.value)


def test_unknown_option_in_a_config_file_suggests_a_name(tmp_path):
    config_file = tmp_path / "c.json"
    config_file.write_text(json.dumps({"training": {"learning_rte": 1e-4}}))
    with pytest.raises(ConfigError, match=r"did you mean training\.learning_rate\?.*verticals config TASK"):
        resolve_config({}, config_file, [])


@pytest.mark.parametrize("value", ["Infinity", "-Infinity", "NaN"])
@pytest.mark.parametrize("option", ["epochs", "learning_rate", "warmup_ratio", "max_grad_norm", "weight_decay"])
def test_every_float_option_must_be_finite(option, value):
    with pytest.raises(ConfigError, match=f"training.{option}"):
        resolve_config({}, None, [f"training.{option}={value}"])


@pytest.mark.parametrize("option", ["batch_size", "eval_batch_size", "num_threads", "max_length", "lora_r",
                                    "early_stopping_patience", "seed"])
def test_every_count_option_is_bounded(option):
    with pytest.raises(ConfigError, match=f"training.{option}"):
        resolve_config({}, None, [f"training.{option}=100000000000"])


def test_every_core_option_has_a_description():
    from verticals.config import DataConfig, HeadConfig, RunConfig, TrainingConfig

    for model in (TrainingConfig, HeadConfig, DataConfig, RunConfig):
        missing = [name for name, info in model.model_fields.items() if not info.description]
        assert not missing, f"{model.__name__}: {missing}"


def test_config_command_lists_core_options(capsys):
    from verticals import cli
    from verticals.config import DataConfig, TrainingConfig

    assert cli.main(["config", "text-classification"]) == 0
    out = capsys.readouterr().out
    for prefix, model in (("training", TrainingConfig), ("data", DataConfig)):
        for name, info in model.model_fields.items():
            if name != "head":
                assert f"{prefix}.{name} :" in out and info.description in out
    assert "training.epochs : float = 3.0  (> 0, <= 10000)" in out


def test_train_help_points_to_config(capsys):
    from verticals import cli

    with pytest.raises(SystemExit):
        cli.main(["train", "--help"])
    assert "verticals config TASK" in " ".join(capsys.readouterr().out.split())
