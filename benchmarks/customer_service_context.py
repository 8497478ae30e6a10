"""Conversation context (``data.context_column``) on Banking77 with built follow-ups.

Banking77 has single utterances, no conversations, so follow-ups are built: a follow-up record's text is one
of a few phrasings shared by every intent ("and what about that one?"), its earlier turns a Banking77
utterance of the intent it continues (drawn from the same split). The same data trains
``customer_service.intent`` twice, with and without ``data.context_column=history``; the table gives test
accuracy on the plain utterances, on the follow-ups and overall, and the classifier's accuracy alone (the
fallback's retrieval and out-of-scope rule key on the current utterance either way).

    flock /tmp/verticals-bench.lock nice -n 10 python benchmarks/customer_service_context.py \
        [--intents 20] [--per-intent 16] [--follow-ups 8] [--epochs N] [--seed 0]
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

from customer_service_banking77 import banking77_root, cap_per_intent, read_rows

TASK = "customer_service.intent"
FOLLOW_UPS = ["and what about that one?", "same question for the other one", "and for the second one?",
              "what about the other thing I mentioned", "ok and how about that"]


def conversations(rows: list[dict[str, str]], intents: list[str], plain: int, follow: int,
                  seed: int) -> list[dict[str, object]]:
    """Per intent: ``plain`` utterances without earlier turns, ``follow`` follow-ups after another one."""
    rng = random.Random(seed)
    out: list[dict[str, object]] = []
    for intent in intents:
        pool = [r["text"] for r in rows if r["label"] == intent]
        rng.shuffle(pool)
        chosen = pool[:plain]
        out += [{"text": text, "label": intent, "history": [], "kind": "plain"} for text in chosen]
        out += [{"text": rng.choice(FOLLOW_UPS), "label": intent, "history": [rng.choice(pool)], "kind": "follow-up"}
                for _ in range(follow)]
    rng.shuffle(out)
    return out


def write_jsonl(path: Path, rows: list[dict[str, object]]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--intents", type=int, default=20, help="Banking77 intents used (the first N by name)")
    parser.add_argument("--per-intent", type=int, default=16, help="plain training utterances per intent")
    parser.add_argument("--follow-ups", type=int, default=8, help="training follow-ups per intent")
    parser.add_argument("--epochs", type=int, default=None, help="training.epochs (default: the pack's)")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    root = banking77_root()
    if root is None:
        return
    from verticals import api

    train_rows, test_rows = read_rows(root / "train.csv"), read_rows(root / "test.csv")
    intents = sorted({r["label"] for r in train_rows})[: args.intents]
    pool = cap_per_intent([r for r in train_rows if r["label"] in intents], args.per_intent + 4, args.seed)
    val_pool = {id(r) for r in cap_per_intent(pool, 4, args.seed + 1)}
    train = conversations([r for r in pool if id(r) not in val_pool], intents, args.per_intent, args.follow_ups,
                          args.seed)
    validation = conversations([r for r in pool if id(r) in val_pool], intents, 4, 4, args.seed + 1)
    test = conversations([r for r in test_rows if r["label"] in intents], intents, 10, 10, args.seed + 2)
    overrides = ["task.objective=in_scope_rejection"] + ([f"training.epochs={args.epochs}"] if args.epochs else [])
    print(f"{len(intents)} intents; train {len(train)}, validation {len(validation)}, test {len(test)} "
          f"(half follow-ups in test)")
    print("| model | plain | follow-ups | all | classifier alone | train s |")
    print("|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        files = {name: write_jsonl(Path(tmp) / f"{name}.jsonl", rows)
                 for name, rows in (("train", train), ("validation", validation), ("test", test))}
        for name, extra in (("with context", ["data.context_column=history"]), ("without", [])):
            start = time.perf_counter()
            predictor = api.train(TASK, files["train"], validation=files["validation"], output=Path(tmp) / name,
                                  overrides=overrides + extra, check=False)
            took = time.perf_counter() - start
            predictions = predictor.predict(files["test"])
            right = [p.intent == r["label"] for p, r in zip(predictions, test)]
            alone = [max(p.scores, key=p.scores.__getitem__) == r["label"] for p, r in zip(predictions, test)]

            def share(kind: str, hits: list[bool] = right) -> str:
                chosen = [h for h, r in zip(hits, test) if kind in ("all", r["kind"])]
                return f"{sum(chosen) / len(chosen):.3f}"

            print(f"| {name} | {share('plain')} | {share('follow-up')} | {share('all')} | {share('all', alone)} "
                  f"| {took:.0f} |", flush=True)


if __name__ == "__main__":
    main()
