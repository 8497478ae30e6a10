"""Entry-point target of the ``finance`` pack: its tasks, its fraud task type and its fusion head."""

from __future__ import annotations

from verticals import PackSpec, TaskSpec, hookimpl

from . import __version__
from .fraud.head import FusionHead
from .fraud.task import FraudTask
from .sentiment import FinancialSentimentTask

SENTIMENT = TaskSpec(
    name="sentiment",
    task_type=FinancialSentimentTask.name,
    description="Financial news sentiment: negative / neutral / positive (Financial PhraseBank, CSV, JSONL).",
    labels=["negative", "neutral", "positive"],
    metrics=["accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1"],
    primary_metric="accuracy",
    # Chosen on PhraseBank 50Agree validation data with the embedded MiniLM (README, "Defaults").
    defaults={"training": {"learning_rate": 8e-5, "epochs": 6, "batch_size": 16, "warmup_ratio": 0.1,
                           "label_smoothing": 0.1, "early_stopping_patience": 2}},
)

FRAUD = TaskSpec(
    name="fraud",
    task_type=FraudTask.name,
    description="Transaction fraud: numeric + categorical + text columns -> fraud probability and decision.",
    labels=["0", "1"],
    label_names={"0": "legitimate", "1": "fraud"},
    metrics=["auprc", "roc_auc", "recall_at_1pct_fpr", "precision", "recall", "f1", "expected_cost"],
    primary_metric="auprc",
    # A small MLP on tabular features learns with far larger steps and more epochs than fine-tuning;
    # chosen on ULB credit-card validation data (README, "Defaults").
    defaults={"training": {"learning_rate": 1e-3, "epochs": 60, "batch_size": 256, "weight_decay": 1e-4,
                           "early_stopping_patience": 10, "head": {"dropout": 0.2}}},
)


@hookimpl
def register_packs(register):  # type: ignore[no-untyped-def]
    register(PackSpec(name="finance", version=__version__,
                      description="Financial news sentiment and transaction fraud detection.",
                      tasks=[SENTIMENT, FRAUD]))


@hookimpl
def register_task_types(register):  # type: ignore[no-untyped-def]
    register(FinancialSentimentTask.name, FinancialSentimentTask)
    register(FraudTask.name, FraudTask)


@hookimpl
def register_heads(register):  # type: ignore[no-untyped-def]
    register(FusionHead.name, FusionHead)
