"""Python training shows its per-epoch lines by default, as the CLI does; quiet=True silences them
(issue 29 item 6)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest
import verticals
from verticals.testing import fresh_console_logger

from .conftest import FAST


@pytest.fixture
def unconfigured() -> Iterator[logging.Logger]:
    """The 'verticals' logger as a fresh notebook has it: no handler, no level (in-process CLI tests of the
    same session may have set both)."""
    with fresh_console_logger() as logger:
        yield logger


def test_epoch_lines_by_default_and_quiet_silences(tmp_path, tiny_backbone, text_data, capsys, unconfigured):
    kwargs = {"validation": text_data["validation"], "overrides": FAST, "backbone": str(tiny_backbone)}
    verticals.train("text-classification", text_data["train"], output=tmp_path / "loud", **kwargs)
    err = capsys.readouterr().err
    assert "epoch 1/2" in err and "epoch 2/2" in err and "best epoch" in err, err
    # nothing left behind: the logger is as it was
    assert unconfigured.handlers == [] and unconfigured.level == logging.NOTSET and unconfigured.propagate

    verticals.train("text-classification", text_data["train"], output=tmp_path / "quiet", quiet=True, **kwargs)
    assert "epoch" not in capsys.readouterr().err
    assert unconfigured.level == logging.NOTSET


def test_configured_logging_is_respected(tmp_path, tiny_backbone, text_data, capsys, unconfigured, caplog):
    # logging set up to show the lines (here pytest's capture at INFO): they go there, not also to stderr
    caplog.set_level(logging.INFO, logger="verticals")
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                    output=tmp_path / "b", overrides=FAST, backbone=str(tiny_backbone))
    assert any("epoch 2/2" in r.getMessage() for r in caplog.records)
    assert "epoch 2/2" not in capsys.readouterr().err
