"""One test on the real all-MiniLM-L6-v2: text columns carry signal through the fraud task end to end."""

import random
from pathlib import Path

import pytest
from finance_testdata import write_csv
from verticals import load, train

RISKY = ["online casino", "crypto exchange", "gift card reseller", "wire transfer agent", "betting site",
         "bitcoin atm", "poker room", "prepaid card shop", "lottery tickets online", "forex broker"]
SAFE = ["corner grocery", "city bakery", "fuel station", "public library cafe", "pharmacy", "bookshop",
        "shoe repair", "farmers market", "dental clinic", "hardware store"]


def rows(names_risky: list[str], names_safe: list[str], n: int, seed: int) -> list[dict]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        fraud = int(i % 3 == 0)
        out.append({"amount": round(rng.uniform(5, 200), 2),  # the tabular column carries no signal
                    "merchant": rng.choice(names_risky if fraud else names_safe), "label": fraud})
    return out


@pytest.mark.integration
def test_text_columns_generalise_to_unseen_merchants(tmp_path: Path) -> None:
    # Test merchants never occur in training: only the embedding's semantics can score them.
    write_csv(tmp_path / "train.csv", rows(RISKY[:6], SAFE[:6], 90, 0))
    write_csv(tmp_path / "validation.csv", rows(RISKY[6:8], SAFE[6:8], 30, 1))
    write_csv(tmp_path / "test.csv", rows(RISKY[8:], SAFE[8:], 30, 2))
    overrides = ['data.numeric_columns=["amount"]', 'data.text_columns=["merchant"]', "training.epochs=30"]
    train("finance.fraud", tmp_path / "train.csv", validation=tmp_path / "validation.csv",
          output=tmp_path / "bundle", overrides=overrides)
    predictor = load(tmp_path / "bundle")  # the text encoder is inside the bundle
    assert (tmp_path / "bundle" / "backbone" / "model.safetensors").is_file()
    metrics = predictor.evaluate(tmp_path / "test.csv").metrics
    assert metrics["roc_auc"] > 0.8
