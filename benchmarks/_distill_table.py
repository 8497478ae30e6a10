"""The table of ``benchmarks/teacher_student.py``: onnx latency, students merged over their seeds, and the
markdown table with each student's share of the teacher's gain (kept apart so the benchmark stays readable)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path
from typing import Any

MAIN_METRIC = {"phrasebank": "accuracy", "ncbi": "f1"}
WARMUP, QUERIES = 10, 100


def p50_onnx_ms(path: Path, queries: list[str]) -> float | str:
    """Median single-query latency on the onnx engine, after a warm-up; the reason when it cannot run."""
    import verticals

    try:
        predictor = verticals.load(path, engine="onnx")
    except Exception as exc:  # noqa: BLE001 -- reported in the table cell instead of ending the benchmark
        return f"onnx unavailable: {type(exc).__name__}: {str(exc).splitlines()[0][:80]}"
    for text in queries[:WARMUP]:
        predictor.predict_one(text)
    times = []
    for i in range(QUERIES):
        start = time.perf_counter()
        predictor.predict_one(queries[i % len(queries)])
        times.append(time.perf_counter() - start)
    return 1000 * statistics.median(times)


def merge_seeds(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The student rows of one variant over several seeds become one row of means, with their standard
    deviations beside; the other rows are kept as they are."""
    merged_rows = [row for row in rows if row["stage"] != "distilled"]
    variants: dict[str, list[dict[str, Any]]] = {}
    for row in rows:
        if row["stage"] == "distilled":
            variants.setdefault(row["name"], []).append(row)
    for students in variants.values():
        if len(students) < 2:
            merged_rows += students
            continue
        merged = dict(students[0])
        keys = [k for k, v in students[0]["test"].items() if isinstance(v, (int, float))]
        merged["test"] = {k: statistics.mean(r["test"][k] for r in students) for k in keys}
        merged["test_sd"] = {k: statistics.stdev(r["test"][k] for r in students) for k in keys}
        merged["validation"] = statistics.mean(r["validation"] for r in students)
        merged["validation_sd"] = statistics.stdev(r["validation"] for r in students)
        merged["seconds"] = None if any(r["seconds"] is None for r in students) else \
            statistics.mean(r["seconds"] for r in students)
        merged["resumed"] = any(r.get("resumed") for r in students)
        latencies = [r["latency"] for r in students if not isinstance(r["latency"], str)]
        merged["latency"] = statistics.median(latencies) if latencies else students[0]["latency"]
        merged["seeds"] = len(students)
        merged_rows.append(merged)
    return merged_rows


def metric_cells(dataset: str, metrics: dict[str, float], sd: dict[str, float] | None = None) -> list[str]:
    keys = ("accuracy", "macro_f1") if dataset == "phrasebank" else ("precision", "recall", "f1")
    return [fmt_value(dataset, metrics[k]) + (f" ± {fmt_value(dataset, sd[k])}" if sd else "") for k in keys]


def fmt_value(dataset: str, value: float) -> str:
    return f"{value:.4f}" if dataset == "phrasebank" else f"{100 * value:.2f}"


def print_table(dataset: str, rows: list[dict[str, Any]]) -> None:
    """The markdown table of ``rows`` (students already merged over seeds), then each student's share of the
    teacher's gain over the MiniLM fine-tune on the test split's main metric."""
    primary = MAIN_METRIC[dataset]
    heads = ["test accuracy", "test macro-F1"] if dataset == "phrasebank" else ["test P", "test R", "test F1"]
    validation = "validation accuracy" if dataset == "phrasebank" else "devel F1"
    by_stage = {row["stage"]: row["test"][primary] for row in rows if row["stage"] in ("minilm", "teacher")}
    gain = by_stage["teacher"] - by_stage["minilm"] if len(by_stage) == 2 else 0.0
    ensembles = [row["test"][primary] for row in rows if row["stage"] == "ensemble"]
    ensemble_gain = ensembles[0] - by_stage["minilm"] if ensembles and "minilm" in by_stage else 0.0
    print(f"| model | {' | '.join(heads)} | {validation} | share of the teacher's gain | training s | epochs run "
          f"| p50 onnx ms |")
    print("|---|" + "---|" * (len(heads) + 5))
    for row in rows:
        seconds = "n/a (no timing file)" if row["seconds"] is None else f"{row['seconds']:.0f}"
        seconds += " (resumed part only)" if row.get("resumed") else ""
        epochs = "n/a" if row["epochs"] is None else f"{row['epochs']:g}"
        latency = row["latency"] if isinstance(row["latency"], str) else f"{row['latency']:.1f}"
        name = row["name"] + (f", mean ± sd of {row['seeds']} seeds" if row.get("seeds") else "")
        validation_cell = fmt_value(dataset, row["validation"]) + (
            f" ± {fmt_value(dataset, row['validation_sd'])}" if "validation_sd" in row else "")
        kept = (f"{100 * (row['test'][primary] - by_stage['minilm']) / gain:.0f} %"
                if row["stage"] == "distilled" and gain > 0 else "")
        if kept and ensemble_gain > 0 and "ensemble of" in row["name"]:  # a student of the ensemble
            kept += f" ({100 * (row['test'][primary] - by_stage['minilm']) / ensemble_gain:.0f} % of the ensemble's)"
        print(f"| {name} | {' | '.join(metric_cells(dataset, row['test'], row.get('test_sd')))} | "
              f"{validation_cell} | {kept} | {seconds} | {epochs} | {latency} |")
    if len(by_stage) == 2 and gain <= 0:
        print(f"\nthe teacher did not gain over the MiniLM fine-tune on test {primary} "
              f"({fmt_value(dataset, by_stage['teacher'])} vs {fmt_value(dataset, by_stage['minilm'])})")
