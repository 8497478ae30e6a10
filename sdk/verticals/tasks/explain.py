"""Why a model answered what it did: per-word attributions with Captum.

Text classification (and the packs built on it) explains the predicted label: every word of the text gets an
attribution towards that label's probability, with its character offsets into the text. Token classification
(and ``medical.ner``) explains each predicted entity: the words that drove the mean probability of the
entity's tags. Sub-word tokens are merged into the words a person sees (their attributions add up).

Two methods (both Captum):

- ``occlusion`` (default): each word in turn is replaced by the tokenizer's mask token (pad where there is
  none) and the drop in the explained probability is its attribution (``captum.attr.FeatureAblation`` with
  one feature per word). One forward pass per word, batched, and no gradient. On 200 Financial PhraseBank
  test sentences (``benchmarks/explain_faithfulness.py``, MiniLM, 2 shared CPU cores) deleting its 3 top
  words lowered the predicted class's probability more than deleting 3 random words on 88.5 % of sentences
  (integrated gradients: 82.5 %), at 2.1x the cost of one predict per query (integrated gradients: 19.8x).
- ``integrated-gradients``: ``captum.attr.LayerIntegratedGradients`` on the backbone's input embeddings,
  from a baseline where every non-special token is the mask (or pad) token, with ``N_STEPS`` steps of the
  Gauss-Legendre rule; a token's attribution is the sum over its embedding dimensions.

Explanations run on the PyTorch engine only: the ONNX graphs hold no gradients and are not re-run word by
word here, so a predictor loaded with ``engine='onnx'`` refuses rather than explain a different model.
"""

from __future__ import annotations

import bisect
import math
import re
from collections.abc import Callable, Sequence
from typing import Any

import torch
from pydantic import BaseModel, Field

from ..backbones.engines import OnnxBackbone
from ..errors import ConfigError

METHODS = ("occlusion", "integrated-gradients")
DEFAULT_METHOD = "occlusion"
N_STEPS = 32
"""Integrated-gradients steps: 32 kept the completeness gap (``convergence_delta``) small on MiniLM
sentiment models; more steps cost proportionally more time."""
MAX_EXPLAIN_BATCH = 16
"""Most records one REST request may ask to explain (each costs ~ one forward pass per word)."""
MAX_EXPLAINED_ENTITIES = 20
"""Most entities of one record explained (the highest-scored): each costs an attribution run over its window
and lists every word of the record, so a long record full of entities would cost entities x words."""

# What a person reads as a word: letters/digits, joined through inner dots, commas, apostrophes and hyphens
# ("10.5", "don't", "state-owned"); any other visible character is a word of its own.
WORD = re.compile(r"\w+(?:[.,'\u2019\-]\w+)*|[^\w\s]")


class WordAttribution(BaseModel):
    word: str = Field(description="The word as written in the input.")
    start: int = Field(description="Start character offset into the input text (inclusive).")
    end: int = Field(description="End character offset into the input text (exclusive).")
    attribution: float = Field(description="Contribution towards the explained probability (positive: for it).")
    truncated: bool = Field(False, description="True when the model never read the word (cut at max_length, or "
                                               "outside the window an entity was predicted in): attribution 0.")


class TextExplanation(BaseModel):
    label: str = Field(description="The explained label: the classifier's top label.")
    score: float = Field(description="Its probability.")
    method: str = Field(description="occlusion or integrated-gradients.")
    words: list[WordAttribution] = Field(description="Every word of the text, in order.")


class EntityExplanation(BaseModel):
    type: str = Field(description="Entity type.")
    text: str = Field(description="The entity's words.")
    start: int = Field(description="Start character offset (into the text, or the words joined by spaces).")
    end: int = Field(description="End character offset (exclusive).")
    score: float = Field(description="Mean probability of the entity's tags (the explained quantity).")
    words: list[WordAttribution] = Field(description="Every word of the record with its attribution.")


class EntitiesExplanation(BaseModel):
    method: str = Field(description="occlusion or integrated-gradients.")
    entities: list[EntityExplanation] = Field(description=(
        "One explanation per predicted entity; the highest-scored ones when a record has more than "
        "MAX_EXPLAINED_ENTITIES."))
    not_explained: int = Field(0, description="Predicted entities left out (past MAX_EXPLAINED_ENTITIES).")


def check_engine(engine: str) -> None:
    if engine != "torch":
        raise ConfigError(f"explanations run on the torch engine only, not '{engine}': load the bundle with "
                          f"engine='torch' (CLI: --engine torch) to explain")


def describe(explanation: TextExplanation | EntitiesExplanation, top: int = 5) -> str:
    """One line for a terminal: the most-attributed words with their attributions."""
    def best(words: list[WordAttribution]) -> str:
        ranked = sorted(words, key=lambda w: -w.attribution)[:top]
        return " ".join(f"{w.word}({w.attribution:+.3f})" for w in ranked if w.attribution > 0) or "no word for it"
    if isinstance(explanation, TextExplanation):
        return f"{explanation.label}: {best(explanation.words)}"
    return "; ".join(f"{e.type} '{e.text}': {best(e.words)}" for e in explanation.entities) or "no entities"


def check_explainable(task: Any, engine: str, method: str) -> None:
    """Raise :class:`ConfigError` (one line, the fix included) when ``task`` cannot be explained."""
    from .text_classification import TextClassificationTask
    from .token_classification import TokenClassificationTask

    if method not in METHODS:
        raise ConfigError(f"unknown explanation method '{method}'; expected one of {', '.join(METHODS)}")
    if not isinstance(task, (TextClassificationTask, TokenClassificationTask)):
        raise ConfigError(f"task '{task.task_name}' cannot be explained: explanations cover text and token "
                          f"classification and the packs built on them")
    task.check_is_fitted("model_")
    if getattr(task.data_options, "context_column", None):
        raise ConfigError(f"task '{task.task_name}' reads the earlier turns of a conversation "
                          f"(data.context_column); explanations attribute the current text alone and would "
                          f"misstate what drove the prediction, so they are not offered for it")
    check_engine(task.model_.backbone.engine if isinstance(task.model_.backbone, OnnxBackbone) else engine)
    if not getattr(task.tokenizer_, "is_fast", False):
        raise ConfigError("explanations need a fast (Rust) tokenizer for character offsets; this backbone's "
                          "tokenizer is a slow one")


def explain_records(task: Any, records: Sequence[Any], *, engine: str = "torch", method: str = DEFAULT_METHOD,
                    n_steps: int = N_STEPS) -> list[TextExplanation] | list[EntitiesExplanation]:
    """One explanation per validated record of ``task``."""
    from .token_classification import TokenClassificationTask

    check_explainable(task, engine, method)
    model = task.model_
    if model.training:
        model.eval()
    if isinstance(task, TokenClassificationTask):
        return [_explain_entities(task, record, method, n_steps) for record in records]
    return [_explain_text(task, record, method, n_steps) for record in records]


# ---- text classification ------------------------------------------------------------------------------
def _explain_text(task: Any, record: Any, method: str, n_steps: int) -> TextExplanation:
    text = record.text
    spans = [m.span() for m in WORD.finditer(text)]
    encoded = task.tokenizer_(text, truncation=True, max_length=task.config.training.max_length,
                              return_offsets_mapping=True, return_special_tokens_mask=True)
    word_of = _words_of_tokens(encoded["offset_mapping"], encoded["special_tokens_mask"], spans)
    inputs = _tensors(encoded, task.model_)
    with torch.inference_mode():
        probs = _class_probs(task.model_, inputs)(inputs["input_ids"])[0]
    label = int(probs.argmax())
    forward = _class_probs(task.model_, inputs)
    per_word, seen = _attribute(task, forward, inputs["input_ids"], word_of, len(spans), method, n_steps,
                                target=label)
    words = [WordAttribution(word=text[s:e], start=s, end=e, attribution=float(per_word[i]),
                             truncated=not seen[i]) for i, (s, e) in enumerate(spans)]
    return TextExplanation(label=task.labels_[label], score=float(probs[label]), method=method, words=words)


def _class_probs(model: Any, inputs: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``input_ids [b, L] -> probabilities [b, n_labels]``; the other inputs broadcast over the batch."""
    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        rest = {k: v.expand(input_ids.shape[0], -1) for k, v in inputs.items() if k != "input_ids"}
        return torch.softmax(model(input_ids=input_ids, **rest).logits.float(), dim=-1)
    return forward


def _words_of_tokens(offsets: Sequence[tuple[int, int]], special: Sequence[int],
                     spans: Sequence[tuple[int, int]]) -> list[int]:
    """The word index of each token (by the first character it covers), -1 for special tokens."""
    starts = [s for s, _ in spans]
    out = []
    for (start, end), is_special in zip(offsets, special):
        word = bisect.bisect_right(starts, start) - 1 if not is_special and end > start else -1
        if word >= 0 and not (start < spans[word][1]):  # a token of whitespace between words
            word = -1
        out.append(word)
    return out


# ---- token classification -----------------------------------------------------------------------------
def _explain_entities(task: Any, record: Any, method: str, n_steps: int) -> EntitiesExplanation:
    tokens = list(record.tokens)
    text, spans = _token_offsets(getattr(record, "text", None), tokens)
    prediction = task.predict([record])[0]
    features = task.encode([record], with_labels=False)
    special_ids = set(task.tokenizer_.all_special_ids)
    index = {label: i for i, label in enumerate(task.labels_)}
    windows = [_window_words(f, special_ids) for f in features]
    explained = []
    chosen = sorted(prediction.entities, key=lambda e: -e.score)[:MAX_EXPLAINED_ENTITIES]
    for entity in sorted(chosen, key=lambda e: getattr(e, "token_start", e.start)):  # in reading order
        first = getattr(entity, "token_start", entity.start)
        last = getattr(entity, "token_end", entity.end)
        # the window where the entity's first word has most context, as the prediction was merged
        choice = max(range(len(features)), key=lambda w: windows[w][1].get(first, (-1, -math.inf))[1])
        word_of, firsts = windows[choice]
        targets = [(firsts[w][0], index[prediction.tags[w]]) for w in range(first, last) if w in firsts]
        if not targets:
            continue
        inputs = _tensors(features[choice], task.model_)
        forward = _entity_prob(task.model_, inputs, targets)
        per_word, seen = _attribute(task, forward, inputs["input_ids"], word_of, len(tokens), method, n_steps)
        words = [WordAttribution(word=tokens[i], start=s, end=e, attribution=float(per_word[i]),
                                 truncated=not seen[i]) for i, (s, e) in enumerate(spans)]
        start, end = spans[first][0], spans[last - 1][1]
        explained.append(EntityExplanation(type=entity.type, text=text[start:end], start=start, end=end,
                                           score=entity.score, words=words))
    return EntitiesExplanation(method=method, entities=explained,
                               not_explained=len(prediction.entities) - len(chosen))


def _token_offsets(text: str | None, tokens: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Offsets of the words in the record's text (found in order), else in the words joined by spaces."""
    if isinstance(text, str):
        spans, cursor = [], 0
        for token in tokens:
            start = text.find(token, cursor)
            if start < 0:
                break
            cursor = start + len(token)
            spans.append((start, cursor))
        else:
            return text, spans
    spans, cursor = [], 0
    for token in tokens:
        spans.append((cursor, cursor + len(token)))
        cursor += len(token) + 1
    return " ".join(tokens), spans


def _window_words(feature: dict[str, Any], special_ids: set[int]) -> tuple[list[int], dict[int, tuple[int, float]]]:
    """(word of each position, -1 for special tokens; word -> (its first-subword position, context)).

    Core token tasks keep ``word_ids``; ``medical.ner``'s windows keep ``words`` = (position, word, context) of
    first subwords only: the other subwords belong to the word whose first subword precedes them."""
    ids = list(feature["input_ids"])
    if "word_ids" in feature:
        word_of = [-1 if w is None else int(w) for w in feature["word_ids"]]
        firsts: dict[int, tuple[int, float]] = {}
        for position, word in enumerate(word_of):
            if word >= 0 and word not in firsts:
                firsts[word] = (position, math.inf)
        return word_of, firsts
    marks = {int(p): (int(w), float(c)) for p, w, c in feature["words"]}
    firsts = {w: (p, c) for p, (w, c) in marks.items()}
    current = min((w for w, _ in marks.values()), default=0) - 1  # a window may start inside a word
    word_of = []
    for position, token in enumerate(ids):
        if position in marks:
            current = marks[position][0]
        word_of.append(-1 if token in special_ids or current < 0 else current)
    return word_of, firsts


def _entity_prob(model: Any, inputs: dict[str, torch.Tensor],
                 targets: list[tuple[int, int]]) -> Callable[[torch.Tensor], torch.Tensor]:
    """``input_ids [b, L] -> [b]``: mean probability of the entity's tags at its words' first subwords."""
    positions = torch.tensor([p for p, _ in targets])
    tags = torch.tensor([t for _, t in targets])

    def forward(input_ids: torch.Tensor) -> torch.Tensor:
        rest = {k: v.expand(input_ids.shape[0], -1) for k, v in inputs.items() if k != "input_ids"}
        probs = torch.softmax(model(input_ids=input_ids, **rest).logits.float(), dim=-1)
        return probs[:, positions.to(probs.device), tags.to(probs.device)].mean(dim=-1)
    return forward


# ---- shared ---------------------------------------------------------------------------------------------
def _tensors(encoded: Any, model: Any) -> dict[str, torch.Tensor]:
    """A batch of one on the model's device (a GPU when the bundle was loaded there)."""
    from ..runtime import module_device

    device = module_device(model)
    return {key: torch.tensor([list(encoded[key])], dtype=torch.long, device=device)
            for key in ("input_ids", "attention_mask", "token_type_ids") if key in encoded}


def _attribute(task: Any, forward: Callable[[torch.Tensor], torch.Tensor], input_ids: torch.Tensor,
               word_of: list[int], n_words: int, method: str, n_steps: int,
               target: int | None = None) -> tuple[list[float], list[bool]]:
    """Per-word attributions (sub-word tokens summed) and whether each word was read at all."""
    from ..runtime import module_device

    device = module_device(task.model_)
    input_ids = input_ids.to(device)
    tokenizer = task.tokenizer_
    filler = tokenizer.mask_token_id if tokenizer.mask_token_id is not None else tokenizer.pad_token_id
    words = torch.tensor(word_of, device=device)
    baseline = torch.where(words >= 0, torch.full_like(input_ids, int(filler or 0)), input_ids)
    if method == "occlusion":
        from captum.attr import FeatureAblation  # type: ignore[import-untyped]

        # Feature ids must be contiguous; special tokens share one group whose baseline is themselves (no effect).
        present = sorted({w for w in word_of if w >= 0})
        group = {w: i for i, w in enumerate(present)}
        mask = torch.tensor([[group.get(w, len(present)) for w in word_of]], device=device)
        with torch.no_grad():
            scores = FeatureAblation(forward).attribute(
                input_ids, baselines=baseline, target=target, feature_mask=mask,
                perturbations_per_eval=min(len(present) + 1, 64))[0]
    else:
        from captum.attr import LayerIntegratedGradients  # type: ignore[import-untyped]

        layer = task.model_.backbone.get_input_embeddings()
        with torch.enable_grad():
            attributions = LayerIntegratedGradients(forward, layer).attribute(
                input_ids, baselines=baseline, target=target, n_steps=n_steps, internal_batch_size=n_steps)
        scores = attributions.sum(dim=-1)[0]
    per_word = [0.0] * n_words
    seen = [False] * n_words
    for position, word in enumerate(word_of):
        if 0 <= word < n_words:
            per_word[word] += float(scores[position])
            seen[word] = True
    return per_word, seen


# ---- report ---------------------------------------------------------------------------------------------
REPORT_ERRORS = 5
"""How many of the most confident errors ``verticals report`` explains (each costs one explanation)."""


def highlight_html(text: str, words: Sequence[WordAttribution]) -> str:
    """``text`` as HTML (escaped) with each word's background coloured by its attribution: green for the
    explained label, red against it, opacity relative to the sentence's largest attribution."""
    import html

    scale = max((abs(w.attribution) for w in words), default=0.0) or 1.0
    parts, cursor = [], 0
    for w in words:
        parts.append(html.escape(text[cursor:w.start]))
        rgb = "40,160,60" if w.attribution >= 0 else "210,50,50"
        parts.append(f'<span style="background:rgba({rgb},{abs(w.attribution) / scale:.2f})" '
                     f'title="{w.attribution:+.4f}">{html.escape(text[w.start:w.end])}</span>')
        cursor = w.end
    parts.append(html.escape(text[cursor:]))
    return "".join(parts)


def explained_errors_html(task: Any, engine: str, records: Sequence[Any], predictions: Sequence[Any],
                          name: Callable[[str], str] = str, limit: int = REPORT_ERRORS) -> str:
    """The report's section: the ``limit`` most confident wrong predictions of a text classifier, each text
    highlighted by the attributions towards the label the classifier chose (empty for other task types)."""
    import html

    from .text_classification import TextClassificationTask

    if not isinstance(task, TextClassificationTask):
        return ""
    head = "<h2>Most confident errors, explained</h2>"
    try:
        import captum  # type: ignore[import-untyped] # noqa: F401

        check_explainable(task, engine, DEFAULT_METHOD)
    except ImportError:
        return head + "<p>Explanations need Captum: pip install 'verticals[workshop]'.</p>"
    except ConfigError as exc:
        return head + f"<p>Not available: {html.escape(str(exc))}</p>"
    wrong = []
    for i, (record, prediction) in enumerate(zip(records, predictions)):
        label = getattr(prediction, "label", None) or getattr(prediction, "intent", None)
        confidence = getattr(prediction, "score", None) or getattr(prediction, "confidence", None) or 0.0
        if record.label is not None and label != record.label:
            wrong.append((-float(confidence), i, label))
    if not wrong:
        return head + "<p>No errors in this data.</p>"
    chosen = sorted(wrong)[:limit]
    explanations: list[Any] = list(explain_records(task, [records[i] for _, i, _ in chosen], engine=engine))
    rows = "".join(
        f"<tr><td class='t'>{html.escape(name(records[i].label))}</td><td class='t'>{html.escape(name(str(label)))} "
        f"({-negative:.2f})</td><td class='t'>{html.escape(name(x.label))}</td>"
        f"<td class='t'>{highlight_html(records[i].text, x.words)}</td></tr>"
        for (negative, i, label), x in zip(chosen, explanations))
    return (head + f"<p>The {len(chosen)} wrong predictions made with most confidence ({len(wrong)} errors in all). "
            f"Words are shaded by their {DEFAULT_METHOD} attribution towards the classifier's top label: green "
            f"for it, red against it (hover for the value).</p><table><tr><th>true</th><th class='t'>predicted"
            f"</th><th class='t'>explained</th><th class='t'>text</th></tr>{rows}</table>")
