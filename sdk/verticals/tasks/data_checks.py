"""The cheap checks of ``verticals check``: no model, only the records and the backbone's tokenizer, so
``verticals train`` runs them on every training run and warns (see :func:`cheap_warnings`).

Two texts are "the same" after Unicode NFKC, case folding and whitespace collapsing.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Sequence
from typing import Any

from .data_findings import EXAMPLES, Finding, Item, Suspect, normalise, share, short, where

RARE_LABEL_COUNT = 10
"""A label with fewer training records than this is rare: too few to learn it or to measure it."""
IMBALANCE_RATIO = 10.0
"""Largest / smallest label count from which the label distribution is called imbalanced."""
# Mojibake: UTF-8 read as Latin-1/cp1252 ("Ã©" for "é", "â€™" for "’"), or bytes no decoder could map.
_MOJIBAKE = re.compile(r"Ã[\u0080-\u00bf]|â€|\ufffd")


def task_kind(model: Any) -> str | None:
    from .text_classification import TextClassificationTask
    from .token_classification import TokenClassificationTask

    if isinstance(model, TextClassificationTask):
        return "text"
    if isinstance(model, TokenClassificationTask):
        return "tokens"
    return None


def items_of(model: Any, split: str, records: Sequence[Any]) -> list[Item]:
    kind = task_kind(model)
    items = []
    for i, record in enumerate(records):
        if kind == "tokens":
            text, label = " ".join(record.tokens), " ".join(record.tags or [])
        else:
            text, label = record.text, record.label if record.label is not None else ""
        # a record read with earlier turns (customer service's data.context_column): the same follow-up after
        # other turns is another input, not a duplicate or a label conflict
        context = getattr(record, "context", None)
        key = normalise(" \u241e ".join([*context, text])) if context else normalise(text)
        items.append(Item(split, where(record, split, i), text, label, key, record))
    return items


# ---- cheap checks -----------------------------------------------------------------------------------
def _odd(text: str) -> str | None:
    if not any(ch.isalpha() for ch in text):
        return "no letters"
    if _MOJIBAKE.search(text):
        return "mis-decoded characters (mojibake or U+FFFD); check data.encoding"
    if any(unicodedata.category(ch) == "Cc" and ch not in "\t\n\r" for ch in text):
        return "control characters"
    return None


def check_odd(split: str, items: Sequence[Item], refused: Sequence[str]) -> list[Finding]:
    found = []
    if refused:
        found.append(Finding(check="invalid_records", split=split, status="warn", count=len(refused),
                             summary=f"{len(refused)} {split} records the task's reader refuses (train stops at "
                                     f"the first)", examples=list(refused[:EXAMPLES])))
    odd = [(item, why) for item in items if (why := _odd(item.text))]
    found.append(Finding(check="odd_records", split=split, status="warn" if odd else "ok", count=len(odd),
                         summary=f"{share(len(odd), len(items))} {split} records look odd" if odd else "no odd records",
                         examples=[f"{item.where}: {why}: {short(item.text)}" for item, why in odd[:EXAMPLES]]))
    return found


def _conflict(group: Sequence[Item]) -> str:
    """How the labels of one text differ: the labels, or for tagged words the first word tagged differently."""
    first = group[0]
    if hasattr(first.record, "tokens"):
        other = next(item for item in group if item.label != first.label)
        mine, theirs = first.label.split(), other.label.split()
        i = next(i for i, (a, b) in enumerate(zip(mine, theirs)) if a != b)
        return (f"{first.where} and {other.where}: word {i + 1} {first.record.tokens[i]!r} is {mine[i]} in one, "
                f"{theirs[i]} in the other: {short(first.text)}")
    return "; ".join(f"{item.where} {item.label!r}" for item in group[:4]) + f": {short(first.text)}"


def _longest(pairs: Sequence[tuple[Item, Item]]) -> list[tuple[Item, Item]]:
    """The examples to show: the longest texts (a repeated "3 ." tells less than a repeated sentence)."""
    return sorted(pairs, key=lambda pair: -len(pair[0].text))[:EXAMPLES]


def check_duplicates(split: str, items: Sequence[Item]) -> tuple[list[Finding], list[Suspect]]:
    groups: dict[str, list[Item]] = defaultdict(list)
    for item in items:
        groups[item.key].append(item)
    repeats, conflicts, suspects = [], [], []
    for group in groups.values():
        by_label = Counter(item.label for item in group)
        for label in by_label:
            same = [item for item in group if item.label == label]
            repeats.extend((item, same[0]) for item in same[1:])
        if len(by_label) > 1:
            conflicts.append(group)
            (top, top_n), *rest = by_label.most_common()
            majority = top if not rest or rest[0][1] < top_n else None
            suspects.extend(Suspect(split=split, where=item.where, check="label_conflict", label=item.label,
                                    suggested_label=majority, score=None, text=item.text)
                            for item in group if item.label != majority)
    n_rows = sum(len(group) for group in conflicts)
    return [
        Finding(check="exact_duplicates", split=split, status="warn" if repeats else "ok", count=len(repeats),
                summary=(f"{share(len(repeats), len(items))} {split} records repeat an earlier one with "
                         f"the same label") if repeats else "no exact duplicates",
                examples=[f"{a.where} repeats {b.where}: {short(a.text)}" for a, b in _longest(repeats)]),
        Finding(check="label_conflicts", split=split, status="warn" if conflicts else "ok", count=len(conflicts),
                summary=(f"{len(conflicts)} {split} texts appear with different labels ({n_rows} records)"
                         if conflicts else "no text with conflicting labels"),
                examples=[_conflict(group) for group in conflicts[:EXAMPLES]]),
    ], suspects


def check_leakage(split: str, items: Sequence[Item], other: str, others: Sequence[Item]) -> Finding:
    seen: dict[str, Item] = {}
    for item in others:
        seen.setdefault(item.key, item)
    leaked = [(item, seen[item.key]) for item in items if item.key in seen]
    relabelled = sum(1 for item, twin in leaked if item.label != twin.label)
    note = f", {relabelled} of them with another label" if relabelled else ""
    return Finding(check="leakage", split=f"{split} vs {other}", status="warn" if leaked else "ok", count=len(leaked),
                   summary=(f"{share(len(leaked), len(items))} {split} records also appear in "
                            f"{other}{note}: they score memory, not generalisation") if leaked
                   else f"no {split} text appears in {other}",
                   examples=[f"{a.where} = {b.where}: {short(a.text)}" for a, b in _longest(leaked)])


def check_balance(model: Any, splits: dict[str, list[Item]]) -> list[Finding]:
    kind = task_kind(model)
    if kind == "tokens":
        from .token_classification import spans

        def units(item: Item) -> list[str]:
            return [kind for kind, _, _ in spans(item.record.tags or [])]
        noun = "entity mentions"
    else:
        def units(item: Item) -> list[str]:
            return [item.label]
        noun = "records"
    counts = Counter(unit for item in splits["train"] for unit in units(item))
    found = []
    if counts:
        (most, n_most), (least, n_least) = counts.most_common()[0], counts.most_common()[-1]
        ratio = n_most / n_least
        found.append(Finding(
            check="label_balance", split="train", status="warn" if ratio >= IMBALANCE_RATIO else "info",
            count=len(counts), summary=f"{len(counts)} labels; {noun} per label {n_least} ({least}) to {n_most} "
                                       f"({most}), ratio {ratio:.1f}" + (" (imbalanced)" if ratio >= IMBALANCE_RATIO
                                                                       else ""),
            examples=[f"{label}: {n}" for label, n in counts.most_common()][:EXAMPLES]))
    rare = sorted((n, label) for label, n in counts.items() if n < RARE_LABEL_COUNT)
    found.append(Finding(check="rare_labels", split="train", status="warn" if rare else "ok", count=len(rare),
                         summary=(f"{len(rare)} labels have fewer than {RARE_LABEL_COUNT} training {noun}" if rare
                                  else f"every label has at least {RARE_LABEL_COUNT} training {noun}"),
                         examples=[f"{label}: {n}" for n, label in rare[:EXAMPLES]]))
    for split in ("validation", "test"):
        unseen = Counter(unit for item in splits.get(split, []) for unit in units(item) if unit not in counts)
        if unseen:
            found.append(Finding(check="unseen_labels", split=split, status="warn", count=sum(unseen.values()),
                                 summary=f"{len(unseen)} {split} labels never occur in train (train refuses them)",
                                 examples=[f"{label}: {n}" for label, n in unseen.most_common(EXAMPLES)]))
    return found


def check_tags(split: str, items: Sequence[Item]) -> list[Finding]:
    broken, empty = [], 0
    for item in items:
        tags = item.record.tags or []
        previous = "O"
        for i, tag in enumerate(tags):
            if tag.startswith("I-") and previous[2:] != tag[2:]:
                broken.append(f"{item.where}: word {i + 1} {item.record.tokens[i]!r} is {tag} after {previous}")
                break
            previous = tag
        empty += all(tag == "O" for tag in tags)
    return [
        Finding(check="tag_sanity", split=split, status="warn" if broken else "ok", count=len(broken),
                summary=(f"{len(broken)} {split} sentences have an I- tag that continues no entity (read as B-)"
                         if broken else "every I- tag continues an entity"), examples=broken[:EXAMPLES]),
        Finding(check="no_entity_sentences", split=split, status="info", count=empty,
                summary=f"{share(empty, len(items))} {split} sentences have no entity"),
    ]


def check_truncation(model: Any, split: str, items: Sequence[Item], tokenizer: Any) -> Finding:
    max_length = model.config.training.max_length
    if not getattr(model, "truncates_long_inputs", True):
        return Finding(check="truncation", split=split, status="skipped",
                       summary=f"{model.task_name} splits long inputs into windows: nothing is cut")
    tokens = task_kind(model) == "tokens"
    inputs = [item.record.tokens if tokens else item.text for item in items]
    lengths = [len(ids) for ids in tokenizer(inputs, is_split_into_words=tokens, truncation=False,
                                             verbose=False)["input_ids"]] if inputs else []
    cut = [(item, n) for item, n in zip(items, lengths) if n > max_length]
    examples = []
    for item, n in cut[:EXAMPLES]:
        encoded = tokenizer(inputs[items.index(item)], is_split_into_words=tokens, truncation=True,
                            max_length=max_length, return_offsets_mapping=not tokens)
        if tokens:
            kept = max(w for w in encoded.word_ids() if w is not None) + 1
            examples.append(f"{item.where}: {n} tokens; words {kept + 1}-{len(item.record.tokens)} are cut: "
                            f"{short(' '.join(item.record.tokens[kept:]), 50)}")
        else:
            end = max(stop for _, stop in encoded["offset_mapping"])
            examples.append(f"{item.where}: {n} tokens; the model never sees the last {len(item.text) - end} "
                            f"characters: {short(item.text[end:], 50)}")
    return Finding(check="truncation", split=split, status="warn" if cut else "ok", count=len(cut),
                   summary=(f"{share(len(cut), len(items))} {split} records are longer than "
                            f"training.max_length={max_length} tokens and get cut") if cut
                   else f"no {split} record is longer than training.max_length={max_length} tokens",
                   examples=examples)


def cheap_checks(model: Any, splits: dict[str, list[Item]], refused: dict[str, list[str]] | None = None
                 ) -> tuple[list[Finding], list[Suspect]]:
    """The checks that need no model: what ``verticals train`` runs before training."""
    from ..backbones.loading import load_tokenizer, resolve_backbone

    findings: list[Finding] = []
    suspects: list[Suspect] = []
    tokenizer = load_tokenizer(resolve_backbone(model.config.training.backbone))
    for split, items in splits.items():
        findings.extend(check_odd(split, items, (refused or {}).get(split, [])))
        duplicates, conflicted = check_duplicates(split, items)
        findings.extend(duplicates)
        suspects.extend(conflicted)
        if task_kind(model) == "tokens":
            findings.extend(check_tags(split, items))
        findings.append(check_truncation(model, split, items, tokenizer))
    names = list(splits)
    for i, split in enumerate(names):
        for other in names[:i]:
            findings.append(check_leakage(split, splits[split], other, splits[other]))
    findings.extend(check_balance(model, splits))
    return findings, suspects


def cheap_warnings(model: Any, records: dict[str, Sequence[Any] | None]) -> list[str]:
    """One line per cheap check that found something, for ``verticals train`` to warn with (never refuse).
    Task types other than text/token classification have nothing to check here: []."""
    if task_kind(model) is None:
        return []
    splits = {split: items_of(model, split, rows) for split, rows in records.items() if rows is not None}
    findings, _ = cheap_checks(model, splits)
    lines = []
    for finding in findings:
        if finding.status == "warn":
            first = f" (e.g. {finding.examples[0]})" if finding.examples else ""
            lines.append(f"data check: {finding.summary}{first}")
    return lines


