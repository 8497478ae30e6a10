"""Entry-point target of the 'insurance' pack: insurance-claim triage, as configuration.

Scaffolded with ``verticals new-pack insurance --task claim_triage --labels ...`` and then given its
description, its claims teams as labels and defaults suited to short first-notice-of-loss texts.
"""

from __future__ import annotations

from verticals import PackSpec, TaskSpec, hookimpl

from . import __version__

CLAIM_TRIAGE = TaskSpec(
    name="claim_triage",
    task_type="text-classification",
    description="Route a first notice of loss to a claims team: auto, property, bodily injury or theft.",
    labels=["auto_damage", "property_damage", "bodily_injury", "theft"],
    metrics=["accuracy", "macro_f1", "macro_precision", "macro_recall", "weighted_f1"],
    primary_metric="macro_f1",
    # Layered under the user's --config and --set; chosen on data/validation.jsonl (README, "Defaults").
    defaults={"training": {"learning_rate": 5e-5, "epochs": 5, "batch_size": 16, "warmup_ratio": 0.1}},
)


@hookimpl
def register_packs(register):  # type: ignore[no-untyped-def]
    register(PackSpec(name="insurance", version=__version__,
                      description="Insurance-claim triage: route a first notice of loss to the right claims team.",
                      tasks=[CLAIM_TRIAGE]))
