"""``recommendation.scoring``: a text two-tower recommender with a FAISS index over the whole catalogue."""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np
import torch
from verticals import DataError, Evaluation, TaskType
from verticals.backbones.embeddings import encode_texts
from verticals.backbones.loading import (
    check_max_length,
    load_backbone,
    load_bundle_backbone,
    load_bundle_tokenizer,
    load_tokenizer,
    resolve_backbone,
)
from verticals.backbones.retrieval import VectorIndex
from verticals.bundles.bundle import read_manifest, read_verified
from verticals.console import TrainingConsole
from verticals.data.records import RawRecord
from verticals.errors import BundleError, ConfigError
from verticals.runtime import configure_threads, resolve_precision

from .catalogue import Catalogue, Histories, build_histories, check_items, is_positive, read_catalogue
from .collaborative import Reranker, item_neighbours, knn_scores, load_neighbours, save_neighbours
from .evaluation import protocol_cases, rank_cases
from .ranking import case_rng, sample_negatives
from .schema import InteractionRecord, RecommendationData, RecommendationOptions, Recommendations, ScoredItem
from .towers import Pair, fit_two_tower, user_text

logger = logging.getLogger("verticals")

BACKBONE_DIR = "backbone"
INDEX_NAME = "items"
HISTORIES_FILE = "histories.json"
NEIGHBOURS_FILE = "neighbours.safetensors"
USER_BLOCK = 256  # histories scored at once: bounds the dense [users, items] feature blocks
BASE_METRICS = ("hr@10", "ndcg@10", "mrr", "recall@10_full", "ndcg@10_full")


class RecommendationTask(TaskType):
    """Interactions + item catalogue in; ranked items per user out. Cold items are ranked from their text."""

    name = "recommendation.scoring"
    description = "Two-tower text recommender (item text / history text) with FAISS retrieval"
    Record = InteractionRecord
    Prediction = Recommendations
    DataOptions = RecommendationData
    Options = RecommendationOptions
    metric_names: ClassVar[tuple[str, ...]] = BASE_METRICS
    extra_metric_names: ClassVar[tuple[str, ...]] = tuple(
        f"{m}_{part}" for part in ("warm", "cold") for m in BASE_METRICS
    )
    primary_metric = "hr@10"
    label_field = None
    export_unsupported = ("it ranks a catalogue through item and user towers, a FAISS candidate index, "
                          "collaborative factors and a re-ranker, not one network's logits")

    # ---- data --------------------------------------------------------------------------------
    def field_map(self) -> dict[str, str]:
        d = self.data_options
        return {"user": d.user_column, "item": d.item_column, "rating": d.rating_column,
                "timestamp": d.timestamp_column}

    def record_from_text(self, text: str) -> dict[str, Any]:
        """A bare CLI argument is a user id."""
        return {self.data_options.user_column: text}

    def example_record(self) -> dict[str, Any]:
        """A user the model knows (the docs example of `verticals serve`), and how many items to return."""
        known = next((user for user, positives in self.histories_.positives.items() if positives), "USER_ID") \
            if hasattr(self, "histories_") else "USER_ID"
        return {"user": known, "k": self.options.k}

    def to_record(self, raw: RawRecord, *, require_labels: bool = True) -> InteractionRecord:
        record = super().to_record(raw, require_labels=require_labels)
        if require_labels and record.item is None:  # type: ignore[attr-defined]
            column = self.data_options.item_column
            found = ", ".join(map(str, raw.data)) or "none"
            problem = "empty item id" if column in raw.data else f"missing column '{column}' (found: {found})"
            raise DataError(f"{problem}; every interaction needs an item (data.item_column)",
                            path=raw.path, line=raw.line, field=column)
        return record  # type: ignore[return-value]

    def check_split(self, records: Sequence[Any], split: str, raw_path: str | Path | None) -> None:
        check_items(records, self._catalogue(), self.data_options, raw_path)

    def _catalogue(self) -> Catalogue:
        if not hasattr(self, "catalogue_"):
            self.catalogue_ = read_catalogue(self.data_options)
        return self.catalogue_

    # ---- estimator ---------------------------------------------------------------------------
    def prepare(self, train: Sequence[Any]) -> None:
        """Read the catalogue and the training histories; every interaction must name a catalogue item."""
        catalogue = self._catalogue()
        check_items(train, catalogue, self.data_options)
        self.histories_ = build_histories(train, catalogue, self.data_options)
        if not any(self.histories_.positives.values()):
            raise DataError(f"no positive interactions in the training data (rating >= "
                            f"{self.data_options.positive_threshold}); lower data.positive_threshold",
                            field=self.data_options.rating_column)
        counts = np.zeros(len(catalogue), dtype=np.int64)
        for seen in self.histories_.seen.values():
            counts[seen] += 1
        self.interaction_counts_ = counts
        self.log_popularity_ = self._log_popularity()
        self.neighbours_ = item_neighbours(self.histories_.seen, len(catalogue), self.options.neighbours)

    def _log_popularity(self) -> np.ndarray:
        """The re-ranker's popularity feature: log(1 + training positives) per item (derived from the histories)."""
        return np.log1p(np.asarray(self.histories_.positive_counts(len(self.catalogue_)), np.float32))

    def _pairs(self) -> list[Pair]:
        opts, texts = self.options, self.catalogue_.texts
        pairs = []
        for user in sorted(self.histories_.positives):
            positives = self.histories_.positives[user]
            first = 1 if opts.targets_per_user is None else max(1, len(positives) - opts.targets_per_user)
            pairs.extend(Pair(user_text(texts, positives[:t], opts.history_length), positives[t])
                         for t in range(first, len(positives)))
        if len(pairs) < 2:
            raise DataError("too few training pairs: the user tower learns from users with at least two positive "
                            "interactions (a history and a next item); add interactions or lower "
                            "data.positive_threshold", field=self.data_options.user_column)
        return pairs

    def fit(self, train: Sequence[Any], validation: Sequence[Any]) -> RecommendationTask:
        training = self.config.training
        if training.strategy != "full":
            raise ConfigError(f"training.strategy={training.strategy} is not supported by {self.name}; use full")
        configure_threads(training.num_threads)
        random.seed(training.seed)
        np.random.seed(training.seed)
        torch.manual_seed(training.seed)
        self.prepare(train)
        self.reranker_: Reranker | None = None
        self.precision_ = resolve_precision(training.precision)
        self.backbone_path_ = str(resolve_backbone(training.backbone))
        check_max_length(self.backbone_path_, training.max_length)
        check_max_length(self.backbone_path_, self.options.item_max_length, "task.item_max_length")
        self.tokenizer_ = load_tokenizer(self.backbone_path_)
        self.backbone_ = load_backbone(self.backbone_path_)
        pairs = self._pairs()
        log_q = None
        if self.options.logq_correction:
            counts = np.bincount([p.item for p in pairs], minlength=len(self.catalogue_)).astype(np.float64)
            log_q = np.log((counts + 1.0) / (counts.sum() + len(counts)))
        cases = [r for r in validation if is_positive(r, self.data_options.positive_threshold)]

        def validate() -> dict[str, float]:
            self._index_items()
            return self._evaluate(cases, limit=self.options.max_validation_cases).metrics

        limit = self.options.max_validation_cases
        subset = limit is not None and limit < len(cases)
        console = TrainingConsole(
            total_epochs=max(1, math.ceil(training.epochs)), primary_metric="hr@10",
            metrics_on="validation, two-tower only" + (f", {limit} of {len(cases)} cases" if subset else ""),
            note=("ranking metrics of the two-tower similarity before the re-ranker is fitted"
                  + (f", on a seeded subset of {limit} of the {len(cases)} validation positives" if subset else "")
                  + "; the final summary ranks every validation case with the final scorer"))
        self.training_log_ = fit_two_tower(
            self.backbone_, self.tokenizer_, pairs, self.catalogue_.texts, training=training,
            temperature=self.options.temperature, item_max_length=self.options.item_max_length, log_q=log_q,
            precision=self.precision_,
            # a single epoch leaves nothing to select, so it skips the per-epoch validation pass
            validate=validate if cases and training.epochs > 1 else None, console=console,
        )
        self.history_ = console.history
        self._index_items()
        if self.options.rerank:
            self.reranker_ = self._fit_reranker(cases, validation)
        return self

    def _fit_reranker(self, positives: Sequence[InteractionRecord], validation: Sequence[Any]) -> Reranker | None:
        """The re-ranking head from the validation positives, each against sampled negatives (see collaborative)."""
        seed = self.config.training.seed + 1  # other negatives than the evaluation protocol's draws
        known = {u for u, p in self.histories_.positives.items() if p}
        cases, _ = protocol_cases(positives, self.catalogue_.index, known, seed=seed, limit=None)
        if len(cases) < self.options.rerank_min_cases:
            logger.warning("re-ranker skipped: %d validation positives of users with positive training "
                           "interactions (task.rerank_min_cases=%d); the score is the two-tower similarity",
                           len(cases), self.options.rerank_min_cases)
            return None
        logger.info("fitting the re-ranker on %d validation positives", len(cases))
        touched = {u: set(self.histories_.seen.get(u, [])) for u, _ in cases}
        for r in validation:  # another validation positive of the same user is not a negative either
            if r.user in touched and r.item in self.catalogue_.index:
                touched[r.user].add(self.catalogue_.index[r.item])
        n_items = len(self.catalogue_)
        # as many negatives per case as every case can have (a tiny catalogue has fewer than eval_negatives)
        n = min(self.options.eval_negatives, *(n_items - len(touched[u] | {i}) for u, i in cases))
        if n < 1:
            return None
        rows = np.stack([np.concatenate([[item], sample_negatives(n_items, touched[user] | {item}, n,
                                                                  case_rng(seed, user, self.catalogue_.ids[item]))])
                         for user, item in cases])
        histories = [self.histories_.positives[u] for u, _ in cases]
        features = self._features(histories, rows)
        labels = np.zeros(rows.shape, dtype=np.int64)
        labels[:, 0] = 1
        return Reranker.fit(features.reshape(-1, features.shape[-1]), labels.ravel(),
                            (self.interaction_counts_[rows] == 0).ravel())

    def _encode(self, texts: Sequence[str], max_length: int) -> np.ndarray:
        return encode_texts(self.backbone_, self.tokenizer_, texts, max_length=max_length,
                            batch_size=self.config.training.eval_batch_size, precision=self.precision_)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-length embeddings from the fine-tuned shared tower, as items are indexed (item token budget)."""
        self.check_is_fitted("backbone_")
        return self._encode(list(texts), self.options.item_max_length)

    def _index_items(self) -> None:
        vectors = self._encode(self.catalogue_.texts, self.options.item_max_length)
        self.item_vectors_ = vectors
        self.index_ = VectorIndex(vectors.shape[1]).add(
            vectors, [{"item": i, "text": t} for i, t in zip(self.catalogue_.ids, self.catalogue_.texts)])

    # ---- prediction --------------------------------------------------------------------------
    def _history(self, record: InteractionRecord) -> list[int]:
        path, line = record.origin()
        if record.history:
            return [self.catalogue_.position(i, path=path, line=line, field="history") for i in record.history]
        positives = self.histories_.positives.get(record.user)
        if not positives:
            known = "has no positive interactions" if record.user in self.histories_.seen else "is unknown"
            raise DataError(f"user '{record.user}' {known} in the training data, so there is nothing to build "
                            f"the user from; pass 'history' (liked item ids) with the request",
                            path=path, line=line, field=self.data_options.user_column)
        return positives

    def user_vectors(self, histories: Sequence[Sequence[int]]) -> np.ndarray:
        """User-tower embeddings of the given positive histories (item rows, most recent last)."""
        texts = [user_text(self.catalogue_.texts, h, self.options.history_length) for h in histories]
        return self._encode(texts, self.config.training.max_length)

    def _features(self, histories: Sequence[Sequence[int]], items: np.ndarray,
                  vectors: np.ndarray | None = None) -> np.ndarray:
        """Re-ranker features ``[len(histories), n, len(FEATURES)]`` of ``items`` ([n] shared or [users, n])."""
        return np.concatenate([features for _, features in self._feature_blocks(histories, items, vectors)])

    def _feature_blocks(self, histories: Sequence[Sequence[int]], items: np.ndarray,
                        vectors: np.ndarray | None = None) -> Iterator[tuple[slice, np.ndarray]]:
        """``_features`` in blocks of ``USER_BLOCK`` histories, so a caller can score and drop each block."""
        if vectors is None:
            vectors = self.user_vectors(histories)
        for start in range(0, len(histories), USER_BLOCK):
            block = slice(start, start + USER_BLOCK)
            cols = items if items.ndim == 1 else items[block]
            similarity = (vectors[block, None, :] @ np.swapaxes(self.item_vectors_[cols], -1, -2)).squeeze(-2) \
                if items.ndim == 2 else vectors[block] @ self.item_vectors_[cols].T
            knn, recent = knn_scores(self.neighbours_, histories[block], self.options.recent_positives)
            if items.ndim == 1:
                knn_v, recent_v = knn[:, cols].toarray(), recent[:, cols].toarray()
            else:
                at = (np.arange(len(cols))[:, None], cols)
                knn_v, recent_v = knn[at].toarray(), recent[at].toarray()
            yield block, Reranker.features(similarity, self.log_popularity_[cols], knn_v, recent_v)

    def score_items(self, histories: Sequence[Sequence[int]], items: np.ndarray | None = None,
                    vectors: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ranking score, similarity) ``[len(histories), n]`` of ``items`` (rows; default the whole catalogue)."""
        if vectors is None:
            vectors = self.user_vectors(histories)
        cols = np.arange(len(self.catalogue_)) if items is None else np.asarray(items, dtype=np.int64)
        reranker = self.reranker_
        if reranker is None:
            similarity = vectors @ self.item_vectors_[cols].T
            return similarity, similarity
        scores = np.empty((len(histories), len(cols)), dtype=np.float32)
        similarity = np.empty_like(scores)
        cold = self.interaction_counts_[cols] == 0
        for block, features in self._feature_blocks(histories, cols, vectors):
            scores[block] = reranker.score(features, cold)
            similarity[block] = features[..., 0]
        return scores, similarity

    def _candidates(self, history: Sequence[int], vector: np.ndarray, excluded: set[int], k: int) -> np.ndarray:
        """Rows worth scoring for a top-k: the FAISS nearest items, plus the item-kNN neighbours of the history
        when the re-ranker ranks (it can lift an item the text alone puts far down)."""
        budget = k + len(excluded) + (self.options.candidates if self.reranker_ else 0)
        hits = self.index_.search_one(vector, min(len(self.catalogue_), budget))
        rows = {self.catalogue_.index[m["item"]] for _, m in hits}
        if self.reranker_ is not None:
            knn, _ = knn_scores(self.neighbours_, [history], self.options.recent_positives)
            rows.update(int(i) for i in knn.indices)
        return np.array(sorted(rows - excluded), dtype=np.int64)

    def predict(self, records: Sequence[Any]) -> list[Recommendations]:
        self.check_is_fitted("index_")
        histories = [self._history(r) for r in records]
        vectors = self.user_vectors(histories)
        out = []
        for record, history, vector in zip(records, histories, vectors):
            path, line = record.origin()
            if record.items:
                rows = np.array([self.catalogue_.position(i, path=path, line=line, field="items")
                                 for i in record.items], dtype=np.int64)
            else:
                excluded: set[int] = set()
                if record.exclude_seen:  # the given history and every training interaction of the user
                    excluded.update(history, self.histories_.seen.get(record.user, []))
                k = record.k or self.options.k
                rows = self._candidates(history, vector, excluded, k)
            scores, similarity = self.score_items([history], rows, vector[None, :])
            order = np.lexsort((rows, -scores[0]))  # best first, ties by catalogue row
            if not record.items:
                order = order[:k]
            out.append(Recommendations(user=record.user, items=[
                ScoredItem(item=self.catalogue_.ids[rows[j]], score=float(scores[0, j]),
                           similarity=float(similarity[0, j]), cold=bool(self.interaction_counts_[rows[j]] == 0),
                           text=self.catalogue_.texts[rows[j]]) for j in order]))
        return out

    # ---- evaluation --------------------------------------------------------------------------
    def evaluate(self, records: Sequence[Any]) -> Evaluation:
        """Leave-out ranking metrics: each positive against sampled negatives, and full-catalogue top-10."""
        self.check_is_fitted("index_")
        return self._evaluate([r for r in records if is_positive(r, self.data_options.positive_threshold)])

    def _evaluate(self, positives: Sequence[InteractionRecord], limit: int | None = None) -> Evaluation:
        seed = self.options.eval_seed if self.options.eval_seed is not None else self.config.training.seed
        return rank_cases(self, positives, seed=seed, limit=limit)

    def score(self, records: Sequence[Any], predictions: Sequence[Any]) -> Evaluation:
        """Full-ranking recall@10/NDCG@10 of given top-k predictions against the records' positives."""
        from .ranking import full_ranking_metrics

        relevant: dict[str, set[str]] = {}
        for r in records:
            if r.item is not None and is_positive(r, self.data_options.positive_threshold):
                relevant.setdefault(r.user, set()).add(r.item)
        tops: dict[str, list[str]] = {}
        for p in predictions:
            tops.setdefault(p.user, [s.item for s in p.items])
        users = [u for u in relevant if u in tops]
        metrics = full_ranking_metrics([tops[u] for u in users], [relevant[u] for u in users])
        return Evaluation(task=self.task_name, n=len(users), metrics=metrics)

    # ---- persistence -------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        self.check_is_fitted("index_")
        self.backbone_.save_pretrained(directory / BACKBONE_DIR, safe_serialization=True)
        self.tokenizer_.save_pretrained(directory / BACKBONE_DIR)
        self.index_.save(directory, INDEX_NAME)
        save_neighbours(self.neighbours_, directory / NEIGHBOURS_FILE)
        payload = {"histories": self.histories_.to_json(self.catalogue_),
                   "interaction_counts": self.interaction_counts_.tolist()}
        (directory / HISTORIES_FILE).write_text(json.dumps(payload, ensure_ascii=False) + "\n", encoding="utf-8")

    def state(self) -> dict[str, Any]:
        return {"items": len(self.catalogue_), "users": len(self.histories_.seen),
                "cold_items": int((self.interaction_counts_ == 0).sum()),
                "training_log": getattr(self, "training_log_", {}),
                "reranker": self.reranker_.to_json() if self.reranker_ else None}

    def summary(self) -> dict[str, Any]:
        return {"precision": self.precision_, "parameters": int(sum(p.numel() for p in self.backbone_.parameters())),
                "backbone": {"source": self.config.training.backbone,
                             "model_type": getattr(self.backbone_.config, "model_type", None)},
                "towers": "shared backbone, mean pooling, cosine similarity",
                "score": "re-ranker log-odds" if self.reranker_ else "cosine similarity"}

    def load_state(self, directory: Path, state: dict[str, Any]) -> None:
        self.index_ = VectorIndex.load(directory, INDEX_NAME)
        ids = [m["item"] for m in self.index_.metadata]
        self.catalogue_ = Catalogue(ids, [m["text"] for m in self.index_.metadata])
        self.item_vectors_ = self.index_.index.reconstruct_n(0, len(self.index_))
        try:
            payload = json.loads(read_verified(directory, HISTORIES_FILE))
            self.histories_ = Histories.from_json(payload["histories"], self.catalogue_)
            self.interaction_counts_ = np.asarray(payload["interaction_counts"], dtype=np.int64)
        except (OSError, KeyError, ValueError) as exc:
            raise BundleError(f"{directory / HISTORIES_FILE}: unreadable user histories ({exc})") from None
        self.log_popularity_ = self._log_popularity()
        reranker = state.get("reranker")
        self.reranker_ = Reranker.from_json(reranker) if reranker else None
        # bundles written before the re-ranker existed have neither (and rank by similarity); whether this one
        # has them is the (pinned) manifest's to say, not the folder's as it is now
        self.neighbours_ = (load_neighbours(directory / NEIGHBOURS_FILE, read_verified(directory, NEIGHBOURS_FILE))
                            if NEIGHBOURS_FILE in read_manifest(directory)["files"] else None)
        self.tokenizer_ = load_bundle_tokenizer(directory, BACKBONE_DIR)
        self.backbone_ = load_bundle_backbone(directory, BACKBONE_DIR)
        self.backbone_.eval()
        configure_threads(self.config.training.num_threads)
        self.precision_ = resolve_precision(self.config.training.precision)
