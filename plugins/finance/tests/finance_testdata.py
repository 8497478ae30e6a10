"""Tiny data the finance tests write for themselves."""

import csv
import json
import random
from pathlib import Path

POSITIVE = ["profit rose sharply", "sales grew strongly", "operating profit increased", "order intake improved"]
NEGATIVE = ["net loss widened", "sales fell sharply", "the company cut jobs", "operating profit decreased"]
NEUTRAL = ["the board will meet in May", "the company is based in Helsinki", "the report is due on Friday",
           "the shares are listed in Tallinn"]


def write_phrasebank(path: Path, n: int = 24, seed: int = 0) -> Path:
    """Latin-1 'sentence@label' lines, as in the Financial PhraseBank release (one with a non-ASCII char)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        label, pool = [("positive", POSITIVE), ("negative", NEGATIVE), ("neutral", NEUTRAL)][i % 3]
        lines.append(f"{rng.choice(pool)} at Oy Ab{i} , Espoo@{label}")
    lines[0] = "Kone 's profit rose to EUR 5 mn in Jyväskylä@positive"
    path.write_bytes(("\n".join(lines) + "\n").encode("latin-1"))
    return path


FRAUD_COLUMNS = {"numeric": ["amount", "v1"], "categorical": ["category"], "text": ["merchant"]}


def fraud_rows(n: int, seed: int = 0) -> list[dict]:
    """Fraud is large amounts with high v1 in 'online' at 'quick cash' merchants: learnable, a little noisy."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        fraud = int(i % 4 == 0)
        rows.append({
            "amount": round(rng.gauss(900 if fraud else 40, 30), 2),
            "v1": round(rng.gauss(2.0 if fraud else -0.5, 0.6), 3),
            "category": rng.choice(["online", "online", "atm"] if fraud else ["grocery", "fuel", "online"]),
            "merchant": rng.choice(["quick cash ltd", "gift cards now"] if fraud else ["corner grocery", "fuel stop"]),
            "is_fraud": fraud,
        })
    return rows


def write_csv(path: Path, rows: list[dict]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return path


def fraud_overrides(text: bool = True) -> list[str]:
    cols = FRAUD_COLUMNS
    out = ["data.label_column=is_fraud", f"data.numeric_columns={json.dumps(cols['numeric'])}",
           f"data.categorical_columns={json.dumps(cols['categorical'])}", "task.ensemble=2"]
    if text:
        out.append(f"data.text_columns={json.dumps(cols['text'])}")
    return out
