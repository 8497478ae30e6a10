"""`verticals tune customer_service.intent` searches the pack's pseudo_unknown_mix beside the core space, and
every value of that range is a valid task option."""

from __future__ import annotations

import pytest
from verticals import cli
from verticals.api import build_task
from verticals.plugins.options import describe_task


def test_the_pack_declares_pseudo_unknown_mix_in_the_search_space(capsys: pytest.CaptureFixture[str]) -> None:
    space = {row["name"]: row for row in describe_task("customer_service.intent")["tune"]}
    assert space["task.pseudo_unknown_mix"]["range"] == "uniform [0.5, 0.9]"
    assert "training.learning_rate" in space  # the core's parameters stay
    for value in (space["task.pseudo_unknown_mix"]["low"], space["task.pseudo_unknown_mix"]["high"]):
        task, _, _ = build_task("customer_service.intent", overrides=[f"task.pseudo_unknown_mix={value}"])
        assert task.options.pseudo_unknown_mix == value
    assert cli.main(["config", "customer_service.intent"]) == 0
    assert "task.pseudo_unknown_mix : uniform [0.5, 0.9]" in capsys.readouterr().out
