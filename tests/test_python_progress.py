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


@pytest.mark.parametrize("left_behind", ["dictConfig", "root at INFO", "logging.disable"])
def test_a_fresh_console_logger_undoes_what_a_library_configured_earlier(left_behind: str) -> None:
    """An order-dependent failure of the rule-note test: a library configured logging earlier in the same
    worker, and training's lines went to the root logger's handlers (or nowhere) instead of stderr."""
    import logging.config

    logger, root = logging.getLogger("verticals"), logging.getLogger()
    before = (root.level, logging.root.manager.disable)
    disabled = {name: lg.disabled for name, lg in logging.root.manager.loggerDict.items()
                if isinstance(lg, logging.Logger)}
    try:
        if left_behind == "dictConfig":  # disables every existing logger it does not name, 'verticals' too
            logging.config.dictConfig({"version": 1})
        elif left_behind == "root at INFO":
            root.setLevel(logging.INFO)
        else:
            logging.disable(logging.INFO)
        with fresh_console_logger():
            from verticals.console import training_output

            with training_output():
                assert logger.isEnabledFor(logging.INFO) and not logger.disabled
                assert any(type(h).__name__ == "_Stderr" for h in logger.handlers), logger.handlers
        assert logger.disabled == (left_behind == "dictConfig"), "restored as it was found"
    finally:
        for name, was in disabled.items():  # dictConfig disabled every logger of the session: undo it
            logging.getLogger(name).disabled = was
        root.setLevel(before[0])
        logging.disable(before[1])
