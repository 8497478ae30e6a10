"""Hook implementations: the ``customer_service`` pack and its ``customer_service.intent`` task type."""

from __future__ import annotations

from verticals import PackSpec, TaskSpec, hookimpl

from . import __version__
from .task import IntentTask
from .taxonomy import DEFAULT_INTENTS

# Fine-tuning defaults for short utterances on the embedded MiniLM (22M parameters), chosen by small
# Banking77 experiments (see README.md "Why these defaults"):
TRAINING_DEFAULTS = {
    # A small model with a fresh 77-way head under-fits at the usual BERT-base 2e-5..5e-5; 1e-4 converges
    # within the epoch budget without destabilising the pretrained weights.
    "learning_rate": 1e-4,
    # The head starts from random weights: a 10x higher rate lets it catch up with the backbone early.
    "head_learning_rate": 1e-3,
    # Utterances are short and data sets small (15-150 examples per intent): more passes help, and early
    # stopping (patience 2, core default) ends training once validation accuracy stops improving.
    "epochs": 10,
    "batch_size": 32,
    "warmup_ratio": 0.1,
    # Softer targets keep probabilities less peaked, which makes the confidence threshold of the
    # fallback more informative (out-of-scope queries are less often 0.99-confident).
    "label_smoothing": 0.1,
    # Utterances rarely exceed 40 word pieces; 64 halves padding work against the core's 128.
    "max_length": 64,
    # Mean pooling, as all-MiniLM-L6-v2 was trained, and the same pooling the retrieval index uses.
    "head": {"pooling": "mean", "dropout": 0.1},
}


@hookimpl
def register_task_types(register):  # type: ignore[no-untyped-def]
    register(IntentTask.name, IntentTask)


@hookimpl
def register_packs(register):  # type: ignore[no-untyped-def]
    register(PackSpec(
        name="customer_service", version=__version__,
        description="Support-desk intents with a calibrated FAISS retrieval fallback and out-of-scope detection.",
        tasks=[TaskSpec(
            name="intent", task_type=IntentTask.name, description=IntentTask.description,
            labels=list(DEFAULT_INTENTS),
            metrics=["accuracy", "macro_f1", "in_scope_accuracy", "oos_recall", "oos_precision", "fallback_rate"],
            primary_metric="accuracy",
            defaults={"training": TRAINING_DEFAULTS},
            # `verticals tune` searches the pack's one out-of-scope knob beside the core's training parameters
            tune={"task.pseudo_unknown_mix": {"type": "float", "low": 0.5, "high": 0.9}},
        )],
    ))
