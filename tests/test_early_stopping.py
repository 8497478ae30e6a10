"""The kept epoch really is the best one; warmup is not counted by patience; a model no better than the
majority class says so (issue 29 item 1). Tiny validation sets, as in the issue."""

from __future__ import annotations

import json
import random
import warnings

import pytest
import verticals
from transformers import TrainerCallback
from verticals.cli import main

from .conftest import WORDS, run_cli, write_csv

# 48 training rows, batch 8: 6 optimizer steps an epoch; lr 3e-3 learns the 12 validation rows perfectly
# within two epochs, after which the validation loss keeps falling for several epochs.
SATURATING = ["training.batch_size=8", "training.learning_rate=0.003", "training.warmup_ratio=0",
              "training.early_stopping_patience=2", "training.min_steps=null"]


def _kept(history: list[dict]) -> dict:
    kept = [h for h in history if h["best"]]
    assert len(kept) == 1, history
    return kept[0]


def test_ties_go_to_the_lower_validation_loss_and_patience_waits_while_it_falls(tmp_path, tiny_backbone,
                                                                                 text_data):
    predictor = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                                output=tmp_path / "b", overrides=[*SATURATING, "training.epochs=6"],
                                backbone=str(tiny_backbone))
    history = predictor.info.history
    accuracies = [h["metrics"]["accuracy"] for h in history]
    losses = [h["validation_loss"] for h in history]
    assert max(accuracies) == 1.0 and accuracies.count(1.0) >= 3, history  # the metric saturates early
    # It was stopped at epoch 4, keeping epoch 2 (the first at 1.0), while the loss still fell.
    assert len(history) == 6, [(h["epoch"], h["validation_loss"], h["metrics"]["accuracy"]) for h in history]
    tied = [h for h in history if h["metrics"]["accuracy"] == 1.0]
    best = min(tied, key=lambda h: h["validation_loss"])
    assert _kept(history)["epoch"] == best["epoch"] and best["validation_loss"] == min(losses)
    # the weights kept are that epoch's: the final validation summary reproduces its numbers
    assert predictor.info.metrics["validation"] == pytest.approx(best["metrics"], abs=1e-6)


class _Flat(TrainerCallback):
    """Makes every evaluation look the same to selection and early stopping (metric 0, the same loss), as
    when a long warmup leaves accuracy at 0 for epochs; the console has already logged the real numbers."""

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # type: ignore[no-untyped-def]
        metrics["eval_accuracy"] = 0.0
        metrics["eval_loss"] = 1.0


def test_warmup_epochs_are_not_counted_by_patience(tmp_path, tiny_backbone, text_data):
    # 6 epochs of 6 steps, warmup 60 % = 22 steps: epochs 1-3 end inside the warmup
    predictor = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                                output=tmp_path / "b", backbone=str(tiny_backbone), callbacks=[_Flat()],
                                overrides=[*SATURATING[:2], "training.warmup_ratio=0.6", "training.epochs=6",
                                           "training.early_stopping_patience=2", "training.min_steps=null"])
    # It stopped after epoch 3, two no-progress epochs after the first, all three still warming up.
    assert len(predictor.info.history) == 5, predictor.info.history


def _imbalanced(path, n: dict[str, int], seed: int):
    rng = random.Random(seed)
    rows = [{"text": f"question about my {' and the '.join(rng.sample(WORDS[label], 2))}", "label": label}
            for label, count in n.items() for _ in range(count)]
    rng.shuffle(rows)
    return write_csv(path, rows)


def test_a_model_no_better_than_the_majority_class_is_flagged(tmp_path, tiny_backbone, capsys):
    train = _imbalanced(tmp_path / "train.csv", {"billing": 24, "shipping": 8, "account": 8}, 0)
    validation = _imbalanced(tmp_path / "validation.csv", {"billing": 6, "shipping": 2, "account": 2}, 1)
    # a learning rate that cannot move the random head in one epoch: the model learns nothing
    result = run_cli("train", "text-classification", "--train", str(train), "--validation", str(validation),
                     "--output", str(tmp_path / "bad"), "--backbone", str(tiny_backbone),
                     "--set", "training.epochs=1", "--set", "training.learning_rate=1e-9",
                     "--set", "training.batch_size=8")
    assert result.returncode == 0, result.stderr
    info = json.loads((tmp_path / "bad" / "bundle.json").read_text())
    baseline = info["baseline"]
    assert baseline["metric"] == "accuracy" and baseline["baseline"] == pytest.approx(0.6)
    assert "'billing'" in baseline["rule"] and baseline["validation"] == info["metrics"]["validation"]["accuracy"]
    assert baseline["at_or_below"] is True and baseline["validation"] <= 0.6
    warned = [line for line in result.stderr.splitlines() if "majority-class baseline" in line]
    assert len(warned) == 1 and warned[0].startswith("verticals: warning: validation accuracy"), result.stderr
    shown = run_cli("inspect", str(tmp_path / "bad"))
    assert shown.returncode == 0 and "WARNING  validation accuracy" in shown.stdout, shown.stdout
    main(["inspect", str(tmp_path / "bad"), "--json"])
    assert json.loads(capsys.readouterr().out)["baseline"] == baseline


def test_a_model_that_learnt_beats_the_baseline_silently(tmp_path, tiny_backbone, text_data, capsys):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        good = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                               output=tmp_path / "good", backbone=str(tiny_backbone),
                               overrides=[*SATURATING, "training.epochs=3"])
    assert good.info.baseline["baseline"] == pytest.approx(1 / 3)  # balanced: 'account' by name, 4 of 12
    assert good.info.baseline["at_or_below"] is False and good.info.baseline["validation"] > 0.5
    assert not [w for w in caught if "baseline" in str(w.message)]
    main(["inspect", str(tmp_path / "good")])
    shown = capsys.readouterr().out
    assert "beats it" in shown and "WARNING" not in shown


def test_token_tasks_compare_with_tagging_everything_o(tmp_path, tiny_backbone, token_data):
    predictor = verticals.train("token-classification", token_data["train"], validation=token_data["validation"],
                                output=tmp_path / "b", backbone=str(tiny_backbone),
                                overrides=["training.epochs=1", "training.learning_rate=1e-9",
                                           "training.batch_size=8"])
    baseline = predictor.info.baseline
    assert baseline["metric"] == "f1" and baseline["baseline"] == 0.0 and "'O'" in baseline["rule"]
    assert baseline["at_or_below"] is (predictor.info.metrics["validation"]["f1"] <= 0.0)


def test_inspect_tolerates_old_and_malformed_baseline_entries():
    from verticals.metrics.baseline import baseline_lines

    assert baseline_lines(None) == [] and baseline_lines({"at_or_below": True}) == []
    assert baseline_lines({"rule": "r", "metric": "m", "baseline": "x", "validation": 1}) == []
