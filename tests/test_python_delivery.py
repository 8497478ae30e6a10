"""Delivery from Python (issue 29 item 9): ``verticals.serve`` / ``create_app`` / ``export`` are public, looked up
lazily (importing verticals loads no server), and the errors they and ``train`` raise name options as the caller
writes them: ``overwrite=True`` to Python, ``--overwrite`` on the command line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import verticals
from verticals.cli.app import main
from verticals.errors import ConfigError, cli_wording, option

from .conftest import FAST


def test_the_delivery_verbs_are_public_and_loaded_on_first_use() -> None:
    code = ("import sys, verticals; assert 'verticals.delivery' not in sys.modules, 'delivery loaded at import';"
            "from verticals.delivery import export, serve, server;"
            "assert verticals.serve is server.run and verticals.create_app is serve.create_app;"
            "assert verticals.export is export.export_onnx;"
            "assert {'serve', 'create_app', 'export'} <= set(dir(verticals))")
    subprocess.run([sys.executable, "-c", code], check=True)
    with pytest.raises(AttributeError, match="no attribute 'serv'"):
        verticals.serv  # noqa: B018 - a typo still fails as for any module


def test_option_spelling_follows_the_caller() -> None:
    python = [option("overwrite", True), option("output"), option("backbone", "DIR"), option("resume", True),
              option("overrides", cli="--set")]
    with cli_wording():
        cli = [option("overwrite", True), option("output"), option("backbone", "DIR"), option("resume", True),
               option("overrides", cli="--set")]
    assert python == ["overwrite=True", "output", "backbone='DIR'", "resume=True", "overrides"]
    assert cli == ["--overwrite", "--output", "--backbone DIR", "--resume", "--set"]
    assert option("overwrite", True) == "overwrite=True"  # the CLI's wording ends with its block


def test_train_into_an_existing_output_says_overwrite_in_each_language(
        tmp_path: Path, tiny_backbone: Path, text_data: dict[str, Path],
        capsys: pytest.CaptureFixture[str]) -> None:
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("mine", encoding="utf-8")
    with pytest.raises(ConfigError) as refused:
        verticals.train("text-classification", text_data["train"], output=taken, backbone=str(tiny_backbone))
    assert "overwrite=True" in str(refused.value) and "--" not in str(refused.value), refused.value

    code = main(["train", "text-classification", "--train", str(text_data["train"]), "--output", str(taken),
                 "--backbone", str(tiny_backbone), *[a for v in FAST for a in ("--set", v)]])
    err = capsys.readouterr().err
    assert code == 2 and "--overwrite" in err and "overwrite=True" not in err, err
    assert (taken / "notes.txt").read_text(encoding="utf-8") == "mine"


def test_serve_options_are_named_as_python_keywords(tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    with pytest.raises(ConfigError, match=r"log_predictions=True stores predictions .* give feedback_db='FILE'"):
        verticals.create_app(tmp_path / "bundle", log_predictions=True)


def test_create_app_and_export_take_the_predictor_train_returned(tmp_path: Path, tiny_backbone: Path,
                                                                 text_data: dict[str, Path]) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("httpx")
    from fastapi.testclient import TestClient

    predictor = verticals.train("text-classification", text_data["train"], output=tmp_path / "tickets",
                                backbone=str(tiny_backbone), overrides=["training.epochs=1"], quiet=True, check=False)
    client = TestClient(verticals.create_app(predictor))  # one bundle, not a list
    assert client.get("/health").json()["models"] == ["tickets"]
    answer = client.post("/v1/models/tickets/predict", json={"inputs": ["refund my invoice"]}).json()
    assert answer["results"][0]["prediction"]["label"] == predictor("refund my invoice").label

    pytest.importorskip("onnxruntime")
    result = verticals.export(predictor, tmp_path / "onnx")
    assert (tmp_path / "onnx" / "export.json").is_file() and result is not None
    with pytest.raises(ConfigError, match="overwrite=True"):
        verticals.export(tmp_path / "tickets", tmp_path / "onnx")


def test_a_list_option_written_as_text_is_fixed_in_the_callers_syntax() -> None:
    from verticals.config import resolve_config

    with pytest.raises(ConfigError) as python:
        resolve_config({}, overrides=["labels=[billing,shipping]"])
    with cli_wording(), pytest.raises(ConfigError) as cli:
        resolve_config({}, overrides=["labels=[billing,shipping]"])
    assert """overrides=['labels=["billing", "shipping"]']""" in str(python.value) and "--set" not in str(python.value)
    assert """--set 'labels=["billing", "shipping"]', in single quotes""" in str(cli.value)
