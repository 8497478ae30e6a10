"""``customer_service.intent``: intent classification with a calibrated FAISS retrieval fallback.

The classifier is the core text classifier fine-tuned on the in-scope intents. After fitting, the
training utterances (and the optional FAQ knowledge base) are embedded with the *fine-tuned* backbone
into a FAISS index stored inside the bundle. At prediction time one forward pass gives both the intent
probabilities and the query embedding; when the classifier is not confident enough, the nearest indexed
entries decide between "intent via retrieval" and "out of scope" (see ``calibration``).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from verticals import ConfigError, DataError
from verticals.backbones.collate import MODEL_KEYS
from verticals.backbones.embeddings import encode_texts
from verticals.backbones.retrieval import VectorIndex
from verticals.console import logger
from verticals.heads.sequence import pool
from verticals.metrics import classification_metrics, softmax
from verticals.runtime import autocast, module_device
from verticals.tasks.base import Evaluation
from verticals.tasks.transformer import check_labels_known

from .calibration import (
    NEEDS_OOS,
    SCORES,
    Outcomes,
    calibrate,
    choose_score,
    mixed_pseudo_unknowns,
    pseudo_unknown_threshold,
    rejection_threshold,
    single_score,
)
from .conversation import ConversationContext
from .knowledge import FaqEntry, read_faq
from .rule_note import advice_line, rule_line
from .schema import IntentDataOptions, IntentOptions, IntentPrediction, Match
from .taxonomy import DEFAULT_INTENTS

INDEX_NAME = "fallback_index"
# Labels that mean "none of the intents" in public data sets (CLINC150 uses 'oos'); seeing one in
# training data while task.oos_label names another almost always means a forgotten setting.
OOS_LOOKALIKES = {"oos", "out_of_scope", "outofscope", "ood", "out_of_domain", "unknown_intent"}


class IntentTask(ConversationContext):
    """Customer-service intents with a calibrated two-threshold retrieval fallback."""

    name = "customer_service.intent"
    description = "Customer-service intents; calibrated FAISS retrieval fallback and out-of-scope detection."
    Prediction = IntentPrediction
    Options = IntentOptions
    DataOptions = IntentDataOptions
    metric_names = ("accuracy", "macro_f1", "in_scope_accuracy", "oos_precision", "oos_recall", "oos_f1",
                    "fallback_rate", "classifier_accuracy")
    primary_metric = "accuracy"
    # `verticals distill`: 2 generated texts per training text, labelled by the teacher (issue 30: on Banking77's
    # open-intent protocol, 75 % known intents, draws 0-2, the x2 students validated at 94.67 in-scope
    # classifier accuracy against logits only's 94.54, and kept 24 % of the mpnet-base teacher's test gain
    # against 15 %; customer-service README)
    default_transfer_multiplier = 2

    # ---- labels: the out-of-scope label is never an intent ---------------------------------------
    def labels_from(self, records):  # type: ignore[no-untyped-def,override]
        oos = self.options.oos_label
        learnt = sorted({r.label for r in records if r.label != oos})
        for label in learnt:
            if label.lower().replace("-", "_").replace(" ", "_") in OOS_LOOKALIKES:
                raise DataError(f"training label '{label}' looks like an out-of-scope label, but task.oos_label "
                                f"is '{oos}'; set task.oos_label={label} (or rename the label)",
                                field=self.data_options.label_column)
        if not learnt:
            raise DataError(f"training data has no in-scope intents (every record is labelled '{oos}')",
                            field=self.data_options.label_column)
        return learnt

    def resolve_labels(self, train):  # type: ignore[no-untyped-def,override]
        declared = list(self.config.labels)
        if self.options.oos_label in declared:
            raise ConfigError(f"labels include the out-of-scope label '{self.options.oos_label}'; it is not an "
                              f"intent: drop it from labels (task.oos_label names it)")
        if declared == list(DEFAULT_INTENTS):
            # The shipped taxonomy is a default for the starter data: users' own intents replace it.
            return self.labels_from(train)
        return super().resolve_labels(train)

    def check_split(self, records, split, raw_path):  # type: ignore[no-untyped-def,override]
        check_labels_known(records, [*self.labels_, self.options.oos_label], split, raw_path,
                           self.data_options.label_column, lambda r: [r.label] if r.label is not None else [])

    # ---- fit: classifier, then index, then thresholds --------------------------------------------
    def fit(self, train, validation):  # type: ignore[no-untyped-def,override]
        oos = self.options.oos_label
        self.prepare(train)
        in_train = [r for r in train if r.label != oos]
        in_val = [r for r in validation if r.label != oos]
        # Out-of-scope rows of the training file were never trained on, so they are as good as
        # validation rows for calibrating how out-of-scope queries score.
        calibration = list(validation) + [r for r in train if r.label == oos]
        objective = self.options.objective
        if objective in NEEDS_OOS and not any(r.label == oos for r in calibration):
            raise DataError(f"task.objective={objective} needs out-of-scope examples, but no training or "
                            f"validation record is labelled '{oos}' (task.oos_label); label some "
                            f"'{oos}' or use objective=precision", field=self.data_options.label_column)
        # Read the knowledge base before training so a bad FAQ file fails in seconds, not after training.
        faq = read_faq(self.options.faq, self.labels_) if self.options.faq else []
        # The classifier is selected per epoch on in-scope rows without the fallback (thresholds are
        # calibrated only after training); the console says so instead of passing it for the summary.
        self.epoch_metrics_on = "in-scope validation, classifier only"
        self.epoch_metrics_note = (
            f"the {len(in_val)} in-scope validation rows of {len(validation)}, scored by the classifier alone; the "
            f"final summary scores all {len(validation)} validation rows with the calibrated out-of-scope fallback")
        super().fit(in_train, in_val)
        self.build_index(in_train, faq)
        self.calibrate(calibration)
        # with the other end-of-training lines (the best epoch, the baseline): which rule auto chose, and why
        for line in (rule_line(self.thresholds_, self.options), advice_line(self.thresholds_, self.options)):
            if line:
                logger.info("%s", line)
        return self

    def build_index(self, train: Sequence[Any], faq: Sequence[FaqEntry] = ()) -> None:
        """Index the training utterances and the FAQ questions with the fine-tuned backbone."""
        self.check_is_fitted("model_")
        texts = [r.text for r in train] + [e.question for e in faq]
        meta = ([{"text": r.text, "intent": r.label, "source": "utterance"} for r in train]
                + [{"text": e.question, "intent": e.intent, "answer": e.answer, "source": "faq"} for e in faq])
        vectors = encode_texts(self.model_.backbone, self.tokenizer_, texts,
                               max_length=self.config.training.max_length,
                               batch_size=self.config.training.eval_batch_size, precision=self.precision_)
        self.index_ = VectorIndex(vectors.shape[1]).add(vectors, meta)
        self._answers_from_index()

    def _answers_from_index(self) -> None:
        self.answers_: dict[str, str] = {}
        for entry in self.index_.metadata:
            if entry.get("source") == "faq" and entry.get("intent") and entry.get("answer"):
                self.answers_.setdefault(entry["intent"], entry["answer"])

    def calibrate(self, records: Sequence[Any]) -> None:
        """Choose the out-of-scope score and its threshold(s) on labelled records (out-of-scope ones labelled
        ``task.oos_label``); see :mod:`.calibration` for the rules."""
        outcomes = self.outcomes(records)
        opts = self.options
        has_oos = bool(outcomes.is_oos.any())
        objective = opts.objective
        in_scope = ~outcomes.is_oos
        per_intent = float(in_scope.sum()) / max(len(self.labels_), 1)
        if objective == "auto":
            objective = ("accuracy_at_oos_recall" if has_oos else "pseudo_unknown"
                         if per_intent >= opts.min_calibration_per_intent else "in_scope_rejection")
        extra = {"n_calibration": len(records), "n_out_of_scope": int(outcomes.is_oos.sum()),
                 "calibration_per_intent": round(per_intent, 2)}
        if objective in ("in_scope_rejection", "pseudo_unknown"):
            score = "similarity" if opts.oos_score == "auto" else opts.oos_score
            if score == "retrieval" or (objective == "pseudo_unknown" and score != "similarity"):
                raise ConfigError(f"task.objective={objective} sets one threshold on one score: use "
                                  f"task.oos_score=similarity{' or softmax' * (objective != 'pseudo_unknown')} "
                                  f"(or auto)")
            values = outcomes.nearest if score == "similarity" else outcomes.confidence
            if objective == "pseudo_unknown":
                threshold, achieved = pseudo_unknown_threshold(values[in_scope], outcomes.classifier_correct[in_scope],
                                                               outcomes.pseudo_unknown)
                target = None
            else:
                threshold, achieved, target = rejection_threshold(values[in_scope], opts.in_scope_rejection), {}, \
                    opts.in_scope_rejection
            rejected = values < threshold
            achieved |= {"in_scope_rejection": float(rejected[in_scope].mean()) if in_scope.any() else 0.0,
                         "fallback_rate": float(rejected.mean()) if len(values) else 0.0}
            if has_oos:
                achieved["oos_recall"] = float(rejected[outcomes.is_oos].mean())
            self.thresholds_ = {"score": score, "threshold": threshold, "objective": objective,
                                "target": target, "target_met": True, "achieved": achieved} | extra
            return
        names = SCORES if opts.oos_score == "auto" else (opts.oos_score,)
        found = {}
        for name in names:
            if name == "retrieval":
                found[name] = calibrate(outcomes, objective, oos_recall_target=opts.oos_recall_target,
                                        precision_target=opts.precision_target)
            else:
                values = outcomes.nearest if name == "similarity" else outcomes.confidence
                found[name] = calibrate(single_score(outcomes, values), objective, use_retrieval=False,
                                        oos_recall_target=opts.oos_recall_target,
                                        precision_target=opts.precision_target)
        score = choose_score(found)
        chosen = found[score]
        state = chosen.as_state()
        if score != "retrieval":
            state = {k: v for k, v in state.items() if k not in ("confidence", "similarity")}
            state["threshold"] = chosen.confidence  # the single score's threshold sits in the confidence slot
        compared = {name: {"target_met": t.target_met, **t.achieved} for name, t in found.items()}
        self.thresholds_ = {"score": score} | state | extra | ({"compared": compared} if len(found) > 1 else {})

    def outcomes(self, records: Sequence[Any]) -> Outcomes:
        """What the classifier and the retrieval each answer for labelled records (for calibration)."""
        probs, vectors = self._forward(records)
        hits = self.index_.search(vectors, self.options.top_k)
        retrieved = [self._vote(h) for h in hits]
        gold = np.array([r.label for r in records], dtype=object)
        argmax = np.array([self.labels_[i] for i in probs.argmax(-1)], dtype=object)
        in_scope = gold != self.options.oos_label
        pseudo = mixed_pseudo_unknowns(vectors[in_scope], list(gold[in_scope]), self.options.pseudo_unknown_mix,
                                       seed=self.config.training.seed)
        pseudo_hits = self.index_.search(pseudo, 1) if len(pseudo) else []
        return Outcomes(
            pseudo_unknown=np.array([h[0][0] if h else -1.0 for h in pseudo_hits], dtype=np.float64),
            confidence=probs.max(-1), classifier_correct=argmax == gold,
            similarity=np.array([s for _, s in retrieved], dtype=np.float64),
            retrieval_correct=np.array([i for i, _ in retrieved], dtype=object) == gold,
            is_oos=gold == self.options.oos_label,
            nearest=np.array([h[0][0] if h else -1.0 for h in hits], dtype=np.float64))

    # ---- prediction ------------------------------------------------------------------------------
    def _forward(self, records: Sequence[Any]) -> tuple[np.ndarray, np.ndarray]:
        """One pass of the fine-tuned backbone gives intent probabilities and the (mean-pooled, unit)
        query embedding the index was built with, so the fallback costs no second forward pass -- except for
        records read with earlier turns: retrieval keys on the current utterance, encoded again alone."""
        self.check_is_fitted("model_")
        probs, vectors = self._run(self.encode(records, with_labels=False))
        paired = self.with_context(records)
        if paired:
            _, vectors[paired] = self._run(self.utterance_features([records[i] for i in paired]))
        return probs, vectors

    def _run(self, features: list[dict[str, Any]]) -> tuple[np.ndarray, np.ndarray]:
        hidden_size = int(self.model_.backbone.config.hidden_size)
        probs = np.zeros((len(features), len(self.labels_)), dtype=np.float64)
        vectors = np.zeros((len(features), hidden_size), dtype=np.float32)
        if not features:
            return probs, vectors
        collator = self._collator()
        order = np.argsort([-len(f["input_ids"]) for f in features], kind="stable")
        dev = module_device(self.model_)
        size = self.config.training.eval_batch_size
        self.model_.eval()
        with torch.inference_mode(), autocast(self.precision_, dev):
            for start in range(0, len(order), size):
                idx = order[start:start + size]
                batch = collator([{k: features[i][k] for k in MODEL_KEYS if k in features[i]} for i in idx])
                batch = {k: v.to(dev) for k, v in batch.items()}
                hidden = self.model_.backbone(**batch).last_hidden_state
                logits = self.model_.head(hidden, batch["attention_mask"]).logits
                probs[idx] = softmax(logits.float().cpu().numpy().astype(np.float64))
                pooled = pool(hidden.float(), batch["attention_mask"], "mean")
                vectors[idx] = torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()
        return probs, vectors

    @staticmethod
    def _vote(hits: list[tuple[float, dict[str, Any]]]) -> tuple[str | None, float]:
        """Similarity-weighted vote of the retrieved entries; returns (intent, best similarity for it)."""
        totals: dict[str, float] = defaultdict(float)
        best: dict[str, float] = {}
        for similarity, meta in hits:
            intent = meta.get("intent")
            if intent:
                totals[intent] += max(similarity, 0.0)
                best[intent] = max(best.get(intent, -1.0), similarity)
        if not totals:
            return None, max((s for s, _ in hits), default=-1.0)
        winner = max(totals, key=lambda name: (totals[name], best[name]))
        return winner, best[winner]

    def predict(self, records, *, fallback: bool | None = None):  # type: ignore[no-untyped-def,override]
        """Predict intents; ``fallback=False`` gives the classifier alone (default: ``task.fallback``)."""
        self.check_is_fitted("thresholds_")
        use_fallback = self.options.fallback if fallback is None else fallback
        probs, vectors = self._forward(records)
        score = self.thresholds_.get("score", "retrieval")  # bundles from before the score choice: retrieval
        if not use_fallback:
            return [self._classifier_answer(row, "fallback disabled") for row in probs]
        if score != "retrieval":
            return self._predict_single_score(probs, vectors, score)
        conf_t, sim_t = self.thresholds_["confidence"], self.thresholds_["similarity"]
        low = np.flatnonzero(probs.max(-1) < conf_t)
        hits = dict(zip(low.tolist(), self.index_.search(vectors[low], self.options.top_k))) if len(low) else {}
        out = []
        for i, row in enumerate(probs):
            intent, confidence, scores = self._top(row)
            if i not in hits:
                out.append(self._classifier_answer(row, f"confidence {confidence:.3f} >= threshold {conf_t:.3f}"))
                continue
            matches = [self._match(s, m) for s, m in hits[i]]
            voted, similarity = self._vote(hits[i])
            why = f"confidence {confidence:.3f} < threshold {conf_t:.3f}; "
            if voted is not None and similarity >= sim_t:
                reason = why + f"retrieved intent '{voted}' at similarity {similarity:.3f} >= {sim_t:.3f}"
                answer = self.answers_.get(voted)
                out.append(IntentPrediction(intent=voted, confidence=confidence, out_of_scope=False,
                                            fallback=True, reason=reason, answer=answer, matches=matches,
                                            scores=scores))
            else:
                reason = why + f"best retrieval similarity {similarity:.3f} < {sim_t:.3f}: out of scope"
                out.append(self._out_of_scope(confidence, reason, matches, scores))
        return out

    def _predict_single_score(self, probs: np.ndarray, vectors: np.ndarray, score: str) -> list[IntentPrediction]:
        """One threshold on one score: at or above it the classifier answers, below it out of scope."""
        threshold = float(self.thresholds_["threshold"])
        hits = self.index_.search(vectors, self.options.top_k) if len(vectors) else []
        out = []
        for row, found in zip(probs, hits):
            intent, confidence, scores = self._top(row)
            value, what = ((found[0][0] if found else -1.0), "nearest utterance similarity") \
                if score == "similarity" else (confidence, "confidence")
            if value >= threshold:
                out.append(self._classifier_answer(row, f"{what} {value:.3f} >= threshold {threshold:.3f}"))
            else:
                reason = f"{what} {value:.3f} < threshold {threshold:.3f}: out of scope"
                out.append(self._out_of_scope(confidence, reason, [self._match(s, m) for s, m in found], scores))
        return out

    def _classifier_answer(self, row: np.ndarray, reason: str) -> IntentPrediction:
        intent, confidence, scores = self._top(row)
        return IntentPrediction(intent=intent, confidence=confidence, out_of_scope=False, fallback=False,
                                reason=reason, answer=self.answers_.get(intent), scores=scores)

    def _top(self, row: np.ndarray) -> tuple[str, float, dict[str, float]]:
        top = int(row.argmax())
        return self.labels_[top], float(row[top]), {label: float(p) for label, p in zip(self.labels_, row)}

    def _out_of_scope(self, confidence: float, reason: str, matches: list[Match],
                      scores: dict[str, float]) -> IntentPrediction:
        return IntentPrediction(intent=self.options.oos_label, confidence=confidence, out_of_scope=True,
                                fallback=True, reason=reason, matches=matches, scores=scores)

    def _match(self, similarity: float, meta: dict[str, Any]) -> Match:
        intent = meta.get("intent")
        answer = meta.get("answer") or (self.answers_.get(intent) if intent else None)
        return Match(text=meta["text"], intent=intent, answer=answer, similarity=float(similarity),
                     source=meta.get("source", "utterance"))

    def decode(self, records, features, logits):  # type: ignore[no-untyped-def,override]
        # Used while the classifier trains (model selection on in-scope validation): no fallback yet.
        predictions = super().decode(records, features, logits)
        return [IntentPrediction(intent=p.label, confidence=p.score, out_of_scope=False, fallback=False,
                                 reason="classifier only", scores=p.scores) for p in predictions]

    # ---- metrics -----------------------------------------------------------------------------------
    def score(self, records, predictions):  # type: ignore[no-untyped-def,override]
        oos = self.options.oos_label
        y_true = [r.label for r in records]
        y_pred = [p.intent for p in predictions]
        labels = list(self.labels_) + ([oos] if oos in set(y_true) | set(y_pred) else [])
        metrics, per_label, details = classification_metrics(y_true, y_pred, labels)
        metrics = {"accuracy": metrics["accuracy"], "macro_f1": metrics["macro_f1"]}
        gold_oos = np.array([t == oos for t in y_true], dtype=bool)
        pred_oos = np.array([p.out_of_scope for p in predictions], dtype=bool)
        correct = np.array([t == p for t, p in zip(y_true, y_pred)], dtype=bool)
        if (~gold_oos).any():
            metrics["in_scope_accuracy"] = float(correct[~gold_oos].mean())
        # Out-of-scope rates are reported only where defined (a 0 for "no such examples" would lie).
        if pred_oos.any():
            metrics["oos_precision"] = float((gold_oos & pred_oos).sum() / pred_oos.sum())
        if gold_oos.any():
            recall = float((gold_oos & pred_oos).sum() / gold_oos.sum())
            precision = metrics.get("oos_precision", 0.0)
            metrics["oos_recall"] = recall
            metrics["oos_f1"] = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        metrics["fallback_rate"] = float(np.mean([p.fallback for p in predictions])) if predictions else 0.0
        # What the classifier alone would have scored on the same records, so the fallback's cost (or gain)
        # is visible: its top intent is in every prediction's scores.
        alone = [max(p.scores, key=p.scores.__getitem__) if p.scores else p.intent for p in predictions]
        metrics["classifier_accuracy"] = float(np.mean([t == a for t, a in zip(y_true, alone)])) if alone else 0.0
        return Evaluation(task=self.task_name, n=len(records), metrics=metrics, per_label=per_label,
                          details=details)

    # ---- export ------------------------------------------------------------------------------------
    def embedding_pooling(self) -> str:
        return "mean"  # what the index was built with (build_index, _forward), whatever the head pools

    def export_extras(self, directory: Path) -> dict[str, Any]:
        """The fallback index (faiss + metadata with FAQ answers) and the calibrated decision rule."""
        self.check_is_fitted("thresholds_")
        self.index_.save(directory, INDEX_NAME)
        return super().export_extras(directory) | {
            "kind": "customer_service.intent",
            "rule": ("confidence = max softmax(logits). score 'retrieval': if fallback and confidence < "
                     "confidence_threshold: search the index with the graph's unit 'embeddings' (inner product), "
                     "top_k entries vote for their intent with weight max(similarity, 0) (ties: higher best "
                     "similarity); the winner answers if its best similarity >= similarity_threshold, else out of "
                     "scope. score 'similarity': if fallback and the nearest entry's similarity < threshold: out of "
                     "scope, else the classifier's intent. score 'softmax': the same with confidence"),
            "oos_label": self.options.oos_label,
            "fallback": self.options.fallback,
            "score": self.thresholds_.get("score", "retrieval"),
            "threshold": self.thresholds_.get("threshold"),
            "confidence_threshold": self.thresholds_.get("confidence"),
            "similarity_threshold": self.thresholds_.get("similarity"),
            "top_k": self.options.top_k,
            "index": {"faiss": f"{INDEX_NAME}.faiss", "metadata": f"{INDEX_NAME}.json", "entries": len(self.index_),
                      "embedding_output": "embeddings"},
            "answers": dict(self.answers_),
            "calibration": dict(self.thresholds_),
        } | self.context_decision()

    # ---- persistence -------------------------------------------------------------------------------
    def save(self, directory: Path) -> None:
        super().save(directory)
        self.index_.save(directory, INDEX_NAME)

    def state(self) -> dict[str, Any]:
        sources = [m.get("source") for m in self.index_.metadata]
        return super().state() | {
            "oos_label": self.options.oos_label,
            "thresholds": self.thresholds_,
            "index": {"file": f"{INDEX_NAME}.faiss", "utterances": sources.count("utterance"),
                      "faq": sources.count("faq")},
        }

    def load_state(self, directory: Path, state: dict[str, Any]) -> None:
        super().load_state(directory, state)
        self.index_ = VectorIndex.load(directory, INDEX_NAME)
        self._answers_from_index()
        self.thresholds_ = dict(state["thresholds"])
