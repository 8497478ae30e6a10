"""The evaluation protocol of ``recommendation.scoring`` (kept apart so the benchmark's baselines share it).

A case is one held-out positive (user, item). Its user is described by the training history only. It is
ranked (a) against ``eval_negatives`` items sampled from those the user never touched (training or
evaluation data), and (b) against the whole catalogue minus the user's training items. Cases whose item had
no training interactions are cold; metrics are reported over all cases and split into warm and cold.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
from verticals import DataError, Evaluation

from .ranking import K, case_rng, full_ranking_metrics, rank_against, sample_negatives, sampled_metrics, top_k_excluding

if TYPE_CHECKING:
    from .schema import InteractionRecord

Scorer = Callable[[list[str], list[list[int]]], np.ndarray]
"""(users, their training positives) -> [len(users), n_items] scores."""


def protocol_cases(positives: Sequence[Any], item_index: dict[str, int], known_users: set[str], *,
                   seed: int, limit: int | None) -> tuple[list[tuple[str, int]], int]:
    """(user, item row) cases of users known from training; a seeded subset when ``limit`` is set."""
    cases = [(r.user, item_index[r.item]) for r in positives if r.item in item_index and r.user in known_users]
    skipped = len(positives) - len(cases)
    if limit is not None and len(cases) > limit:
        keep = np.sort(np.random.default_rng(seed).choice(len(cases), size=limit, replace=False))
        cases = [cases[i] for i in keep]
    return cases, skipped


def evaluate_cases(cases: Sequence[tuple[str, int]], scores: dict[str, np.ndarray], seen: dict[str, set[int]],
                   touched: dict[str, set[int]], counts: np.ndarray, ids: Sequence[str], *, negatives: int,
                   seed: int) -> dict[str, float]:
    """All metrics for ``cases`` given each user's full score vector; '_warm'/'_cold' for the split."""
    n_items = len(counts)
    ranks: dict[str, list[int]] = {"": [], "_warm": [], "_cold": []}
    relevant: dict[str, dict[str, set[int]]] = {"": {}, "_warm": {}, "_cold": {}}
    for user, item in cases:
        s = scores[user]
        excluded = touched[user] | {item}
        neg = sample_negatives(n_items, excluded, negatives, case_rng(seed, user, ids[item]))
        rank = rank_against(float(s[item]), s[neg])
        part = "_cold" if counts[item] == 0 else "_warm"
        for key in ("", part):
            ranks[key].append(rank)
            relevant[key].setdefault(user, set()).add(item)
    metrics: dict[str, float] = {}
    for key in ("", "_warm", "_cold"):
        part_metrics = dict(sampled_metrics(ranks[key]))
        users = list(relevant[key])
        tops = [top_k_excluding(scores[u], seen[u] - relevant[""][u], K) for u in users]
        part_metrics.update(full_ranking_metrics(tops, [relevant[key][u] for u in users]))
        metrics.update({f"{name}{key}": value for name, value in part_metrics.items()})
    return metrics


class RankedTask(Protocol):
    """What ranking needs of the task (structural, so this module never imports ``task`` back)."""

    catalogue_: Any
    histories_: Any
    interaction_counts_: Any
    options: Any
    task_name: str

    def score_items(self, histories: Any) -> Any: ...


def rank_cases(task: RankedTask, positives: Sequence[InteractionRecord], *, seed: int,
               limit: int | None = None) -> Evaluation:
    """Evaluate a fitted task on positive interactions (see the module docstring)."""
    catalogue, histories = task.catalogue_, task.histories_
    known = {u for u, p in histories.positives.items() if p}
    cases, skipped = protocol_cases(positives, catalogue.index, known, seed=seed, limit=limit)
    if not cases:
        raise DataError(f"nothing to evaluate: none of the {len(positives)} positive interactions belongs to a user "
                        f"with positive training interactions")
    users = sorted({u for u, _ in cases})
    all_scores, _ = task.score_items([histories.positives[u] for u in users])
    scores = dict(zip(users, all_scores))
    seen = {u: set(histories.seen.get(u, [])) for u in users}
    touched = {u: set(seen[u]) for u in users}
    for r in positives:  # every evaluation item of a user is off-limits as a sampled negative
        if r.user in touched and r.item in catalogue.index:
            touched[r.user].add(catalogue.index[r.item])
    metrics = evaluate_cases(cases, scores, seen, touched, task.interaction_counts_, catalogue.ids,
                             negatives=task.options.eval_negatives, seed=seed)
    n_cold = sum(1 for _, i in cases if task.interaction_counts_[i] == 0)
    return Evaluation(task=task.task_name, n=len(cases), metrics=metrics,
                      details={"cases": len(cases), "cold_cases": n_cold, "skipped_unknown_users": skipped,
                               "negatives": task.options.eval_negatives, "seed": seed, "k": K})
