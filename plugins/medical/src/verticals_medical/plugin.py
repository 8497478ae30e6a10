"""Hook implementations: the ``medical`` pack and its ``medical.ner`` task type."""

from __future__ import annotations

from verticals import PackSpec, TaskSpec, hookimpl

from . import __version__
from .ner import MedicalNERTask

# Chosen on NCBI-disease devel data (see README.md, "How the defaults were chosen"): the plain values with the
# embedded MiniLM; a base-size backbone (mpnet-base) learned faster at 5e-5 than at the core's base-size 2e-5.
NER_DEFAULTS = {
    "training": {"learning_rate": 3e-4, "epochs": 8, "max_length": 128, "batch_size": 32},
    "training@base": {"learning_rate": 5e-5},
    "task": {"stride": 16},
}


@hookimpl
def register_task_types(register):  # type: ignore[no-untyped-def]
    register(MedicalNERTask.name, MedicalNERTask)


@hookimpl
def register_packs(register):  # type: ignore[no-untyped-def]
    register(PackSpec(
        name="medical", version=__version__,
        description="Biomedical named-entity recognition (diseases, chemicals, your own entity types).",
        tasks=[TaskSpec(
            name="ner", task_type=MedicalNERTask.name,
            description="Disease/Chemical (+ your types) NER with character offsets and long-document windows.",
            labels=["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease"],
            metrics=["f1", "precision", "recall", "token_accuracy"], primary_metric="f1",
            defaults=NER_DEFAULTS,
        )],
    ))
