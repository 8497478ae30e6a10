"""Model inputs for a text read with the earlier turns of its conversation.

The earlier turns (oldest first) are the FIRST segment of a pair input, the current text the second:
``[CLS] turn_1 [SEP] turn_2 ... turn_n [SEP] text [SEP]`` for BERT-like tokenizers, so the current text sits
right before the end where a truncating tokenizer never cuts it. When the pair is longer than ``max_length``
the oldest turns are dropped first, whole; when even the newest turn alone does not fit, its start is cut
(its last words are the ones closest to the text). The text itself is never cut for context: a text with no
room left for any context is encoded alone, exactly as without context.

The algorithm is spelled out here, not left to ``truncation="only_first"`` (which cuts the newest end of the
first segment), and the export's ``predict.py`` repeats it with the ``tokenizers`` library on the same rules.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any


def context_joiner(tokenizer: Any) -> str:
    """What separates two turns inside the context segment: the tokenizer's separator token where it has one
    (one token the encoder knows as a boundary), else a newline."""
    sep = getattr(tokenizer, "sep_token", None)
    return f" {sep} " if sep else "\n"


def pair_room(tokenizer: Any, n_text: int, max_length: int) -> int:
    """Context tokens that fit beside a text of ``n_text`` tokens (special tokens of a pair counted)."""
    return max_length - tokenizer.num_special_tokens_to_add(pair=True) - n_text


def conversation_features(tokenizer: Any, texts: Sequence[str], contexts: Sequence[Sequence[str]],
                          max_length: int) -> list[dict[str, Any]]:
    """Model features (``input_ids``, ``attention_mask`` [, ``token_type_ids``]) for each text with its
    earlier turns (oldest first); a text without turns is encoded as it would be without context."""
    joiner = context_joiner(tokenizer)
    text_lengths = [len(ids) for ids in tokenizer(list(texts), add_special_tokens=False)["input_ids"]]
    features: list[dict[str, Any]] = []
    for text, turns, n_text in zip(texts, contexts, text_lengths):
        room = pair_room(tokenizer, n_text, max_length)
        context = fitting_context(tokenizer, list(turns), text, room, max_length, joiner) if turns and room > 0 \
            else None
        encoded = tokenizer(text, truncation=True, max_length=max_length) if context is None \
            else tokenizer(text=context, text_pair=text)
        features.append({key: list(encoded[key]) for key in encoded.keys()})
    return features


def fitting_context(tokenizer: Any, turns: list[str], text: str, room: int, max_length: int,
                    joiner: str) -> str | None:
    """The newest turns that fit in ``room`` tokens, joined (None: not even a cut newest turn fits)."""
    counts = [len(ids) for ids in tokenizer(turns, add_special_tokens=False)["input_ids"]]
    n_joiner = len(tokenizer(joiner.strip(), add_special_tokens=False)["input_ids"]) if joiner.strip() else 0
    # first estimate from per-turn counts: the longest suffix of turns within the room
    kept, used = 0, 0
    for count in reversed(counts):
        cost = count + (n_joiner if kept else 0)
        if used + cost > room:
            break
        kept, used = kept + 1, used + cost
    # then check on the real pair (a joined text may tokenize a little differently): drop more if needed
    while kept:
        context = joiner.join(turns[-kept:])
        if _pair_length(tokenizer, context, text) <= max_length:
            return context
        kept -= 1
    newest = turns[-1]
    offsets = tokenizer(newest, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    for keep in range(min(room, len(offsets)), 0, -1):
        context = newest[offsets[-keep][0]:]
        if context.strip() and _pair_length(tokenizer, context, text) <= max_length:
            return context
    return None


def _pair_length(tokenizer: Any, context: str, text: str) -> int:
    return len(tokenizer(text=context, text_pair=text)["input_ids"])
