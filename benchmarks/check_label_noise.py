"""How well `verticals check` finds label errors: Banking77's training set with 5 % of its labels flipped to
another intent at random (seed 0) -> precision and recall of cleanlab's flagged rows against the flipped
ones; and how many rows it flags on the unmodified set, with a seeded sample of 10 to inspect by eye.

Run (under the bench lock; about 5 minutes on 2 CPU cores):
    flock /work/locks/bench.lock nice python benchmarks/check_label_noise.py [--sample 10] [--json OUT]
"""

from __future__ import annotations

import argparse
import csv
import json
import time

import numpy as np
from _common import data_dir
from verticals.workshop.check import check_data


def read_banking77() -> list[dict[str, str]]:
    with open(data_dir() / "banking77" / "train.csv", encoding="utf-8", newline="") as handle:
        return [{"text": row["text"], "label": row["category"]} for row in csv.DictReader(handle)]


def flip(rows: list[dict[str, str]], share: float, seed: int) -> tuple[list[dict[str, str]], set[int]]:
    """A copy of ``rows`` with ``share`` of the labels changed to another label, uniformly at random."""
    rng = np.random.default_rng(seed)
    labels = sorted({row["label"] for row in rows})
    flipped = set(rng.choice(len(rows), size=round(share * len(rows)), replace=False).tolist())
    noisy = []
    for i, row in enumerate(rows):
        if i in flipped:
            others = [label for label in labels if label != row["label"]]
            row = {"text": row["text"], "label": others[int(rng.integers(len(others)))]}
        noisy.append(dict(row))
    return noisy, flipped


def flagged_rows(report) -> dict[int, dict]:  # type: ignore[no-untyped-def]
    """Row index (in the list passed in) -> suspect, for cleanlab's label issues."""
    return {int(s.where.rsplit(" ", 1)[1]): s.model_dump() for s in report.suspects if s.check == "label_issue"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", type=float, default=0.05, help="share of labels flipped (default 0.05)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample", type=int, default=10, help="flagged clean rows to print for inspection")
    parser.add_argument("--json", metavar="OUT", help="also write the results as JSON")
    args = parser.parse_args()

    rows = read_banking77()
    noisy, flipped = flip(rows, args.share, args.seed)
    started = time.perf_counter()
    cheap = check_data("text-classification", noisy, thorough=False)
    cheap_s = time.perf_counter() - started
    started = time.perf_counter()
    report = check_data("text-classification", noisy)
    thorough_s = time.perf_counter() - started
    flagged = flagged_rows(report)
    hits = flipped & set(flagged)
    ranked = [int(s.where.rsplit(" ", 1)[1]) for s in report.suspects if s.check == "label_issue"]
    top = set(ranked[: len(flipped)])
    corrected = sum(1 for i in hits if flagged[i]["suggested_label"] == rows[i]["label"])

    clean = check_data("text-classification", rows)
    clean_flagged = flagged_rows(clean)
    probe = next(f.summary for f in clean.findings if f.check == "label_issues")

    results = {
        "records": len(rows), "flipped": len(flipped), "flagged": len(flagged), "true_positives": len(hits),
        "precision": len(hits) / max(1, len(flagged)), "recall": len(hits) / max(1, len(flipped)),
        "precision_at_flipped": len(flipped & top) / max(1, len(top)),
        "suggested_is_original": corrected / max(1, len(hits)),
        "clean_flagged": len(clean_flagged), "clean_probe": probe,
        "cheap_to_thorough_time": cheap_s / thorough_s,
        "cheap_warnings": [f.summary for f in cheap.warnings()],
    }
    print(f"Banking77 train ({len(rows)} records), {args.share:.0%} of labels flipped (seed {args.seed})")
    print(f"| {'measure':<48} | {'value':>8} |")
    print(f"|{'-' * 50}|{'-' * 10}|")
    table = [("flipped rows", len(flipped)), ("rows cleanlab flags (noisy set)", len(flagged)),
             ("flagged and flipped", len(hits)), ("precision", f"{results['precision']:.3f}"),
             ("recall", f"{results['recall']:.3f}"),
             (f"precision of the top {len(flipped)} ranked", f"{results['precision_at_flipped']:.3f}"),
             ("suggested label = original (of flagged+flipped)", f"{results['suggested_is_original']:.3f}"),
             ("rows cleanlab flags (unmodified set)", len(clean_flagged)),
             ("time: cheap checks / all checks", f"{results['cheap_to_thorough_time']:.3f}")]
    for name, value in table:
        print(f"| {name:<48} | {value!s:>8} |")
    print(f"unmodified set: {probe}")
    rng = np.random.default_rng(args.seed)
    sample = sorted(rng.choice(sorted(clean_flagged), size=min(args.sample, len(clean_flagged)), replace=False))
    print(f"\n{len(sample)} flagged rows of the unmodified set (seeded sample):")
    for i in sample:
        s = clean_flagged[int(i)]
        print(f"  row {i}: {s['label']} -> {s['suggested_label']} (p={s['score']:.2f}): {s['text']!r}")
    results["clean_sample"] = [clean_flagged[int(i)] for i in sample]
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
