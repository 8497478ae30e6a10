"""Tiny intent data written by the tests (no real data set, no network)."""

from __future__ import annotations

import csv
import random
from pathlib import Path

# Keyword-separable intents, so a tiny random BERT learns them in a few epochs.
INTENTS = {
    "track_order": ["parcel", "tracking", "courier", "package", "shipment", "delivery"],
    "reset_password": ["password", "login", "locked", "sign", "reset", "username"],
    "refund_status": ["refund", "money", "reimbursed", "credit", "returned", "repaid"],
}
OOS_WORDS = ["weather", "football", "recipe", "poem", "holiday", "movie", "guitar", "planet"]
FAST = ["training.epochs=4", "training.batch_size=8", "training.learning_rate=0.001",
        "training.head_learning_rate=0.003", "training.early_stopping_patience=null"]


def intent_rows(n_per_intent: int, n_oos: int, seed: int) -> list[dict[str, str]]:
    rng = random.Random(seed)
    rows = []
    for intent, words in INTENTS.items():
        for _ in range(n_per_intent):
            a, b = rng.sample(words, 2)
            rows.append({"text": f"hello, my {a} and the {b} please", "label": intent})
    for _ in range(n_oos):
        a, b = rng.sample(OOS_WORDS, 2)
        rows.append({"text": f"tell me about the {a} and a {b}", "label": "out_of_scope"})
    rng.shuffle(rows)
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], fieldnames: list[str] | None = None) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=fieldnames or list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_faq(path: Path) -> Path:
    return write_csv(path, [
        {"question": "where is my parcel", "answer": "See Orders > Tracking.", "intent": "track_order"},
        {"question": "I forgot my password", "answer": "Use 'Forgot password'.", "intent": "reset_password"},
        {"question": "do you sell gift cards", "answer": "Yes, in every store.", "intent": ""},
    ])
