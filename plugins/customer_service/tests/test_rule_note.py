"""The end of training says which out-of-scope rule ``auto`` chose and why, and, with fewer validation utterances
per intent than task.min_calibration_per_intent, what would make it stronger (issue 29 item 11)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from verticals import api
from verticals.testing import fresh_console_logger

from .data import FAST, intent_rows, write_csv


@pytest.fixture(autouse=True)
def _unconfigured_logger() -> Iterator[None]:
    """What training prints, as a notebook sees it, whatever in-process CLI/server tests ran before."""
    with fresh_console_logger():
        yield


def _rule_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("out-of-scope rule")]


@pytest.mark.parametrize("per_intent, n_oos, objective, advice", [
    (5, 12, "accuracy_at_oos_recall", "more validation rows (at least 8 per intent; now 5) and more 'out_of_scope'"),
    (3, 0, "in_scope_rejection", "labelling some out-of-scope queries 'out_of_scope' in the validation data"),
    (10, 0, "pseudo_unknown", None),
])
def test_the_chosen_rule_and_the_advice_are_on_the_console(
        per_intent: int, n_oos: int, objective: str, advice: str | None, tmp_path: Path, tiny_backbone: Path,
        intent_data: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    validation = write_csv(tmp_path / "validation.csv", intent_rows(per_intent, n_oos, seed=1))
    capsys.readouterr()
    predictor = api.train("customer_service.intent", intent_data["train"], validation=validation,
                          output=tmp_path / "bundle", overrides=FAST, backbone=str(tiny_backbone), check=False)
    lines = _rule_lines(capsys.readouterr().err)
    assert predictor.info.state["thresholds"]["objective"] == objective
    assert lines[0].startswith(f"out-of-scope rule: {objective} on the "), lines
    reason = {"accuracy_at_oos_recall": f"auto: {n_oos} validation rows labelled 'out_of_scope'",
              "in_scope_rejection": f"auto: no out-of-scope examples, and {per_intent} in-scope validation "
                                    f"utterances per intent, below task.min_calibration_per_intent=8",
              "pseudo_unknown": f"auto: no out-of-scope examples, and {per_intent} in-scope validation "
                                f"utterances per intent (at least task.min_calibration_per_intent=8)"}[objective]
    assert reason in lines[0], lines[0]
    if advice is None:
        assert len(lines) == 1, lines
    else:
        assert len(lines) == 2 and advice in lines[1] and "would make" in lines[1], lines


def test_an_objective_set_by_the_user_is_named_as_such(tmp_path: Path, tiny_backbone: Path,
                                                        intent_data: dict[str, Path],
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    api.train("customer_service.intent", intent_data["train"], validation=intent_data["validation"],
              output=tmp_path / "bundle", overrides=[*FAST, "task.objective=balanced"], backbone=str(tiny_backbone),
              check=False)
    (line, _advice) = _rule_lines(capsys.readouterr().err)
    assert line.startswith("out-of-scope rule: balanced on the ") and "set by task.objective=balanced" in line
