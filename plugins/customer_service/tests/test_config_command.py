"""`verticals config customer_service.intent` lists every option with its type, resolved default and description."""

from __future__ import annotations

import json

import pytest
from verticals import cli, get_catalog
from verticals.config import HeadConfig, TextAugmentConfig, TrainingConfig


def _sections() -> list[tuple[str, type]]:
    task_cls = get_catalog().task_types.get("customer_service.intent")
    return [("training", TrainingConfig), ("training.head", HeadConfig), ("data", task_cls.DataOptions),
            ("data.augment", TextAugmentConfig), ("task", task_cls.Options)]


def test_every_option_is_listed_with_its_description(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "customer_service.intent"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    checked = 0
    for section, model in _sections():
        for name, info in model.model_fields.items():
            if (section, name) in (("training", "head"), ("data", "augment")):
                continue  # a nested section, listed option by option as training.head.*, data.augment.*
            assert info.description, f"{section}.{name} has no description"
            index = next(i for i, line in enumerate(lines) if line.strip().startswith(f"{section}.{name} :"))
            assert lines[index + 1].strip() == info.description  # the description right under its option
            checked += 1
    assert checked >= 40
    assert "labels : list[str]" in out
    # resolved defaults: the pack's own values, marked as such
    assert "training.max_length : int = 64" in out and "pack" in out


def test_json_gives_resolved_defaults_and_typed_options(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.main(["config", "customer_service.intent", "--json"]) == 0
    described = json.loads(capsys.readouterr().out)
    assert described["defaults"]["training"]["max_length"] == 64  # pack default applied
    assert described["defaults"]["task"]["oos_label"] == "out_of_scope"
    options = {o["name"]: o for section in described["options"].values() for o in section}
    assert options["training.epochs"]["type"] == "float" and options["training.epochs"]["bounds"] == "> 0, <= 10000"
    assert options["task.top_k"]["default"] == 5 and options["task.top_k"]["description"]
    assert options["training.strategy"]["type"] == "'full' | 'head-only' | 'lora'"
    assert options["training.head.pooling"]["default"] == "mean"


def test_unknown_pack_option_suggests_the_right_one(capsys: pytest.CaptureFixture[str], tmp_path) -> None:  # type: ignore[no-untyped-def]
    train = tmp_path / "t.csv"
    train.write_text("text,label\nwhere is my parcel,track_order\nreset my password,reset_password\n")
    assert cli.main(["train", "customer_service.intent", "--train", str(train), "--output", str(tmp_path / "o"),
                     "--set", "task.oos_lable=oos"]) == 2
    err = capsys.readouterr().err
    assert "unknown option task.oos_lable; did you mean task.oos_label?" in err
    assert "verticals config customer_service.intent" in err
