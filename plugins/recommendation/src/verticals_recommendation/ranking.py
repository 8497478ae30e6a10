"""Ranking metrics for recommendation: sampled-negative leave-one-out metrics and full-ranking metrics.

Sampled metrics (HR@10, NDCG@10, MRR) rank each held-out positive against ``n`` negatives drawn
uniformly from the items the user never interacted with. Each case draws from its own generator seeded
by (seed, user, item), so the negatives of a case do not depend on the order or number of other cases.
"""

from __future__ import annotations

import zlib
from collections.abc import Collection, Sequence

import numpy as np

K = 10


def case_rng(seed: int, user: str, item: str) -> np.random.Generator:
    """The generator of one evaluation case: stable across runs, processes and record orders."""
    return np.random.default_rng([seed, zlib.crc32(user.encode("utf-8")), zlib.crc32(item.encode("utf-8"))])


def sample_negatives(n_items: int, excluded: Collection[int], n: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` distinct item indices in ``[0, n_items)`` outside ``excluded`` (fewer if fewer exist)."""
    available = n_items - len(excluded)
    n = max(0, min(n, available))
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    if available < 4 * n:  # dense exclusion: draw from the explicit complement
        pool = np.setdiff1d(np.arange(n_items), np.fromiter(excluded, dtype=np.int64, count=len(excluded)))
        return np.sort(rng.choice(pool, size=n, replace=False))
    chosen: set[int] = set()
    while len(chosen) < n:  # rejection sampling: cheap when most items are allowed
        for value in rng.integers(0, n_items, size=2 * (n - len(chosen))):
            value = int(value)
            if value not in excluded and value not in chosen:
                chosen.add(value)
                if len(chosen) == n:
                    break
    return np.sort(np.fromiter(chosen, dtype=np.int64, count=n))


def rank_against(positive: float, negatives: np.ndarray) -> int:
    """0-based rank of the positive among the negatives; ties count against it (no optimistic ties)."""
    return int(np.count_nonzero(negatives >= positive))


def sampled_metrics(ranks: Sequence[int], k: int = K) -> dict[str, float]:
    """HR@k, NDCG@k and MRR from 0-based ranks of single held-out positives."""
    r = np.asarray(ranks, dtype=np.float64)
    if r.size == 0:
        return {}
    hit = r < k
    return {
        f"hr@{k}": float(hit.mean()),
        f"ndcg@{k}": float(np.where(hit, 1.0 / np.log2(r + 2.0), 0.0).mean()),
        "mrr": float((1.0 / (r + 1.0)).mean()),
    }


def full_ranking_metrics(top: Sequence[Sequence[int]], relevant: Sequence[Collection[int]],
                         k: int = K) -> dict[str, float]:
    """recall@k and NDCG@k (binary relevance) of each user's top-k list against its held-out positives."""
    recalls, ndcgs = [], []
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    for ranked, positives in zip(top, relevant):
        if not positives:
            continue
        gains = np.array([1.0 if item in positives else 0.0 for item in list(ranked)[:k]])
        recalls.append(gains.sum() / len(positives))
        ideal = discounts[: min(k, len(positives))].sum()
        ndcgs.append(float((gains * discounts[: len(gains)]).sum() / ideal))
    if not recalls:
        return {}
    return {f"recall@{k}_full": float(np.mean(recalls)), f"ndcg@{k}_full": float(np.mean(ndcgs))}


def top_k_excluding(scores: np.ndarray, excluded: Collection[int], k: int = K) -> list[int]:
    """Indices of the ``k`` best scores, skipping ``excluded`` (ties broken by index for determinism)."""
    scores = np.array(scores, dtype=np.float64, copy=True)
    if excluded:
        scores[np.fromiter(excluded, dtype=np.int64, count=len(excluded))] = -np.inf
    k = min(k, int(np.isfinite(scores).sum()))
    if k <= 0:
        return []
    part = np.argpartition(-scores, k - 1)[:k]
    return [int(i) for i in part[np.lexsort((part, -scores[part]))]]
