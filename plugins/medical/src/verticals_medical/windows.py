"""Sliding windows over subword tokens, so documents longer than the model's maximum length are read
whole, and the choice of which window's prediction to keep for a word."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from verticals import ConfigError


def special_tokens(tokenizer: Any) -> tuple[list[int], list[int]]:
    """Ids the tokenizer puts before/after a sequence ([CLS] / [SEP] for BERT), found by probing it."""
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return full[:i], full[i + len(plain) :]
    raise ConfigError("cannot locate the special tokens of the backbone's tokenizer")


def window_starts(n_tokens: int, size: int, stride: int) -> list[int]:
    """Starts of windows of ``size`` tokens covering ``n_tokens``; consecutive windows share at least
    ``stride`` tokens and the last window ends at the last token."""
    if size < 1 or stride >= size:
        raise ConfigError(
            f"task.stride={stride} must be smaller than the window ({size} subword tokens after special "
            f"tokens); lower task.stride or raise training.max_length"
        )
    if n_tokens <= size:
        return [0]
    return list(range(0, n_tokens - size, size - stride)) + [n_tokens - size]


def first_subwords(word_ids: Sequence[int | None]) -> list[bool]:
    """True where a token is the first subword of its word (the one that carries the word's label)."""
    flags, previous = [], None
    for word in word_ids:
        flags.append(word is not None and word != previous)
        previous = word
    return flags


def context(position: int, start: int, end: int, n_tokens: int) -> float:
    """Tokens of context a window gives ``position`` on its poorer side; a document edge is not a cut,
    so it counts as unlimited context. The merge keeps each word's prediction from the window where
    this is largest, i.e. where the word sits most centrally."""
    left = position - start if start > 0 else math.inf
    right = end - 1 - position if end < n_tokens else math.inf
    return min(left, right)
