"""Entry point of the recommendation pack: its pack spec and the task type it contributes."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from verticals import PackSpec, TaskSpec, hookimpl

from . import __version__


@hookimpl
def register_packs(register: Callable[[PackSpec], None]) -> None:
    register(PackSpec(name="recommendation", version=__version__, description=(
        "Recommendation from item text and user histories; ranks items nobody has rated yet"), tasks=[
        TaskSpec(
            name="scoring", task_type="recommendation.scoring",
            description="Two-tower (history text -> item text) scorer, in-batch negatives, FAISS retrieval, "
                        "re-ranked with popularity and item-kNN",
            metrics=["hr@10", "ndcg@10", "mrr", "recall@10_full", "ndcg@10_full"], primary_metric="hr@10",
            # Contrastive fine-tuning of a sentence encoder wants a higher LR than classification and
            # few epochs: the backbone already embeds titles well (see README for the experiments).
            defaults={"training": {"learning_rate": 5e-5, "epochs": 1, "batch_size": 64, "max_length": 128,
                                   "warmup_ratio": 0.1, "early_stopping_patience": 1}},
        ),
    ]))


@hookimpl
def register_task_types(register: Callable[[str, type[Any]], None]) -> None:
    from .task import RecommendationTask

    register(RecommendationTask.name, RecommendationTask)
