"""Compare two bundles of one task on the same labelled records: ``verticals compare OLD NEW --data TEST``.

What it reports: the task's own metrics for each bundle (``task.score``, the numbers ``evaluate`` prints)
with 95% intervals -- Wilson for accuracy, percentile bootstrap otherwise -- and the paired difference
NEW - OLD with its bootstrap interval; per-label F1 deltas; McNemar's test on the records each bundle gets
right (tasks with an accuracy); the records whose decision changed; and the per-record latency of each.

The verdict (the exit status a CI job gates a promotion on) concerns the task's primary metric only:
NEW is **worse** when the one-sided test of "NEW worse than OLD by more than ``margin``" rejects at
``alpha``, i.e. when OLD's advantage is larger than the noise of this test set explains. The test is
McNemar's exact one-sided test when the primary metric is accuracy and the margin is 0, and otherwise the
paired bootstrap (:func:`verticals.metrics.significance.p_worse`). Worse: exit 3; not worse: exit 0; bad
input (different tasks or labels, unreadable data): exit 2. "Not worse" is not "better": a small test
set can hide a real loss; the intervals say how large a loss would go unnoticed.

Resampling is seeded (``seed``, default 0) and paired: both bundles are scored on the same resampled rows.
Metrics with a vectorised definition (accuracy, macro/weighted F1/precision/recall, entity P/R/F1, token
accuracy) are resampled in numpy after checking that they reproduce the task's own value on the full data;
any other metric of the task (e.g. customer service's oos_f1, fraud's auprc) is resampled by calling the
task's ``score`` on each resample, which is exact but slower.
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, Field

from ..errors import ConfigError, DataError
from ..metrics import significance as sig
from ..predictor import Predictor

EXIT_NOT_WORSE = 0
EXIT_WORSE = 3
LABEL_FIELDS = ("label", "intent")  # what a prediction calls its decision (as verticals.delivery.report reads it)
LATENCY_RECORDS = 50


class MetricRow(BaseModel):
    name: str
    primary: bool = False
    old: float | None
    new: float | None
    old_ci: tuple[float, float] | None = Field(default=None, description="95% interval of OLD's value.")
    new_ci: tuple[float, float] | None = None
    delta: float | None = Field(default=None, description="NEW - OLD.")
    delta_ci: tuple[float, float] | None = Field(default=None, description="Paired bootstrap interval of NEW - OLD.")
    interval: str = Field(default="bootstrap", description="How old_ci/new_ci were computed: 'wilson' or 'bootstrap'.")


class McNemarResult(BaseModel):
    old_only: int = Field(description="Records OLD gets right and NEW wrong.")
    new_only: int = Field(description="Records NEW gets right and OLD wrong.")
    statistic: float = Field(description="Continuity-corrected chi-square, for reference.")
    p_value: float = Field(description="Two-sided exact p-value.")
    p_worse: float = Field(description="One-sided exact p-value of 'NEW is worse'.")


class Verdict(BaseModel):
    metric: str
    test: str = Field(description="'mcnemar-exact' or 'paired-bootstrap'.")
    p_worse: float = Field(description="One-sided p-value of 'NEW worse than OLD by more than margin'.")
    alpha: float
    margin: float
    worse: bool
    exit_code: int
    summary: str


class LabelRow(BaseModel):
    label: str
    support: int
    old_f1: float | None
    new_f1: float | None
    delta: float | None


class ChangedRecord(BaseModel):
    index: int = Field(description="Position in the data, from 0.")
    line: int | None = Field(default=None, description="Line (or row) in the data file.")
    input: str
    gold: Any = None
    old: Any
    new: Any
    old_correct: bool | None = None
    new_correct: bool | None = None


class Latency(BaseModel):
    records: int = Field(description="Records predicted one at a time, OLD and NEW interleaved.")
    old_p50_ms: float
    new_p50_ms: float
    old_p90_ms: float
    new_p90_ms: float
    ratio_p50: float = Field(description="NEW p50 / OLD p50, measured in the same run.")
    old_batch_records_per_s: float
    new_batch_records_per_s: float


class Comparison(BaseModel):
    task: str
    data: str
    n: int
    old: dict[str, str]
    new: dict[str, str]
    primary_metric: str
    metrics: list[MetricRow]
    mcnemar: McNemarResult | None = None
    verdict: Verdict
    per_label: list[LabelRow]
    changed_count: int
    changed: list[ChangedRecord] = Field(description="Every record whose decision changed (the CLI prints the "
                                                     "first --max-changed and writes all with --changed).")
    latency: Latency | None = None
    resamples: int
    seed: int
    confidence: float = 0.95
    notes: list[str] = Field(default_factory=list)


@dataclass
class _Side:
    predictor: Predictor[Any]
    records: list[Any]
    predictions: list[Any]
    metrics: dict[str, float]
    per_label: dict[str, dict[str, float]]
    batch_seconds: float


def _load_pair(old: str | Path, new: str | Path, engine: str,
               overrides: Sequence[str] | None) -> tuple[Predictor[Any], Predictor[Any]]:
    from ..api import load

    a, b = load(old, engine=engine, overrides=overrides), load(new, engine=engine, overrides=overrides)
    if a.info.task != b.info.task:
        raise ConfigError(f"OLD {old} is task '{a.info.task}' and NEW {new} is task '{b.info.task}'; compare needs "
                          f"two bundles of the same task (evaluate each with `verticals evaluate`)")
    if set(a.labels) != set(b.labels):
        only_old, only_new = sorted(set(a.labels) - set(b.labels)), sorted(set(b.labels) - set(a.labels))
        raise ConfigError(f"OLD {old} and NEW {new} have different label sets (only in OLD: "
                          f"{', '.join(only_old) or 'none'}; only in NEW: {', '.join(only_new) or 'none'}); compare "
                          f"needs the same labels: retrain NEW with OLD's labels, or evaluate each on its own")
    return a, b


def _side(predictor: Predictor[Any], data: str | Path) -> _Side:
    task = predictor.task
    records = task.read(data)
    task.check_split(records, "evaluation", data)
    task.predict(records[:1])  # warm-up, so the batch time below is not the first call's lazy set-up
    start = time.perf_counter()
    predictions = task.predict(records)
    seconds = time.perf_counter() - start
    evaluation = task.score(records, predictions)
    return _Side(predictor, records, predictions, dict(evaluation.metrics), dict(evaluation.per_label), seconds)


def _record_text(record: Any, label_field: str | None) -> str:
    if isinstance(getattr(record, "text", None), str):
        return str(record.text)
    if isinstance(getattr(record, "tokens", None), list):
        return " ".join(record.tokens)
    return json.dumps(record.model_dump(exclude={label_field} if label_field else None), default=str)


def _entities(tokens: Sequence[str], tags: Sequence[str]) -> set[tuple[str, int, int]]:
    """Exact-match entity spans (type, first token, last token) as seqeval/conlleval read BIO tags."""
    from seqeval.metrics.sequence_labeling import get_entities

    return {(t, s, e) for t, s, e in get_entities(list(tags))}


def _entity_names(tokens: Sequence[str], spans: set[tuple[str, int, int]]) -> list[str]:
    return [f"{t}: {' '.join(tokens[s:e + 1])}" for t, s, e in sorted(spans, key=lambda x: (x[1], x[0]))]


def entity_counts(gold_tags: Sequence[str], predicted_tags: Sequence[str],
                  gold: set[tuple[str, int, int]] | None = None,
                  found: set[tuple[str, int, int]] | None = None) -> tuple[int, int, int, int, int]:
    """One sentence's row of :func:`verticals.metrics.significance.entity_scores`' counts: entities right,
    predicted, gold (exact spans, as seqeval reads BIO tags); tokens tagged right, tokens. ``gold``/``found``:
    the spans when the caller has them already."""
    gold = _entities((), gold_tags) if gold is None else gold
    found = _entities((), predicted_tags) if found is None else found
    right = sum(t == p for t, p in zip(gold_tags, predicted_tags))
    return len(gold & found), len(found), len(gold), right, len(gold_tags)


@dataclass
class _Outcomes:
    """Per-record decisions of both bundles and how the vectorised statistics read them."""

    kind: str  # 'label', 'entities' or 'other'
    changed: list[ChangedRecord]
    old_correct: np.ndarray | None = None
    new_correct: np.ndarray | None = None
    names: tuple[str, ...] = ()
    statistic: Any = None  # (side index 0/1, [rows, n] indices) -> [rows, len(names)]


def _outcomes(a: _Side, b: _Side) -> _Outcomes:
    task = a.predictor.task
    label_field = task.label_field
    first, pred = a.records[0], a.predictions[0]
    if isinstance(getattr(first, "tags", None), list) and isinstance(getattr(pred, "tags", None), list):
        return _entity_outcomes(a, b)
    field = next((f for f in LABEL_FIELDS if getattr(pred, f, None) is not None), None)
    if field is None or label_field is None:
        changed = []
        for i, (r, p, q) in enumerate(zip(a.records, a.predictions, b.predictions)):
            old, new = _stable(p.model_dump()), _stable(q.model_dump())
            if old != new:
                changed.append(ChangedRecord(index=i, line=r.origin()[1] if hasattr(r, "origin") else None,
                                             input=_record_text(r, label_field), old=old, new=new))
        return _Outcomes("other", changed)
    gold = [str(getattr(r, label_field)) for r in a.records]
    old = [str(getattr(p, field)) for p in a.predictions]
    new = [str(getattr(p, field)) for p in b.predictions]
    universe = sorted(set(gold) | set(old) | set(new) | set(a.predictor.labels))
    code = {label: i for i, label in enumerate(universe)}
    y, codes = np.array([code[g] for g in gold]), (np.array([code[o] for o in old]), np.array([code[o] for o in new]))
    counted = np.ones(len(universe), dtype=bool)
    old_correct, new_correct = codes[0] == y, codes[1] == y
    changed = [ChangedRecord(index=i, line=r.origin()[1], input=_record_text(r, label_field), gold=g, old=o, new=w,
                             old_correct=o == g, new_correct=w == g)
               for i, (r, g, o, w) in enumerate(zip(a.records, gold, old, new)) if o != w]
    return _Outcomes("label", changed, old_correct, new_correct, sig.LABEL_METRICS,
                     lambda side, idx: sig.label_scores(y, codes[side], counted, idx))


def _entity_outcomes(a: _Side, b: _Side) -> _Outcomes:
    counts = np.zeros((2, len(a.records), 5), dtype=np.int64)
    correct = np.zeros((2, len(a.records)), dtype=bool)
    changed = []
    for i, record in enumerate(a.records):
        gold = _entities(record.tokens, record.tags)
        spans = []
        for side, prediction in enumerate((a.predictions[i], b.predictions[i])):
            found = _entities(record.tokens, prediction.tags)
            counts[side, i] = entity_counts(record.tags, prediction.tags, gold, found)
            correct[side, i] = found == gold
            spans.append(found)
        if spans[0] != spans[1]:
            changed.append(ChangedRecord(
                index=i, line=record.origin()[1], input=" ".join(record.tokens),
                gold=_entity_names(record.tokens, gold), old=_entity_names(record.tokens, spans[0]),
                new=_entity_names(record.tokens, spans[1]), old_correct=bool(correct[0, i]),
                new_correct=bool(correct[1, i])))
    return _Outcomes("entities", changed, correct[0], correct[1], sig.ENTITY_METRICS,
                     lambda side, idx: sig.entity_scores(counts[side], idx))


def _stable(value: Any) -> Any:
    """A prediction without its float scores: what it decided, not how sure it was."""
    if isinstance(value, dict):
        return {k: _stable(v) for k, v in value.items() if not isinstance(v, float)}
    if isinstance(value, list):
        return [_stable(v) for v in value]
    return value


def _bootstrap(a: _Side, b: _Side, outcomes: _Outcomes, resamples: int, seed: int,
               notes: list[str]) -> dict[str, np.ndarray]:
    """name -> ``[resamples, 2]`` resampled values (OLD, NEW) of every metric either bundle reports."""
    n = len(a.records)
    names = list(dict.fromkeys([*a.metrics, *b.metrics]))
    fast: list[str] = []
    if outcomes.statistic is not None:  # use a vectorised definition only where it reproduces the task's value
        everything = np.arange(n)[None, :]
        full = [outcomes.statistic(side, everything)[0] for side in (0, 1)]
        for j, name in enumerate(outcomes.names):
            if name in names and all(abs(full[s][j] - side.metrics.get(name, np.nan)) <= 1e-9
                                     for s, side in enumerate((a, b))):
                fast.append(name)
    slow = [name for name in names if name not in fast]
    columns = [outcomes.names.index(name) for name in fast]
    out: dict[str, list[np.ndarray]] = {name: [] for name in names}
    for idx in sig.bootstrap_indices(n, resamples, seed):
        if fast:
            values = [outcomes.statistic(side, idx)[:, columns] for side in (0, 1)]
            for j, name in enumerate(fast):
                out[name].append(np.stack([values[0][:, j], values[1][:, j]], axis=1))
        for row in idx if slow else ():
            scored = [side.predictor.task.score([side.records[i] for i in row], [side.predictions[i] for i in row])
                      .metrics for side in (a, b)]
            for name in slow:
                out[name].append(np.array([[scored[0].get(name, np.nan), scored[1].get(name, np.nan)]]))
    if slow:
        notes.append(f"resampled through the task's own score(): {', '.join(slow)}")
    return {name: np.concatenate(parts) for name, parts in out.items() if parts}


def _latency(a: _Side, b: _Side, records: int) -> Latency | None:
    """Per-record latency: one record per call, OLD and NEW alternating which goes first, after a warm-up,
    so both see the same machine load; plus each bundle's batch throughput on the whole data."""
    n = len(a.records)
    if records <= 0 or n == 0:
        return None
    picks = np.unique(np.linspace(0, n - 1, min(records, n)).astype(int))
    times: list[list[float]] = [[], []]
    sides = (a, b)
    for side in sides:
        side.predictor.task.predict([side.records[int(picks[0])]])  # warm-up: lazy init, first-call costs
    for k, i in enumerate(picks):
        for s in ((0, 1) if k % 2 == 0 else (1, 0)):
            start = time.perf_counter()
            sides[s].predictor.task.predict([sides[s].records[int(i)]])
            times[s].append((time.perf_counter() - start) * 1000.0)
    p50 = [float(np.percentile(t, 50)) for t in times]
    p90 = [float(np.percentile(t, 90)) for t in times]
    return Latency(records=len(picks), old_p50_ms=p50[0], new_p50_ms=p50[1], old_p90_ms=p90[0], new_p90_ms=p90[1],
                   ratio_p50=p50[1] / p50[0] if p50[0] > 0 else float("nan"),
                   old_batch_records_per_s=n / a.batch_seconds if a.batch_seconds > 0 else float("nan"),
                   new_batch_records_per_s=n / b.batch_seconds if b.batch_seconds > 0 else float("nan"))


def _check_same_records(a: _Side, b: _Side, data: str | Path) -> None:
    if len(a.records) != len(b.records):
        raise DataError(f"OLD reads {len(a.records)} records and NEW {len(b.records)}; compare needs both to read "
                        f"the same records (set the same --set data.* options for both)", path=str(data))
    for i, (r, s) in enumerate(zip(a.records, b.records)):
        if r.model_dump() != s.model_dump():
            line = r.origin()[1] if hasattr(r, "origin") else i
            raise DataError("OLD and NEW read this record differently (their bundles were trained with different "
                            "data.* column options); pass --set data.OPTION=VALUE so both read the same columns",
                            path=str(data), line=line)


def compare(old: str | Path, new: str | Path, data: str | Path, *, overrides: Sequence[str] | None = None,
            engine: str = "torch", resamples: int = sig.DEFAULT_RESAMPLES, seed: int = sig.DEFAULT_SEED,
            alpha: float = 0.05, margin: float = 0.0, latency_records: int = LATENCY_RECORDS) -> Comparison:
    """Compare bundle ``new`` with bundle ``old`` on the labelled ``data`` (see the module docstring)."""
    from ..delivery.card import small_sample_note

    if not 0.0 < alpha < 0.5:
        raise ConfigError(f"--alpha {alpha}: expected a significance level between 0 and 0.5, e.g. 0.05")
    if not 0.0 <= margin < 1.0 or resamples < 100 or latency_records < 0:
        raise ConfigError(f"--margin {margin} / --resamples {resamples} / --latency-records {latency_records}: "
                          f"expected 0 <= margin < 1 (in the metric's units), at least 100 resamples, a count >= 0")
    pa, pb = _load_pair(old, new, engine, overrides)
    a, b = _side(pa, data), _side(pb, data)
    _check_same_records(a, b, data)
    n, task = len(a.records), pa.task
    notes: list[str] = []
    outcomes = _outcomes(a, b)
    samples = _bootstrap(a, b, outcomes, resamples, seed, notes)
    primary, sign = task.primary_metric, 1.0 if task.greater_is_better else -1.0
    test = None
    if outcomes.old_correct is not None and outcomes.new_correct is not None and outcomes.kind == "label" \
            and "accuracy" in a.metrics:
        m = sig.mcnemar(outcomes.old_correct, outcomes.new_correct)
        test = McNemarResult(old_only=m.old_only, new_only=m.new_only, statistic=m.statistic, p_value=m.p_value,
                             p_worse=m.p_worse)
    rows = []
    for name, values in samples.items():
        old_v, new_v = a.metrics.get(name), b.metrics.get(name)
        row = MetricRow(name=name, primary=name == primary, old=old_v, new=new_v,
                        old_ci=sig.percentile_interval(values[:, 0]), new_ci=sig.percentile_interval(values[:, 1]),
                        delta=new_v - old_v if old_v is not None and new_v is not None else None,
                        delta_ci=sig.percentile_interval(values[:, 1] - values[:, 0]))
        if name == "accuracy" and test is not None and outcomes.old_correct is not None \
                and outcomes.new_correct is not None:
            row.interval = "wilson"
            row.old_ci = sig.wilson_interval(int(outcomes.old_correct.sum()), n)
            row.new_ci = sig.wilson_interval(int(outcomes.new_correct.sum()), n)
        undefined = int(np.count_nonzero(~np.isfinite(values).all(axis=1)))
        if undefined:
            notes.append(f"{name} is undefined in {undefined} of {resamples} resamples (left out of its intervals)")
        rows.append(row)
    rows.sort(key=lambda r: not r.primary)
    if primary not in samples:
        raise ConfigError(f"task '{pa.info.task}' reports no '{primary}' (its primary metric) on {data}; "
                          f"compare decides on it: use more or other test records")
    if primary == "accuracy" and margin == 0.0 and test is not None:
        method, p = "mcnemar-exact", test.p_worse
    else:
        method = "paired-bootstrap"
        p = sig.p_worse(sign * (samples[primary][:, 1] - samples[primary][:, 0]), margin)
    worse = p < alpha
    delta = next(r.delta for r in rows if r.name == primary)
    how = "McNemar exact one-sided" if method == "mcnemar-exact" else f"paired bootstrap ({resamples} resamples)"
    summary = (f"NEW is {'WORSE than' if worse else 'not worse than'} OLD on {primary} "
               f"(delta {delta:+.4f}{f', margin {margin:g}' if margin else ''}; {how} p = {p:.4g} "
               f"{'<' if worse else '>='} alpha {alpha:g})")
    verdict = Verdict(metric=primary, test=method, p_worse=p, alpha=alpha, margin=margin, worse=worse,
                      exit_code=EXIT_WORSE if worse else EXIT_NOT_WORSE, summary=summary)
    per_label = []
    for label in dict.fromkeys([*a.per_label, *b.per_label]):
        x, y = a.per_label.get(label, {}), b.per_label.get(label, {})
        old_f1, new_f1 = x.get("f1"), y.get("f1")
        per_label.append(LabelRow(label=label, support=int(x.get("support", y.get("support", 0))), old_f1=old_f1,
                                  new_f1=new_f1, delta=None if old_f1 is None or new_f1 is None else new_f1 - old_f1))
    per_label.sort(key=lambda r: -abs(r.delta or 0.0))
    small = small_sample_note(n)
    if small:
        notes.insert(0, small)
    return Comparison(
        task=pa.info.task, data=str(data), n=n, primary_metric=primary, metrics=rows, mcnemar=test,
        old={"path": str(old), "digest": pa.digest}, new={"path": str(new), "digest": pb.digest},  # as loaded
        verdict=verdict, per_label=per_label, changed_count=len(outcomes.changed), changed=outcomes.changed,
        latency=_latency(a, b, latency_records), resamples=resamples, seed=seed, notes=notes)
