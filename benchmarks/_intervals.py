"""How precisely one test split measures the share of the teacher's gain a student keeps
(``benchmarks/teacher_student.py --table --intervals``).

Every bundle is scored record by record on the test split; a paired bootstrap over those records (the same
resampled rows for the MiniLM, the teacher and each student seed: ``verticals.metrics.significance``, as
``verticals compare`` uses it) gives 95 % intervals of the teacher's gain, of a variant's share of it (the mean
of its seeds' scores, as the table's row), and of how far that mean lies from the issue's 70 % target, in the
metric's own units. The intervals are about the test records only: seed-to-seed spread is the table's ± sd.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

TARGET_SHARE = 0.70  # issue 30: a student keeps >= 70 % of the teacher's gain
RESAMPLES, SEED = 1000, 0


def record_outcomes(dataset: str, bundle: Path, test: Path, overrides: list[str]) -> np.ndarray:
    """Per test record: ``[n, 5]`` entity counts (right, predicted, gold, tokens right, tokens) for NCBI, as
    ``entity_scores`` reads them; ``[n, 1]`` right (1) or wrong (0) for PhraseBank."""
    import verticals
    from verticals.operate.compare import entity_counts

    task = verticals.load(bundle, overrides=overrides or None).task
    records = task.read(test)
    predictions = task.predict(records)
    if dataset == "phrasebank":
        return np.array([[float(p.label == r.label)] for r, p in zip(records, predictions, strict=True)])
    return np.array([entity_counts(r.tags, p.tags) for r, p in zip(records, predictions, strict=True)],
                    dtype=np.int64)


def main_metric(dataset: str, outcomes: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``[rows]``: accuracy (PhraseBank) or strict entity F1 (NCBI) of the records each row of ``idx`` selects."""
    from verticals.metrics.significance import entity_scores

    if dataset == "phrasebank":
        return outcomes[idx, 0].mean(axis=1)
    return entity_scores(outcomes, idx)[:, 2]


def share_intervals(dataset: str, minilm: np.ndarray, teacher: np.ndarray, students: list[np.ndarray],
                    resamples: int = RESAMPLES, seed: int = SEED) -> dict[str, Any]:
    """The teacher's gain, the students' share of it (mean over ``students``, one array per seed) and the mean's
    distance to 70 % of the gain, each with its 95 % percentile interval over paired resamples of the records.
    A resample where the teacher gains nothing has no share (left out of that interval, counted in
    ``no_gain``); the distance to the target is defined in every resample."""
    from verticals.metrics.significance import paired_bootstrap, percentile_interval

    n = len(minilm)
    if any(len(o) != n for o in (teacher, *students)):
        raise ValueError("every bundle must be scored on the same test records")

    def statistic(idx: np.ndarray) -> np.ndarray:
        m, t = main_metric(dataset, minilm, idx), main_metric(dataset, teacher, idx)
        s = np.mean([main_metric(dataset, o, idx) for o in students], axis=0)
        gain = t - m
        share = np.full_like(gain, np.nan)
        np.divide(s - m, gain, out=share, where=gain > 0)
        return np.stack([gain, share, (s - m) - TARGET_SHARE * gain], axis=1)

    full = statistic(np.arange(n)[None, :])[0]
    samples = paired_bootstrap(statistic, n, resamples, seed)
    return {"gain": full[0], "gain_ci": percentile_interval(samples[:, 0]),
            "share": full[1], "share_ci": percentile_interval(samples[:, 1]),
            "to_target": full[2], "to_target_ci": percentile_interval(samples[:, 2]),
            "no_gain": int(np.count_nonzero(~(samples[:, 0] > 0))), "resamples": resamples}


def print_intervals(dataset: str, work: Path, rows: list[dict[str, Any]], test: Path, overrides: list[str]) -> None:
    """The table of :func:`share_intervals` for every student variant in ``rows`` (unmerged, one per seed
    folder; ``--table`` has refused a folder without one), against the work folder's MiniLM and (first) teacher."""
    scale = 1.0 if dataset == "phrasebank" else 100.0
    unit = "accuracy" if dataset == "phrasebank" else "F1 points"
    cache: dict[str, np.ndarray] = {}

    def outcomes(folder: str) -> np.ndarray:
        """Scored once per bundle: kept as DIR/<folder>.outcomes-<digest>.npy, so a rerun scores new bundles only."""
        from verticals.bundles.bundle import digest

        if folder not in cache:
            saved = work / f"{folder}.outcomes-{digest(work / folder)[:16]}.npy"
            if saved.is_file():
                cache[folder] = np.load(saved, allow_pickle=False)
            else:
                print(f"[{folder}] scoring every test record", flush=True)
                cache[folder] = record_outcomes(dataset, work / folder, test, overrides)
                partial = saved.with_name(saved.name + ".partial")  # a killed run leaves no truncated .npy
                with open(partial, "wb") as handle:
                    np.save(handle, cache[folder], allow_pickle=False)
                os.replace(partial, saved)
        return cache[folder]

    variants: dict[str, list[str]] = {}
    for row in rows:
        if row["stage"] == "distilled":
            variants.setdefault(row["name"], []).append(row["folder"])
    minilm, teacher = outcomes("minilm"), outcomes("teacher")
    results = {name: share_intervals(dataset, minilm, teacher, [outcomes(f) for f in folders])
               for name, folders in variants.items()}
    first = next(iter(results.values()))  # the gain is the same resamples of the same two bundles in every result
    gain, (gain_low, gain_high) = scale * first["gain"], (scale * v for v in first["gain_ci"])
    print(f"\n95 % intervals over the {len(minilm)} test records (paired bootstrap, {RESAMPLES} resamples, seed {SEED};"
          f" seeds' spread not included): the teacher's gain over the MiniLM {gain:+.2f} [{gain_low:+.2f}, "
          f"{gain_high:+.2f}] {unit}" + (f"; {first['no_gain']} resamples without a gain have no share"
                                         if first["no_gain"] else ""))
    print(f"| student variant | seeds | share of the teacher's gain | 95 % interval | mean minus 70 % of the gain, "
          f"{unit} [95 %] |")
    print("|---|---|---|---|---|")
    for name, result in results.items():
        low, high = result["share_ci"]
        to_low, to_high = (scale * v for v in result["to_target_ci"])
        print(f"| {name} | {len(variants[name])} | {100 * result['share']:.0f} % | [{100 * low:.0f} %, "
              f"{100 * high:.0f} %] | {scale * result['to_target']:+.2f} [{to_low:+.2f}, {to_high:+.2f}] |")
