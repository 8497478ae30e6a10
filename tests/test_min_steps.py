"""Small data sets get enough optimizer steps (training.min_steps), an epoch count the user sets is literal."""

from __future__ import annotations

import json

from verticals.config import RunConfig, resolve_config
from verticals.trainers.transformers import MAX_STRETCHED_EPOCHS, epoch_budget


def test_small_data_stretches_the_default_epoch_budget() -> None:
    cfg = resolve_config({}).training  # the core's generic 3 epochs
    assert cfg.min_steps == 300 and cfg.epochs == 3
    # 616 few-shot rows, batch 32: 20 steps an epoch, 3 epochs would be 60 updates
    assert epoch_budget(cfg, 616, 32) == 15
    # large data: the defaults stand
    assert epoch_budget(cfg, 10_000, 32) == 3
    # a handful of rows: bounded
    assert epoch_budget(cfg, 4, 32) == MAX_STRETCHED_EPOCHS


def test_epochs_set_by_the_user_are_literal(tmp_path) -> None:
    assert resolve_config({}, overrides=["training.epochs=3"]).training.min_steps is None
    config_file = tmp_path / "run.json"
    config_file.write_text(json.dumps({"training": {"epochs": 2}}))
    cfg = resolve_config({}, config_file=config_file).training
    assert cfg.min_steps is None and epoch_budget(cfg, 616, 32) == 2
    # both set: both honoured
    cfg = resolve_config({}, overrides=["training.epochs=2", "training.min_steps=100"]).training
    assert epoch_budget(cfg, 616, 32) == 5
    # a pack's epoch count is its author's choice for its data: literal too, unless the pack sets min_steps
    assert resolve_config({"training": {"epochs": 10}}).training.min_steps is None
    assert resolve_config({"training": {"epochs": 10, "min_steps": 200}}).training.min_steps == 200
    assert resolve_config({"training": {"learning_rate": 1e-4}}).training.min_steps == 300


def test_a_bundle_config_round_trips() -> None:
    cfg = resolve_config({}, overrides=["training.epochs=2"])
    assert RunConfig.model_validate(cfg.model_dump()).training.min_steps is None


def test_training_runs_the_stretched_budget(text_data, tiny_backbone, tmp_path) -> None:
    import verticals

    # 48 rows, batch 8: 6 steps an epoch; 40 steps need 7 epochs where the default budget is 3
    predictor = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                                output=tmp_path / "b", overrides=["training.min_steps=40", "training.batch_size=8",
                                                                  "training.early_stopping_patience=null",
                                           "training.learning_rate=0.001"], backbone=str(tiny_backbone))
    assert len(predictor.info.history) == 7
