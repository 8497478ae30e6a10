"""Raw text <-> words with character offsets.

Offsets are Python ``str`` indices (Unicode code points), so ``text[start:end]`` is the entity text.
Clients in languages that index UTF-16 code units (JavaScript, Java) must convert for characters outside
the Basic Multilingual Plane (e.g. emoji).
"""

from __future__ import annotations

import re
from collections.abc import Sequence

# Runs of letters/digits (keeping combining accents with their letter) are words; every other visible
# character is a word of its own. This matches the tokenisation of NCBI-disease / BC5CDR, where
# hyphens, slashes and brackets are separate tokens ("BRCA1 - associated", "( DM )").
WORD_PATTERN = re.compile(r"(?:[^\W_]|[\u0300-\u036f\u1ab0-\u1aff\u1dc0-\u1dff\u20d0-\u20ff\ufe20-\ufe2f])+|\S")


def pretokenize(text: str) -> tuple[list[str], list[tuple[int, int]]]:
    """Split ``text`` into words and their (start, end) character offsets."""
    tokens, offsets = [], []
    for match in WORD_PATTERN.finditer(text):
        tokens.append(match.group())
        offsets.append(match.span())
    return tokens, offsets


def align_tokens(text: str, tokens: Sequence[str]) -> list[tuple[int, int]] | None:
    """Character offsets of ``tokens`` found in order in ``text``; None when a token is not there."""
    offsets, cursor = [], 0
    for token in tokens:
        start = text.find(token, cursor)
        if start < 0:
            return None
        cursor = start + len(token)
        offsets.append((start, cursor))
    return offsets


def joined_offsets(tokens: Sequence[str]) -> tuple[str, list[tuple[int, int]]]:
    """Pre-tokenised input has no source text: its text is the words joined by single spaces."""
    offsets, cursor = [], 0
    for token in tokens:
        offsets.append((cursor, cursor + len(token)))
        cursor += len(token) + 1
    return " ".join(tokens), offsets
