"""Seeded, label-free text generators: EDA augmentation, NER augmentation and distillation transfer sets.

* Text (Wei & Zou, 2019, "EDA"): random swap, random deletion, random insertion of in-domain words (drawn from
  the training texts themselves) and substitution by nearest neighbours in the backbone's own input-embedding
  space (:class:`EmbeddingNeighbours`), in place of EDA's WordNet synonyms.
* NER (Dai & Adel, 2020): mention replacement with same-type training mentions, label-wise token replacement,
  embedding-neighbour replacement (their synonym replacement) and shuffling within segments; tags stay aligned.
* Transfer sets (Tang et al., 2019): per word, masking (``[MASK]`` or the unknown token) or embedding-neighbour
  replacement, then n-gram sampling; ``multiplier`` times the given texts.

Why our own code rather than nlpaug (which is on the local index): its synonym and embedding augmenters need
WordNet, word2vec/GloVe or model downloads at run time, and the four EDA operations are a few lines each. The
backbone's word-piece embedding matrix is already loaded, so neighbours cost no download and follow the very
vocabulary the model reads.

Every generator takes a ``seed`` and is deterministic for a given input order. The text and transfer-set
generators never see labels (their signatures have none); they return the index of each output's source
so that the caller can copy what it needs (for augmentation, the source's label). The NER augmenter needs
tags by definition (it replaces *mentions*), and returns tags aligned with its tokens.
"""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

TEXT_OPERATIONS = ("swap", "delete", "insert", "neighbour")
"""The EDA operations :func:`augment_texts` knows."""
TOKEN_OPERATIONS = ("mention", "token", "neighbour", "shuffle")
"""The NER operations :func:`augment_token_sentences` knows."""
_WORD_PREFIXES = ("▁", "Ġ")  # SentencePiece / byte-level BPE mark of a word start


@dataclass(frozen=True)
class EmbeddingNeighbours:
    """Nearest whole-word vocabulary entries of words, by cosine in an input-embedding matrix.

    Build it with :meth:`from_embeddings`; ``table`` maps a word (as the vocabulary spells it, e.g. lower case
    for an uncased model) to its neighbours, nearest first."""

    table: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    lowercase: bool = False

    @classmethod
    def from_embeddings(cls, vocab: Mapping[str, int], weights: np.ndarray, words: Iterable[str], *, k: int = 8,
                        min_cosine: float = 0.3, lowercase: bool | None = None) -> EmbeddingNeighbours:
        """Neighbours of ``words`` among the whole-word entries of ``vocab`` (token -> row of ``weights``,
        ``[vocab_size, dim]``): entries that are alphabetic words of two letters or more, not word-piece
        continuations (``##ing``) or special tokens. ``lowercase`` (default: guessed from the vocabulary having
        no capitalised words) says whether words are looked up in lower case, as an uncased model reads them."""
        entries: dict[str, int] = {}
        for token, row in vocab.items():
            word = token[1:] if token.startswith(_WORD_PREFIXES) else token
            if len(word) >= 2 and word.isalpha() and row < len(weights):
                entries.setdefault(word, int(row))
        if lowercase is None:
            lowercase = not any(word[0].isupper() for word in entries)
        names = sorted(entries)
        if not names:
            return cls({}, bool(lowercase))
        matrix = np.asarray(weights, dtype=np.float32)[[entries[w] for w in names]]
        matrix /= np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
        position = {w: i for i, w in enumerate(names)}
        wanted = sorted({w.lower() if lowercase else w for w in words} & position.keys())
        table: dict[str, tuple[str, ...]] = {}
        for start in range(0, len(wanted), 512):  # bounded memory: 512 x vocabulary similarities at a time
            chunk = wanted[start:start + 512]
            sims = matrix[[position[w] for w in chunk]] @ matrix.T
            for word, row in zip(chunk, sims):
                row[position[word]] = -np.inf
                best = np.argsort(-row, kind="stable")[:k]
                near = tuple(names[i] for i in best if row[i] >= min_cosine and names[i].lower() != word.lower())
                if near:
                    table[word] = near
        return cls(table, bool(lowercase))

    def get(self, word: str) -> tuple[str, ...]:
        """Neighbours of ``word`` (empty when it is not a whole word of the vocabulary), in the word's case:
        a capitalised word gets capitalised neighbours."""
        found = self.table.get(word.lower() if self.lowercase else word, ())
        if found and word[:1].isupper() and self.lowercase:
            return tuple(n[:1].upper() + n[1:] for n in found)
        return found


def check_operations(operations: Sequence[str], known: Sequence[str]) -> list[str]:
    """``operations`` as a list, refusing unknown names with the known ones listed."""
    unknown = [op for op in operations if op not in known]
    if unknown or not operations:
        raise ValueError(f"unknown augmentation operation(s) {unknown}; expected some of {list(known)}")
    return list(operations)


def _n_changes(n_words: int, rate: float) -> int:
    return max(1, int(rate * n_words))  # EDA: n = alpha * length, at least one change


def _word_pool(sentences: Iterable[Sequence[str]]) -> list[str]:
    """Every alphabetic word occurrence of the sentences, in order (so drawing from it follows frequency)."""
    return [word for words in sentences for word in words if word.isalpha()]


def eda(words: Sequence[str], operation: str, rate: float, rng: random.Random, *, pool: Sequence[str] = (),
        neighbours: EmbeddingNeighbours | None = None) -> list[str]:
    """One EDA ``operation`` (see :data:`TEXT_OPERATIONS`) applied to ``words``; ``pool`` holds the in-domain
    words ``insert`` draws from. Returns a new list (possibly equal to ``words`` when nothing applied)."""
    out = list(words)
    n = _n_changes(len(out), rate)
    if operation == "swap" and len(out) >= 2:
        for _ in range(n):
            i, j = rng.sample(range(len(out)), 2)
            out[i], out[j] = out[j], out[i]
    elif operation == "delete" and len(out) >= 2:
        kept = [w for w in out if rng.random() >= rate]
        out = kept or [rng.choice(out)]  # EDA keeps one random word rather than an empty text
    elif operation == "insert" and pool:
        for _ in range(n):
            out.insert(rng.randint(0, len(out)), rng.choice(pool))
    elif operation == "neighbour" and neighbours is not None:
        candidates = [i for i, w in enumerate(out) if neighbours.get(w)]
        for i in rng.sample(candidates, min(n, len(candidates))):
            out[i] = rng.choice(neighbours.get(out[i]))
    return out


def augment_texts(texts: Sequence[str], *, copies: int, operations: Sequence[str] = TEXT_OPERATIONS,
                  rate: float = 0.1, seed: int = 0, neighbours: EmbeddingNeighbours | None = None,
                  ) -> list[tuple[int, str]]:
    """Up to ``copies`` EDA variants of each text, as ``(source index, new text)`` pairs in source order.

    Each variant applies one operation drawn from ``operations`` (as EDA does) to about ``rate`` of the words
    (whitespace-separated); ``insert`` draws in-domain words from ``texts`` themselves. A variant equal to its
    source or to an earlier variant is dropped (after a few draws), so fewer may come back. Labels are never
    read: the caller copies the source's label to its variants."""
    operations = check_operations(operations, TEXT_OPERATIONS)
    rng = random.Random(seed)
    split = [text.split() for text in texts]
    pool = _word_pool(split)
    out: list[tuple[int, str]] = []
    for index, words in enumerate(split):
        seen = {" ".join(words)}
        for _ in range(copies):
            for _attempt in range(4):
                new = " ".join(eda(words, rng.choice(operations), rate, rng, pool=pool, neighbours=neighbours))
                if new not in seen:
                    seen.add(new)
                    out.append((index, new))
                    break
    return out


# ---- NER (Dai & Adel, 2020) --------------------------------------------------------------------------------
def _mentions(tags: Sequence[str]) -> list[tuple[str, int, int]]:
    """(type, start, end) of each BIO mention (an I- without its B- starts one, as conlleval reads it)."""
    found: list[tuple[str, int, int]] = []
    start, kind = -1, ""
    for i, tag in enumerate([*tags, "O"]):
        continues = tag.startswith("I-") and tag[2:] == kind and start >= 0
        if start >= 0 and not continues:
            found.append((kind, start, i))
            start = -1
        if tag != "O" and not continues:
            start, kind = i, tag[2:]
    return found


def _segments(tags: Sequence[str]) -> list[tuple[int, int]]:
    """Maximal runs of one label: each mention, and each stretch of 'O' between them."""
    bounds = sorted({0, len(tags), *(b for _, s, e in _mentions(tags) for b in (s, e))})
    return list(zip(bounds, bounds[1:]))


def augment_token_sentences(sentences: Sequence[Sequence[str]], tags: Sequence[Sequence[str]], *, copies: int,
                            operations: Sequence[str] = ("mention", "token"), rate: float = 0.3, seed: int = 0,
                            neighbours: EmbeddingNeighbours | None = None,
                            ) -> list[tuple[int, list[str], list[str]]]:
    """Up to ``copies`` variants of each tagged sentence, as ``(source index, tokens, tags)`` in source order.

    Operations (one drawn per variant), each deciding per token or mention with probability ``rate``:
    ``mention`` replaces a mention by a random training mention of the same type (its tags become B-/I- of
    that length); ``token`` replaces a token by a random training token with the same tag (label-wise token
    replacement); ``neighbour`` replaces a token by an embedding neighbour, keeping its tag; ``shuffle``
    shuffles the tokens inside a segment (a mention, or a run of 'O'). Tags always stay one per token and
    valid BIO. Variants equal to their source are dropped."""
    operations = check_operations(operations, TOKEN_OPERATIONS)
    if len(sentences) != len(tags) or any(len(s) != len(t) for s, t in zip(sentences, tags)):
        raise ValueError("every sentence needs one tag per token")
    rng = random.Random(seed)
    by_type: dict[str, list[tuple[str, ...]]] = defaultdict(list)
    by_tag: dict[str, list[str]] = defaultdict(list)
    for words, labels in zip(sentences, tags):
        for kind, start, end in _mentions(labels):
            by_type[kind].append(tuple(words[start:end]))
        for word, label in zip(words, labels):
            by_tag[label].append(word)
    out: list[tuple[int, list[str], list[str]]] = []
    for index, (words, labels) in enumerate(zip(sentences, tags)):
        seen = {tuple(words)}
        for _ in range(copies):
            for _attempt in range(4):
                new_words, new_tags = _token_variant(list(words), list(labels), rng.choice(operations), rate, rng,
                                                     by_type, by_tag, neighbours)
                if tuple(new_words) not in seen:
                    seen.add(tuple(new_words))
                    out.append((index, new_words, new_tags))
                    break
    return out


def _token_variant(words: list[str], labels: list[str], operation: str, rate: float, rng: random.Random,
                   by_type: Mapping[str, Sequence[tuple[str, ...]]], by_tag: Mapping[str, Sequence[str]],
                   neighbours: EmbeddingNeighbours | None) -> tuple[list[str], list[str]]:
    if operation == "mention":
        new_words: list[str] = []
        new_tags: list[str] = []
        previous = 0
        for kind, start, end in _mentions(labels):
            new_words += words[previous:start]
            new_tags += labels[previous:start]
            mention = tuple(words[start:end])
            if rng.random() < rate and by_type.get(kind):
                mention = rng.choice(by_type[kind])
            new_words += mention
            new_tags += [f"B-{kind}"] + [f"I-{kind}"] * (len(mention) - 1)
            previous = end
        return new_words + words[previous:], new_tags + labels[previous:]
    if operation == "token":
        return [rng.choice(by_tag[tag]) if rng.random() < rate else w for w, tag in zip(words, labels)], labels
    if operation == "neighbour" and neighbours is not None:
        return [rng.choice(neighbours.get(w)) if neighbours.get(w) and rng.random() < rate else w
                for w in words], labels
    if operation == "shuffle":
        for start, end in _segments(labels):
            if end - start >= 2 and rng.random() < rate:
                part = words[start:end]
                rng.shuffle(part)
                words[start:end] = part
    return words, labels


# ---- transfer sets (Tang et al., 2019) --------------------------------------------------------------------
def _transfer_variant(words: Sequence[str], rng: random.Random, neighbours: EmbeddingNeighbours | None,
                      mask_token: str, p_mask: float, p_neighbour: float, p_ngram: float,
                      max_ngram: int) -> list[str]:
    out = []
    for word in words:
        draw = rng.random()
        if draw < p_mask:
            out.append(mask_token)
        elif draw < p_mask + p_neighbour and neighbours is not None and neighbours.get(word):
            out.append(rng.choice(neighbours.get(word)))
        else:
            out.append(word)
    if len(out) > 1 and rng.random() < p_ngram:
        n = rng.randint(1, min(max_ngram, len(out)))
        start = rng.randint(0, len(out) - n)
        out = out[start:start + n]
    return out


def transfer_sentences(sentences: Sequence[Sequence[str]], *, multiplier: int, seed: int = 0,
                       neighbours: EmbeddingNeighbours | None = None, mask_token: str = "[MASK]",
                       p_mask: float = 0.1, p_neighbour: float = 0.1, p_ngram: float = 0.25,
                       max_ngram: int = 5) -> list[tuple[int, list[str]]]:
    """``multiplier`` generated token lists per sentence, as ``(source index, tokens)`` in source order: the
    transfer-set recipe of Tang et al. (2019), with embedding neighbours for their same-POS replacement.

    Each word is masked with probability ``p_mask`` (``mask_token``: the tokenizer's ``[MASK]``, or its unknown
    token), else replaced by an embedding neighbour with probability ``p_neighbour``; then with probability
    ``p_ngram`` only a random n-gram (n from 1 to ``max_ngram``) is kept. Duplicates are kept (they still add
    teacher targets for the variant). Labels are never read."""
    if multiplier < 0:
        raise ValueError(f"multiplier must be 0 or more, found {multiplier}")
    rng = random.Random(seed)
    return [(index, _transfer_variant(words, rng, neighbours, mask_token, p_mask, p_neighbour, p_ngram, max_ngram))
            for index, words in enumerate(sentences) for _ in range(multiplier)]


def transfer_texts(texts: Sequence[str], *, multiplier: int, seed: int = 0,
                   neighbours: EmbeddingNeighbours | None = None, mask_token: str = "[MASK]",
                   p_mask: float = 0.1, p_neighbour: float = 0.1, p_ngram: float = 0.25,
                   max_ngram: int = 5) -> list[tuple[int, str]]:
    """:func:`transfer_sentences` on whitespace-split texts, joined back: ``multiplier`` x ``len(texts)``
    ``(source index, text)`` pairs. Labels are never read."""
    generated = transfer_sentences([text.split() for text in texts], multiplier=multiplier, seed=seed,
                                   neighbours=neighbours, mask_token=mask_token, p_mask=p_mask,
                                   p_neighbour=p_neighbour, p_ngram=p_ngram, max_ngram=max_ngram)
    return [(index, " ".join(words)) for index, words in generated]
