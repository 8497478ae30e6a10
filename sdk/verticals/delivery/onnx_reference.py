"""Reference implementation of a Verticals export: the SDK's predictions without the SDK.

Copied into every export directory as ``predict.py``. Needs onnxruntime, tokenizers and numpy, plus faiss-cpu
for a customer-service export (its retrieval index); it never imports ``verticals``, ``torch`` or
``transformers``. Everything it applies after the ONNX graph is read from ``export.json``'s ``decision``.

    python predict.py EXPORT_DIR "first text" "second text"
    python predict.py EXPORT_DIR < inputs.jsonl      # one JSON text or record per line
    python predict.py --no-verify EXPORT_DIR ...     # skip the manifest check (not recommended)

prints one JSON prediction per input, with the fields and values of the SDK's prediction objects. A record
may use the bundle's own column names (``export.json``'s ``fields``, e.g. ``{"utterance": ...}``) or the SDK's
(``{"text": ...}``). Bad input (a line that is not JSON, a record without the text) prints one line naming the
input and exits 2 before anything is predicted.

Before answering, every file is checked against ``manifest.json`` (sha256, as in a Verticals bundle; the
sha256 of ``manifest.json`` itself is the export's digest, shown by ``verticals inspect EXPORT``): an export
changed after it was written (a label swapped in ``export.json``, another ``model.onnx``) is refused with
one line and exit 2.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime
from tokenizers import Tokenizer


def softmax(logits: np.ndarray) -> np.ndarray:
    exp = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


class VerificationError(ValueError):
    """The export's files do not match its manifest.json (or it has none)."""


MANIFEST = "manifest.json"
SKIP = " (python predict.py --no-verify ... skips this check)"


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_manifest(directory: Path) -> tuple[str, set[str]]:
    """Check every file listed in manifest.json against its sha256; return the export's digest (the sha256
    of manifest.json) and the listed names. Raises VerificationError naming the first problem."""
    try:
        raw = (directory / MANIFEST).read_bytes()
    except OSError:
        raise VerificationError(f"{directory}: {MANIFEST} is missing, so the export cannot be verified{SKIP}") \
            from None
    try:
        manifest = json.loads(raw.decode("utf-8"))
        listed = manifest["files"]
        if manifest.get("algorithm") != "sha256" or not isinstance(listed, dict):
            raise ValueError("not a sha256 manifest")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        raise VerificationError(f"{directory / MANIFEST}: unreadable manifest; the export is damaged{SKIP}") \
            from None
    for name, expected in listed.items():
        parts = name.split("/") if isinstance(name, str) else [""]
        if any(part in ("", ".", "..") for part in parts) or "\\" in name or name == MANIFEST:
            raise VerificationError(f"{directory / MANIFEST}: entry {name!r} is not a file of the export; "
                                    f"the manifest was modified{SKIP}")
        path = directory / name
        if path.is_symlink() or not path.is_file():
            raise VerificationError(f"{directory}: '{name}' listed in {MANIFEST} is missing{SKIP}")
        if _sha256(path) != expected:
            raise VerificationError(f"{path}: sha256 does not match {MANIFEST}; the export was modified after "
                                    f"it was written (refusing to predict){SKIP}")
    return hashlib.sha256(raw).hexdigest(), set(listed)


class Export:
    """An export directory: the graph, the tokenizer and the decision parameters. ``verify`` (the default)
    checks every file against manifest.json first and refuses files it does not cover."""

    def __init__(self, directory: str | Path, *, verify: bool = True) -> None:
        self.directory = Path(directory)
        self.digest: str | None = None
        listed: set[str] | None = None
        if not (self.directory / "export.json").is_file():
            raise FileNotFoundError(f"no export.json in {self.directory}")
        if verify:
            self.digest, listed = check_manifest(self.directory)
        self.meta = json.loads((self.directory / "export.json").read_text(encoding="utf-8"))
        if listed is not None:
            index = self.meta.get("decision", {}).get("index") or {}
            files = [index.get(key) for key in ("faiss", "metadata")]  # customer service: the retrieval index
            needed = {"export.json", "model.onnx", "tokenizer.json", *(f for f in files if isinstance(f, str))}
            unlisted = sorted(str(name) for name in needed - listed)
            if unlisted:
                raise VerificationError(f"{self.directory}: '{unlisted[0]}' is not covered by {MANIFEST}; the "
                                        f"manifest was modified{SKIP}")
        self.decision: dict[str, Any] = self.meta["decision"]
        self.fields: dict[str, str] = self.meta.get("fields", {})  # exports before fields existed: SDK names
        self.labels: list[str] = self.meta["labels"]
        self.session = onnxruntime.InferenceSession(str(self.directory / "model.onnx"),
                                                    providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(self.directory / "tokenizer.json"))
        self.tokenizer.no_padding()
        self.tokenizer.no_truncation()

    def tokenize(self, inputs: list[Any], *, words: bool = False, special: bool = True) -> list[Any]:
        """Encodings of texts (or of word lists), truncated at max_length unless the task windows instead."""
        if self.decision["kind"] != "medical.ner":
            self.tokenizer.enable_truncation(self.decision["max_length"])
        return self.tokenizer.encode_batch(inputs, is_pretokenized=words, add_special_tokens=special)

    def run(self, rows: list[list[int]], types: list[list[int]] | None = None) -> dict[str, np.ndarray]:
        """The graph's outputs for token-id rows (and their segment ids: 1 = a pair's second text), padded to
        the longest (padding is masked out)."""
        ids = np.full((len(rows), max(map(len, rows))), self.meta["pad_token_id"], dtype=np.int64)
        mask, segments = np.zeros_like(ids), np.zeros_like(ids)
        for i, row in enumerate(rows):
            ids[i, : len(row)], mask[i, : len(row)] = row, 1
            segments[i, : len(row)] = types[i] if types else 0
        feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": segments}
        values = self.session.run(self.meta["outputs"], {name: feed[name] for name in self.meta["inputs"]})
        return dict(zip(self.meta["outputs"], values))

    def predict(self, inputs: list[Any], names: list[str] | None = None) -> list[dict[str, Any]]:
        """One prediction per input (a text or a record); ``names`` say where each input came from in errors."""
        if not inputs:
            return []
        kind = self.decision["kind"]
        names = names or [f"input {number}" for number in range(1, len(inputs) + 1)]
        inputs = [self.normalise(name, item, kind) for name, item in zip(names, inputs)]
        if kind in ("text-classification", "customer_service.intent"):
            texts = [item if isinstance(item, str) else item["text"] for item in inputs]
            out = self.run([e.ids for e in self.tokenize(texts)])
            contexts = [[] if isinstance(item, str) else item.get("context", []) for item in inputs]
            if any(contexts):  # the classifier reads the earlier turns; retrieval keeps the text alone
                pairs = self.conversation(texts, contexts)
                out["logits"] = self.run([e.ids for e in pairs], [e.type_ids for e in pairs])["logits"]
            probs = softmax(out["logits"].astype(np.float64))
            if kind == "customer_service.intent":
                return Fallback(self).decide(probs, out["embeddings"])
            return [{"label": self.labels[int(row.argmax())], "score": float(row.max()),
                     "scores": dict(zip(self.labels, map(float, row)))} for row in probs]
        if kind == "token-classification":
            tokens = [item.split() if isinstance(item, str) else list(item["tokens"]) for item in inputs]
            encodings = self.tokenize(tokens, words=True)
            out = self.run([e.ids for e in encodings])
            return [self.tokens(words, e.word_ids, softmax(row.astype(np.float64)))
                    for words, e, row in zip(tokens, encodings, out["logits"])]
        if kind == "medical.ner":
            return [self.windowed(item) for item in inputs]
        raise SystemExit(f"predict.py: unknown decision kind '{kind}' in export.json")

    def normalise(self, name: str, item: Any, kind: str) -> Any:
        """A text as is; a record with its fields under the SDK's names (``text``/``tokens``), found under the
        bundle's own column names first. Raises InputError naming the input when neither is there."""
        if isinstance(item, str):
            if not item.strip():  # the SDK refuses it too: the reference must not answer what the SDK refuses
                raise InputError(f"{name}: empty text; every record needs non-blank text")
            return item
        if not isinstance(item, dict):
            raise InputError(f"{name}: expected a text or a JSON object, found {type(item).__name__}")
        wanted = ["tokens", "text"] if kind == "medical.ner" else ["tokens"] if kind == "token-classification" \
            else ["text"]
        found = {}
        for field in wanted:
            key = self.fields.get(field, field)
            value = item.get(key, item.get(field))
            if value is not None:
                if not (isinstance(value, str) or (field == "tokens" and isinstance(value, list)
                                                   and all(isinstance(t, str) for t in value))):
                    raise InputError(f"{name}: field '{key}' must be "
                                     + ("a list of strings" if field == "tokens" else "a string"))
                # space-separated tokens, as in a CSV cell; list("a b") would be its characters
                found[field] = value.split() if field == "tokens" and isinstance(value, str) else value
                if not (found[field].strip() if isinstance(found[field], str) else found[field]):
                    raise InputError(f"{name}: field '{key}' is empty; every record needs non-blank "
                                     + ("tokens" if field == "tokens" else "text"))
        context = self.decision.get("context")
        if context and found:  # customer_service.intent with data.context_column: the earlier turns
            key = self.fields.get("context", "context")
            value = item.get(key, item.get("context"))
            value = value.split(context["separator"]) if isinstance(value, str) else value or []
            if not (isinstance(value, list) and all(isinstance(t, str) for t in value)):
                raise InputError(f"{name}: field '{key}' must be the earlier turns: a list of strings or one "
                                 f"string separated by {context['separator']!r}")
            found["context"] = [turn for turn in value if turn.strip()]
        if not found:
            keys = " or ".join(sorted({f"'{self.fields.get(n, n)}'" for n in wanted} | {f"'{n}'" for n in wanted}))
            raise InputError(f"{name}: no {keys} field (keys found: {', '.join(sorted(item)) or 'none'})")
        return found

    def conversation(self, texts: list[str], contexts: list[list[str]]) -> list[Any]:
        """Pair encodings of the earlier turns and each text, as verticals.tasks.conversation builds them:
        oldest whole turns dropped until the pair fits, then the newest turn's start cut; else the text alone."""
        singles, max_length = self.tokenize(texts), self.decision["max_length"]
        self.tokenizer.no_truncation()
        specials = self.tokenizer.post_processor.num_special_tokens_to_add(True)
        pairs = []
        for text, turns, single in zip(texts, contexts, singles):
            room = max_length - specials - len(self.tokenizer.encode(text, add_special_tokens=False).ids)
            pair = self.fitting(turns, text, room) if turns and room > 0 else None
            pairs.append(single if pair is None else pair)
        return pairs

    def fitting(self, turns: list[str], text: str, room: int) -> Any:
        tok, joiner, max_length = self.tokenizer, self.decision["context"]["joiner"], self.decision["max_length"]
        counts = [len(e.ids) for e in tok.encode_batch(turns, add_special_tokens=False)]
        n_joiner = len(tok.encode(joiner.strip(), add_special_tokens=False).ids) if joiner.strip() else 0
        kept, used = 0, 0
        for count in reversed(counts):
            if used + count + (n_joiner if kept else 0) > room:
                break
            kept, used = kept + 1, used + count + (n_joiner if kept else 0)
        for keep in range(kept, 0, -1):
            pair = tok.encode(joiner.join(turns[-keep:]), text)
            if len(pair.ids) <= max_length:
                return pair
        offsets = tok.encode(turns[-1], add_special_tokens=False).offsets
        for keep in range(min(room, len(offsets)), 0, -1):
            pair = tok.encode(turns[-1][offsets[-keep][0]:], text)
            if turns[-1][offsets[-keep][0]:].strip() and len(pair.ids) <= max_length:
                return pair
        return None

    # ---- token classification ------------------------------------------------------------------
    def tokens(self, words: list[str], word_ids: list[int | None], token_probs: np.ndarray) -> dict[str, Any]:
        """Each word's probabilities from its first subword; words cut off by truncation are 'O'."""
        probs = np.zeros((len(words), len(self.labels)))
        probs[:, 0] = 1.0
        previous = None
        for position, word in enumerate(word_ids):
            if word is not None and word != previous:
                probs[word] = token_probs[position]
            previous = word
        return self.decode_words(words, probs)

    def decode_words(self, words: list[str], probs: np.ndarray) -> dict[str, Any]:
        tags, previous = [], "O"
        for i in probs.argmax(axis=1):
            tag = self.labels[int(i)]
            if tag.startswith("I-") and previous[2:] != tag[2:]:  # BIO repair
                tag = "B-" + tag[2:]
            tags.append(tag)
            previous = tag
        index = {label: i for i, label in enumerate(self.labels)}
        entities, start = [], -1
        for i, tag in enumerate([*tags, "O"]):
            if start >= 0 and not (tag.startswith("I-") and tag[2:] == tags[start][2:]):
                score = float(np.mean([probs[w, index[tags[w]]] for w in range(start, i)]))
                entities.append({"type": tags[start][2:], "text": " ".join(words[start:i]), "start": start,
                                 "end": i, "score": score})
                start = -1
            if tag.startswith("B-"):
                start = i
        return {"tokens": list(words), "tags": tags, "entities": entities}

    def windowed(self, item: Any) -> dict[str, Any]:
        """Long texts: windows of subword tokens; each word is read where it has most context."""
        d = self.decision
        if isinstance(item, str):
            item = {"text": item}
        text = item.get("text")
        words = list(item["tokens"]) if "tokens" in item else re.findall(d["word_pattern"], text)
        encoding = self.tokenize([words], words=True, special=False)[0]
        ids, word_ids, n, size = encoding.ids, encoding.word_ids, len(encoding.ids), d["window_size"]
        starts = [0] if n <= size else [*range(0, n - size, size - d["stride"]), n - size]
        first = [w is not None and (p == 0 or word_ids[p - 1] != w) for p, w in enumerate(word_ids)]
        rows, places = [], []
        for start in starts:
            end = min(start + size, n)
            rows.append(d["prefix_ids"] + ids[start:end] + d["suffix_ids"])
            # (position in the window, word, context: tokens to the nearer cut; a document edge is no cut)
            places.append([(len(d["prefix_ids"]) + p - start, word_ids[p],
                            min(p - start if start > 0 else math.inf, end - 1 - p if end < n else math.inf))
                           for p in range(start, end) if first[p]])
        logits = self.run(rows)["logits"]
        probs = np.zeros((len(words), len(self.labels)))
        probs[:, 0] = 1.0
        best = np.full(len(words), -1.0)
        for row, window in zip(logits, places):
            window_probs = softmax(row.astype(np.float64))
            for position, word, context in window:
                if context > best[word]:
                    best[word], probs[word] = context, window_probs[position]
        prediction = self.decode_words(words, probs)
        if text is None:
            text = " ".join(words)
        offsets, cursor = [], 0
        for word in words:  # words are found in order in the text
            start = text.find(word, cursor)
            cursor = start + len(word)
            offsets.append((start, cursor))
        for entity in prediction["entities"]:
            first, last = entity["start"], entity["end"]
            start, end = offsets[first][0], offsets[last - 1][1]
            entity.update(text=text[start:end], start=start, end=end, token_start=first, token_end=last)
        return prediction


class Fallback:
    """customer_service.intent: the classifier when confident, else retrieval, else out of scope."""

    def __init__(self, export: Export) -> None:
        import faiss

        d = export.decision
        self.export, self.d = export, d
        self.index = faiss.read_index(str(export.directory / d["index"]["faiss"]))
        meta = json.loads((export.directory / d["index"]["metadata"]).read_text(encoding="utf-8"))
        self.entries: list[dict[str, Any]] = meta["metadata"]

    def decide(self, probs: np.ndarray, vectors: np.ndarray) -> list[dict[str, Any]]:
        d, labels, answers = self.d, self.export.labels, self.d["answers"]
        score = d.get("score", "retrieval")  # which score decides "out of scope" (chosen at training)
        out = []
        for row, vector in zip(probs, vectors):
            top = int(row.argmax())
            intent, confidence = labels[top], float(row[top])
            # the SDK's IntentPrediction, field for field: its reason in the same words
            result = {"intent": intent, "confidence": confidence, "out_of_scope": False, "fallback": False,
                      "reason": "fallback disabled", "answer": answers.get(intent), "matches": [],
                      "scores": dict(zip(labels, map(float, row)))}
            if d["fallback"] and score == "retrieval":
                conf_t, sim_t = d["confidence_threshold"], d["similarity_threshold"]
                result["reason"] = f"confidence {confidence:.3f} >= threshold {conf_t:.3f}"
                if confidence < conf_t:
                    hits = self.search(vector)
                    voted, similarity = self.vote(hits)
                    why = f"confidence {confidence:.3f} < threshold {conf_t:.3f}; "
                    result.update(fallback=True, matches=self.matches(hits))
                    if voted is not None and similarity >= sim_t:
                        result.update(intent=voted, answer=answers.get(voted), reason=why + (
                            f"retrieved intent '{voted}' at similarity {similarity:.3f} >= {sim_t:.3f}"))
                    else:
                        result.update(intent=d["oos_label"], out_of_scope=True, answer=None, reason=why + (
                            f"best retrieval similarity {similarity:.3f} < {sim_t:.3f}: out of scope"))
            elif d["fallback"]:
                hits = self.search(vector)
                value, what = ((hits[0][0] if hits else -1.0), "nearest utterance similarity") \
                    if score == "similarity" else (confidence, "confidence")
                threshold = float(d["threshold"])
                result["reason"] = f"{what} {value:.3f} >= threshold {threshold:.3f}"
                if value < threshold:
                    result.update(intent=d["oos_label"], out_of_scope=True, fallback=True, answer=None,
                                  matches=self.matches(hits),
                                  reason=f"{what} {value:.3f} < threshold {threshold:.3f}: out of scope")
            result.update(label=result["intent"], score=result["confidence"])  # the names every task shares
            out.append(result)
        return out

    def search(self, vector: np.ndarray) -> list[tuple[float, dict[str, Any]]]:
        k = min(self.d["top_k"], self.index.ntotal)
        sims, ids = self.index.search(np.ascontiguousarray(vector[None], dtype=np.float32), k)
        return [(float(s), self.entries[i]) for s, i in zip(sims[0], ids[0]) if i >= 0]

    def matches(self, hits: list[tuple[float, dict[str, Any]]]) -> list[dict[str, Any]]:
        answers = self.d["answers"]
        return [{"text": m["text"], "intent": m.get("intent"),
                 "answer": m.get("answer") or answers.get(m.get("intent") or ""),
                 "similarity": s, "source": m.get("source", "utterance")} for s, m in hits]

    @staticmethod
    def vote(hits: list[tuple[float, dict[str, Any]]]) -> tuple[str | None, float]:
        totals: dict[str, float] = defaultdict(float)
        best: dict[str, float] = {}
        for similarity, meta in hits:
            if meta.get("intent"):
                totals[meta["intent"]] += max(similarity, 0.0)
                best[meta["intent"]] = max(best.get(meta["intent"], -1.0), similarity)
        if not totals:
            return None, max((s for s, _ in hits), default=-1.0)
        winner = max(totals, key=lambda name: (totals[name], best[name]))
        return winner, best[winner]


class InputError(ValueError):
    """An input predict.py cannot read; the message names the input (its stdin line, or argument)."""


def read_inputs(lines: Any) -> tuple[list[Any], list[str]]:
    """The JSON value of each non-blank line, and each one's name for errors ("line N")."""
    inputs, names = [], []
    for number, line in enumerate(lines, 1):
        if line.strip():
            try:
                inputs.append(json.loads(line))
            except ValueError as exc:
                raise InputError(f"line {number}: not JSON ({exc})") from None
            names.append(f"line {number}")
    return inputs, names


def main(argv: list[str]) -> int:
    check = "--no-verify" not in argv[:2]  # before or right after EXPORT_DIR; later arguments are texts
    if not check:
        argv = [arg for i, arg in enumerate(argv) if not (i < 2 and arg == "--no-verify")]
    if not argv or argv[0] in ("-h", "--help"):
        print(__doc__)
        return 0 if argv else 2
    try:
        export = Export(argv[0], verify=check)
    except VerificationError as exc:
        print(f"predict.py: refusing the export: {exc}", file=sys.stderr)
        return 2
    except (OSError, ValueError, KeyError, RuntimeError) as exc:  # no export.json, not an export, no model.onnx
        print(f"predict.py: {argv[0]}: not a readable Verticals export ({type(exc).__name__}: {exc})",
              file=sys.stderr)
        return 2
    try:
        inputs, names = (argv[1:], [f"argument {n}" for n in range(2, len(argv) + 1)]) if argv[1:] \
            else read_inputs(sys.stdin)
        predictions = export.predict(inputs, names)  # every input is checked before the first is predicted
    except InputError as exc:
        print(f"predict.py: {exc}", file=sys.stderr)
        return 2
    for prediction in predictions:
        print(json.dumps(prediction, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
