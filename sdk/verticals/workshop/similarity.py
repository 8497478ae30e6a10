"""The checks of ``verticals check`` that need a model: near duplicates and near leakage (cosine of the
backbone's sentence embeddings, FAISS exact inner-product search) and likely label errors (cleanlab's
``find_label_issues`` on out-of-fold probabilities of a logistic regression on the frozen embeddings).

The embeddings are the task's *pretrained* backbone, mean-pooled and L2-normalised (as
:func:`verticals.backbones.embeddings.encode_texts` computes them): no fine-tuning, so a check costs one forward pass
over the data plus a few seconds of scikit-learn.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..tasks.data_findings import EXAMPLES, Finding, Item, Suspect, share, short

NEAR_DUPLICATE_COSINE = 0.95
"""Two texts are near duplicates when the cosine of their embeddings is at least this (and they are not
exact duplicates). With all-MiniLM-L6-v2, 0.95 pairs texts that differ in punctuation, casing, a stop word
or a number ("I lost my card" / "I have lost my card"); paraphrases with other words score 0.8-0.9."""
NEIGHBOURS = 10
"""Nearest neighbours looked at per text for near duplicates (a text with more than this many near
copies still shows; its count is a lower bound)."""
FOLDS = 5
"""Cross-validation folds for the out-of-fold probabilities (fewer when a label has fewer records)."""
LOGISTIC_C = 10.0
"""Inverse regularisation of the logistic regression on unit-length embeddings, chosen by out-of-fold
accuracy on the unmodified Banking77 training set with all-MiniLM-L6-v2: C=1 0.903, C=10 0.921, C=100 0.919."""
_last: dict[str, Any] = {}


def embed(backbone_name: str, texts: Sequence[str], *, max_length: int, batch_size: int = 64) -> np.ndarray:
    """Unit-length ``[len(texts), hidden]`` embeddings from the pretrained backbone ``backbone_name``."""
    from ..backbones.embeddings import encode_texts
    from ..backbones.loading import load_backbone, load_tokenizer, resolve_backbone

    path = resolve_backbone(backbone_name)
    # The last result is kept (one entry): checking the same data again in a session (a notebook, a
    # benchmark that changes only labels) costs no second forward pass over it.
    key = (str(path), max_length, hash(tuple(texts)), len(texts))
    if _last.get("key") == key:
        return _last["vectors"]
    tokenizer = load_tokenizer(path)
    backbone = load_backbone(path)
    vectors = encode_texts(backbone, tokenizer, list(texts), max_length=max_length, batch_size=batch_size)
    _last.update(key=key, vectors=vectors)
    return vectors


def near_pairs(vectors: np.ndarray, threshold: float = NEAR_DUPLICATE_COSINE,
               k: int = NEIGHBOURS) -> list[tuple[int, int, float]]:
    """Pairs ``(i, j, cosine)`` with ``i < j`` among unit ``vectors`` whose cosine is >= ``threshold``."""
    import faiss

    if len(vectors) < 2:
        return []
    index = faiss.IndexFlatIP(vectors.shape[1])
    index.add(np.ascontiguousarray(vectors, dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(vectors, dtype=np.float32), min(k + 1, len(vectors)))
    pairs = {}
    for i, (row_s, row_i) in enumerate(zip(scores, ids)):
        for score, j in zip(row_s, row_i):
            if j >= 0 and j != i and score >= threshold:
                key = (min(i, int(j)), max(i, int(j)))
                pairs[key] = max(pairs.get(key, -1.0), float(score))
    return sorted(((i, j, s) for (i, j), s in pairs.items()), key=lambda p: (-p[2], p[0], p[1]))


def nearest(queries: np.ndarray, corpus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each query, (cosine, index) of its nearest corpus vector."""
    import faiss

    if len(queries) == 0 or len(corpus) == 0:
        return np.zeros(len(queries), dtype=np.float32), np.full(len(queries), -1)
    index = faiss.IndexFlatIP(corpus.shape[1])
    index.add(np.ascontiguousarray(corpus, dtype=np.float32))
    scores, ids = index.search(np.ascontiguousarray(queries, dtype=np.float32), 1)
    return scores[:, 0], ids[:, 0]


def out_of_fold_probabilities(vectors: np.ndarray, labels: Sequence[str], *, seed: int = 0,
                              folds: int = FOLDS) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Out-of-fold class probabilities of a logistic regression on ``vectors``.

    Returns ``(pred_probs, classes, used)``: ``used`` is a boolean mask of the rows that took part (a label
    with a single record cannot be cross-validated, so its rows are left out), ``pred_probs`` has one row per
    used row and one column per class of ``classes`` (sorted)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold, cross_val_predict

    y_all = np.asarray(labels, dtype=object).astype(str)
    names, counts = np.unique(y_all, return_counts=True)
    keep = set(names[counts >= 2])
    used = np.array([label in keep for label in y_all], dtype=bool)
    classes = sorted(keep)
    if len(classes) < 2:
        return np.zeros((0, len(classes))), classes, used
    index = {label: i for i, label in enumerate(classes)}
    y = np.array([index[label] for label in y_all[used]])
    smallest = int(np.bincount(y).min())
    splitter = StratifiedKFold(n_splits=max(2, min(folds, smallest)), shuffle=True, random_state=seed)
    model = LogisticRegression(C=LOGISTIC_C, max_iter=2000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; the probabilities are what we need
        probs = cross_val_predict(model, vectors[used], y, cv=splitter, method="predict_proba")
    return probs, classes, used


def label_issues(labels: Sequence[int], pred_probs: np.ndarray) -> list[dict[str, Any]]:
    """cleanlab's likely label errors, most likely first: ``{"row", "suggested", "self_confidence"}`` with
    ``row`` an index into ``labels``, ``suggested`` the column the probabilities prefer, and
    ``self_confidence`` the probability given to the row's own label."""
    from cleanlab.filter import find_label_issues

    labels = np.asarray(labels, dtype=int)
    if len(labels) == 0:
        return []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # cleanlab warns about small classes; the ranking still holds
        ranked = find_label_issues(labels, pred_probs, return_indices_ranked_by="self_confidence")
    return [{"row": int(i), "suggested": int(pred_probs[i].argmax()),
             "self_confidence": float(pred_probs[i, labels[i]])} for i in ranked]


# ---- the findings --------------------------------------------------------------------------------------
def check_near(splits: dict[str, list[Item]], vectors: dict[str, np.ndarray],
               threshold: float = NEAR_DUPLICATE_COSINE) -> list[Finding]:
    """Near duplicates within each split and near leakage between splits (exact copies are left to the
    exact checks, so each pair is counted once)."""
    found = []
    for split, items in splits.items():
        pairs = [(i, j, s) for i, j, s in near_pairs(vectors[split], threshold) if items[i].key != items[j].key]
        relabelled = sum(1 for i, j, _ in pairs if items[i].label != items[j].label)
        note = f", {relabelled} of them with different labels" if relabelled else ""
        found.append(Finding(
            check="near_duplicates", split=split, status="warn" if pairs else "ok", count=len(pairs),
            summary=(f"{len(pairs)} pairs of {split} records have cosine >= {threshold:g}{note}" if pairs
                     else f"no {split} records with cosine >= {threshold:g} (other than exact copies)"),
            examples=[f"{items[i].where} ~ {items[j].where} ({s:.3f}): {short(items[i].text, 40)} / "
                      f"{short(items[j].text, 40)}" for i, j, s in pairs[:EXAMPLES]]))
    names = list(splits)
    for a, split in enumerate(names):
        for other in names[:a]:
            scores, ids = nearest(vectors[split], vectors[other])
            items, others = splits[split], splits[other]
            leaked = [(i, int(j), float(s)) for i, (s, j) in enumerate(zip(scores, ids))
                      if j >= 0 and s >= threshold and items[i].key != others[j].key]
            found.append(Finding(
                check="near_leakage", split=f"{split} vs {other}", status="warn" if leaked else "ok",
                count=len(leaked),
                summary=(f"{share(len(leaked), len(items))} {split} records have a near copy "
                         f"(cosine >= {threshold:g}) in {other}") if leaked
                else f"no {split} record has a near copy in {other}",
                examples=[f"{items[i].where} ~ {others[j].where} ({s:.3f}): {short(items[i].text, 40)} / "
                          f"{short(others[j].text, 40)}" for i, j, s in leaked[:EXAMPLES]]))
    return found


def check_label_issues(items: Sequence[Item], vectors: np.ndarray, *, seed: int = 0
                       ) -> tuple[Finding, list[Suspect]]:
    """cleanlab on out-of-fold probabilities over the records of every split together (a wrong label in
    the test set misleads as much as one in train)."""
    try:
        import cleanlab  # noqa: F401
    except ImportError:
        return Finding(check="label_issues", split="all", status="skipped",
                       summary="cleanlab is not installed: pip install 'verticals[workshop]'"), []
    pred_probs, classes, used = out_of_fold_probabilities(vectors, [item.label for item in items], seed=seed)
    rows = [item for item, keep in zip(items, used) if keep]
    left_out = len(items) - len(rows)
    if len(classes) < 2:
        return Finding(check="label_issues", split="all", status="skipped",
                       summary="fewer than two labels with two or more records: nothing to cross-validate"), []
    index = {label: i for i, label in enumerate(classes)}
    issues = label_issues([index[item.label] for item in rows], pred_probs)
    suspects = [Suspect(split=rows[x["row"]].split, where=rows[x["row"]].where, check="label_issue",
                        label=rows[x["row"]].label, suggested_label=classes[x["suggested"]],
                        score=round(x["self_confidence"], 4), text=rows[x["row"]].text) for x in issues]
    accuracy = float((pred_probs.argmax(axis=1) == [index[item.label] for item in rows]).mean())
    note = f"; {left_out} records of labels with one record left out" if left_out else ""
    return Finding(
        check="label_issues", split="all", status="warn" if suspects else "ok", count=len(suspects),
        summary=(f"cleanlab flags {len(suspects)} of {len(rows)} records as likely mislabelled (out-of-fold "
                 f"accuracy of the linear probe {accuracy:.3f}{note}); see the suspects list"),
        examples=[f"{s.where}: {s.label!r} -> {s.suggested_label!r} (p={s.score:.2f}): {short(s.text, 50)}"
                  for s in suspects[:EXAMPLES]]), suspects
