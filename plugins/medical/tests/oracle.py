"""Logits that spell out given word tags, so decoding (windows, merge, offsets, repair) is tested
exactly, independent of what a tiny random model happens to learn."""

from __future__ import annotations

import numpy as np


def oracle_logits(task, features, word_tags, *, blind_edge: int = 0, wrong: str = "O"):  # type: ignore[no-untyped-def]
    """Per-window logits voting for ``word_tags[record][word]``; words with less than ``blind_edge``
    tokens of context in a window get ``wrong`` there instead, as a model cut off mid-entity might."""
    index = {label: i for i, label in enumerate(task.labels_)}
    logits = []
    for feature in features:
        window = np.zeros((len(feature["input_ids"]), len(task.labels_)), dtype=np.float32)
        for position, word, ctx in feature["words"]:
            tag = word_tags[feature["record"]][word]
            window[position, index[wrong if ctx < blind_edge else tag]] = 10.0
        logits.append(window)
    return logits
