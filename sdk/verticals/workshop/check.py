"""``verticals check``: what is wrong with the data before a model is trained on it.

Cheap checks (:mod:`.cheap`; no model, ``verticals train`` runs them and warns): records the task's reader refuses, odd
records, exact duplicates, the same text with conflicting labels, exact leakage across splits, label
imbalance and rare labels, inputs the backbone's ``max_length`` truncates, BIO tag sanity. Thorough checks
(:mod:`.similarity`): near duplicates and near leakage by embedding cosine, and likely label errors found by
cleanlab. Text classification (and every pack built on it) gets all of them; token classification gets
duplicates, conflicts, leakage, entity-type balance, truncation and tag sanity (label errors need per-token
out-of-fold probabilities from a tagger, which a linear model on sentence embeddings cannot give).

Two texts are "the same" after Unicode NFKC, case folding and whitespace collapsing.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..errors import ConfigError, DataError
from ..tasks.data_checks import cheap_checks, items_of, task_kind
from ..tasks.data_findings import (  # noqa: F401 - DataCheckWarning and Suspect are part of this module's API
    CheckReport,
    DataCheckWarning,
    Finding,
    Suspect,
)
from .similarity import NEAR_DUPLICATE_COSINE

SPLITS = ("train", "validation", "test")
SUSPECT_COLUMNS = ["split", "where", "check", "label", "suggested_label", "score", "text"]


def read_tolerant(model: Any, data: Any, split: str) -> tuple[list[Any], list[str]]:
    """Every record the task's own reader accepts, and one line per record it refuses (``train`` stops at
    the first; a check lists them all). A file that cannot be read at all still raises."""
    from ..data.records import records_from, source_name

    raws = records_from(data, model.iter_raw, keep=model.Record)
    records, refused = [], []
    for raw in raws:
        try:
            records.append(model.record_of(raw, require_labels=True))
        except DataError as exc:
            refused.append(str(exc))
    if not records:
        raise DataError(f"no valid {split} records" + (f" (first problem: {refused[0]})" if refused else ""),
                        path=source_name(data))
    return records, refused


# ---- the command --------------------------------------------------------------------------------------
def check_data(task: str, train: Any, *, validation: Any = None, test: Any = None,
               config: str | Path | dict[str, Any] | None = None,
               overrides: Sequence[str] | dict[str, Any] | None = None, backbone: str | None = None,
               thorough: bool = True, near_threshold: float = NEAR_DUPLICATE_COSINE) -> CheckReport:
    """Check the data of ``task`` (read by the task's own reader, so every pack's format and ``data.*``
    option applies) and return every finding; ``thorough=False`` runs only the cheap checks that
    ``verticals train`` runs (no embeddings, no cleanlab)."""
    from ..api import build_task
    from ..data.records import source_name

    if not 0.0 < near_threshold <= 1.0:
        raise ConfigError(f"near-duplicate threshold {near_threshold} is out of range; expected a cosine in (0, 1]")
    model, _, _ = build_task(task, config, overrides, backbone)
    if task_kind(model) is None:
        raise ConfigError(f"verticals check works on text and token classification tasks (and the packs built on "
                          f"them); '{task}' is task type {model.name}")
    splits, refused, info = {}, {}, {}
    for split, data in zip(SPLITS, (train, validation, test)):
        if data is None:
            continue
        records, refused[split] = read_tolerant(model, data, split)
        splits[split] = items_of(model, split, records)
        info[split] = {"source": source_name(data), "records": len(records), "refused": len(refused[split])}
    findings, suspects = cheap_checks(model, splits, refused)
    training = model.config.training
    if thorough:
        from .similarity import check_label_issues, check_near, embed

        everything = [item for items in splits.values() for item in items]
        vectors = embed(training.backbone, [item.text for item in everything], max_length=training.max_length)
        by_split, start = {}, 0
        for split, items in splits.items():
            by_split[split], start = vectors[start:start + len(items)], start + len(items)
        findings.extend(check_near(splits, by_split, near_threshold))
        if task_kind(model) == "text":
            finding, flagged = check_label_issues(everything, vectors, seed=training.seed)
            findings.append(finding)
            suspects = flagged + suspects
        else:
            findings.append(Finding(check="label_issues", split="all", status="skipped",
                                    summary="token classification: label errors need per-token out-of-fold "
                                            "probabilities from a tagger; not run"))
    else:
        findings.append(Finding(check="embedding_checks", split="all", status="skipped",
                                summary="near_duplicates, near_leakage, label_issues: not run (--cheap)"))
    return CheckReport(task=model.task_name, backbone=str(training.backbone), max_length=training.max_length,
                       near_threshold=near_threshold, splits=info, findings=findings, suspects=suspects)


def format_report(report: CheckReport, *, examples: int = 3) -> str:
    """The readable table ``verticals check`` prints."""
    sources = ", ".join(f"{split} {v['source']} ({v['records']} records)" for split, v in report.splits.items())
    lines = [f"{report.task}: {sources}; backbone {report.backbone}, max_length {report.max_length}", "",
             f"{'check':<19} {'split':<20} {'status':<7} {'count':>6}  finding"]
    for finding in report.findings:
        lines.append(f"{finding.check:<19} {finding.split:<20} {finding.status:<7} {finding.count:>6}  "
                     f"{finding.summary}")
        lines.extend(f"{'':<19}   - {example}" for example in finding.examples[:examples])
    warned = len(report.warnings())
    lines += ["", f"{warned} checks warn; {len(report.suspects)} suspect records"
              + (" (--suspects FILE writes them with a suggested label)" if report.suspects else "")]
    return "\n".join(lines)


def check_suspects_output(path: str | Path, overwrite: bool) -> None:
    """Before any work: the suspects CSV follows the output rule (replaces only a suspects file Verticals wrote,
    unchanged since, with --overwrite)."""
    from ..bundles.outputs import check_file_replaceable

    check_file_replaceable(path, "suspects", overwrite)


def write_suspects(report: CheckReport, path: str | Path, *, overwrite: bool = False) -> Path:
    """Write the suspect records as CSV (atomically), most likely label errors first."""
    import csv

    from ..bundles.bundle import atomic_file

    with atomic_file(path, kind="suspects", overwrite=overwrite) as handle:
        writer = csv.DictWriter(handle, fieldnames=SUSPECT_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for suspect in report.suspects:
            writer.writerow(suspect.model_dump())
    return Path(path)
