"""How a :class:`~verticals.operate.compare.Comparison` is shown: console text, the changed records as
JSON Lines, and an offline HTML page in the style of ``verticals report``.

The page goes to a directory (``index.html``, ``comparison.json`` and the ownership marker of
:mod:`verticals.bundles.outputs`, written like a report) or, for a path ending in ``.html``, to one file with the
single-file proof beside it (``.NAME.verticals-output.json``); the changed records file follows the same
rule. ``--overwrite`` replaces either only while it is still exactly what Verticals wrote, so a page the
user edited, or any file Verticals did not write, is never replaced.
"""

from __future__ import annotations

import html
import json
import math
from pathlib import Path
from typing import Any

from .._version import __version__
from ..bundles.bundle import atomic_directory, atomic_file
from .compare import ChangedRecord, Comparison

PAGE_KIND = "comparison-page"
CHANGED_KIND = "changed-records"


def _num(value: float | None, digits: int = 4, signed: bool = False) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return f"{value:+.{digits}f}" if signed else f"{value:.{digits}f}"


def _ci(ci: tuple[float, float] | None) -> str:
    return f"[{_num(ci[0], 3)}, {_num(ci[1], 3)}]" if ci else ""


def _decision(value: Any) -> str:
    if isinstance(value, list):
        return "; ".join(map(str, value)) or "(none)"
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, default=str)


def _mark(correct: bool | None) -> str:
    return "" if correct is None else (" (right)" if correct else " (wrong)")


def changed_line(c: ChangedRecord, width: int = 70) -> str:
    text = c.input if len(c.input) <= width else c.input[:width - 1] + "…"
    where = f"line {c.line}" if c.line is not None else f"record {c.index}"
    gold = f" gold {_decision(c.gold)} |" if c.gold is not None else ""
    return (f"{where}: {text!r}\n      {gold} OLD {_decision(c.old)}{_mark(c.old_correct)} -> "
            f"NEW {_decision(c.new)}{_mark(c.new_correct)}")


def format_text(c: Comparison, max_changed: int = 10) -> str:
    """What ``verticals compare`` prints without ``--json``."""
    out = [f"compare {c.task} on {c.n} records ({c.data})",
           f"  OLD {c.old['path']} (digest {c.old['digest'][:12]}…)",
           f"  NEW {c.new['path']} (digest {c.new['digest'][:12]}…)",
           f"  {'metric':<22} {'OLD':>7} {'95% interval':<17} {'NEW':>7} {'95% interval':<17} "
           f"{'NEW-OLD':>8} {'95% interval':<17}"]
    for m in c.metrics:
        name = m.name + (" *" if m.primary else "") + (" (W)" if m.interval == "wilson" else "")
        out.append(f"  {name[:22]:<22} {_num(m.old):>7} {_ci(m.old_ci):<17} {_num(m.new):>7} {_ci(m.new_ci):<17} "
                   f"{_num(m.delta, signed=True):>8} {_ci(m.delta_ci):<17}")
    out.append(f"  * primary metric; (W) Wilson interval, others percentile bootstrap ({c.resamples} paired "
               f"resamples, seed {c.seed})")
    if c.mcnemar:
        t = c.mcnemar
        out.append(f"  McNemar: OLD-only right {t.old_only}, NEW-only right {t.new_only}; exact two-sided p = "
                   f"{t.p_value:.4g}, one-sided p(NEW worse) = {t.p_worse:.4g}")
    moved = [r for r in c.per_label if r.delta]
    if moved:
        shown = ", ".join(f"{r.label} {_num(r.delta, 3, signed=True)} (n={r.support})" for r in moved[:8])
        out.append(f"  F1 per label, largest changes: {shown}" + (f" (+{len(moved) - 8} more)" if len(moved) > 8
                                                                  else ""))
    else:
        out.append("  F1 per label: no change")
    out.append(f"  changed decisions: {c.changed_count} of {c.n}"
               + (f" (first {min(max_changed, c.changed_count)}):" if c.changed_count and max_changed else ""))
    out.extend(f"    {changed_line(r)}" for r in c.changed[:max_changed])
    if c.latency:
        lat = c.latency
        out.append(f"  latency per record (p50/p90 over {lat.records} records, one at a time, interleaved): OLD "
                   f"{lat.old_p50_ms:.1f}/{lat.old_p90_ms:.1f} ms, NEW {lat.new_p50_ms:.1f}/{lat.new_p90_ms:.1f} ms "
                   f"(NEW/OLD p50 {lat.ratio_p50:.2f}); batch: OLD {lat.old_batch_records_per_s:.0f}, NEW "
                   f"{lat.new_batch_records_per_s:.0f} records/s")
    out.extend(f"  note: {note}" for note in c.notes)
    out.append(f"  verdict: {c.verdict.summary} -> exit {c.verdict.exit_code}")
    return "\n".join(out)


def check_outputs(changed: str | Path | None, page: str | Path | None, overwrite: bool) -> None:
    """Before any prediction: refuse outputs that exist and are not ours to replace (exit 2)."""
    from ..bundles.outputs import check_file_replaceable, check_replaceable

    if changed:
        check_file_replaceable(changed, CHANGED_KIND, overwrite)
    if page and _is_file(page):
        check_file_replaceable(page, PAGE_KIND, overwrite)
    elif page:
        check_replaceable(page, "comparison", overwrite)


def _is_file(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".html", ".htm")


def write_changed(path: str | Path, c: Comparison, *, overwrite: bool = False) -> None:
    """Every changed record as one JSON object per line, written atomically."""
    with atomic_file(path, kind=CHANGED_KIND, overwrite=overwrite) as handle:
        for record in c.changed:
            handle.write(json.dumps(record.model_dump(), ensure_ascii=False, default=str) + "\n")


def _finite(obj: Any) -> Any:
    """``obj`` with NaN/inf as null: comparison.json is strict JSON (an undefined metric is null)."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {key: _finite(value) for key, value in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(value) for value in obj]
    return obj


def write_page(path: str | Path, c: Comparison, *, overwrite: bool = False) -> Path:
    """Write the HTML page to ``path``: a directory, or one file when the name ends in .html/.htm."""
    path = Path(path)
    page = _html(c)
    if not _is_file(path):
        with atomic_directory(path, overwrite, kind="comparison") as tmp:
            (tmp / "index.html").write_text(page, encoding="utf-8")
            text = json.dumps(_finite(c.model_dump()), indent=2, ensure_ascii=False, default=str, allow_nan=False)
            (tmp / "comparison.json").write_text(text + "\n", encoding="utf-8")
        return path / "index.html"
    with atomic_file(path, kind=PAGE_KIND, overwrite=overwrite) as handle:
        handle.write(page)
    return path


def _forest(c: Comparison) -> str:
    """Inline SVG: each metric's NEW - OLD with its interval around a zero line (no scripts, no CDN)."""
    rows = [m for m in c.metrics if m.delta is not None and m.delta_ci and all(map(math.isfinite, m.delta_ci))]
    if not rows:
        return ""
    reach = max(max(abs(m.delta_ci[0]), abs(m.delta_ci[1]), abs(m.delta or 0)) for m in rows) or 0.01  # type: ignore[index]
    width, left, row_h = 640, 170, 26
    scale = (width - left - 30) / (2 * reach)
    x = lambda v: left + (v + reach) * scale  # noqa: E731 - one formula, used below only
    parts = [f'<line x1="{x(0):.1f}" y1="4" x2="{x(0):.1f}" y2="{len(rows) * row_h + 4}" stroke="#888" '
             f'stroke-dasharray="3 3"/>']
    for i, m in enumerate(rows):
        y = 18 + i * row_h
        low, high = m.delta_ci  # type: ignore[misc]
        colour = "#c0392b" if high < 0 else ("#1e8449" if low > 0 else "#34495e")
        parts.append(f'<text x="4" y="{y + 4}" font-size="12">{html.escape(m.name)}</text>'
                     f'<line x1="{x(low):.1f}" y1="{y}" x2="{x(high):.1f}" y2="{y}" stroke="{colour}" '
                     f'stroke-width="2"/><circle cx="{x(m.delta or 0):.1f}" cy="{y}" r="4" fill="{colour}"/>')
    height = len(rows) * row_h + 24
    parts.append(f'<text x="{x(0):.1f}" y="{height - 4}" font-size="11" text-anchor="middle">0</text>'
                 f'<text x="{left}" y="{height - 4}" font-size="11">{-reach:+.3f}</text>'
                 f'<text x="{width - 30}" y="{height - 4}" font-size="11" text-anchor="end">{reach:+.3f}</text>')
    return (f'<svg role="img" aria-label="NEW minus OLD per metric with 95% intervals" width="{width}" '
            f'height="{height}" viewBox="0 0 {width} {height}">{"".join(parts)}</svg>')


def _test_line(c: Comparison) -> str:
    v = c.verdict
    delta = next((m.delta for m in c.metrics if m.name == v.metric), None)
    how = "McNemar exact one-sided test" if v.test == "mcnemar-exact" else f"paired bootstrap, {c.resamples} resamples"
    margin = f", tolerated loss {v.margin:g}" if v.margin else ""
    return (f"NEW − OLD = {_num(delta, signed=True)}{margin}; p(NEW worse) = {v.p_worse:.4g} "
            f"{'<' if v.worse else '≥'} alpha {v.alpha:g} ({how})")


METRIC_HEADER = ("<th>metric</th><th>OLD</th><th class='note'>95% interval</th><th>NEW</th><th class='note'>95% "
                 "interval</th><th>NEW − OLD</th><th class='note'>95% interval</th><th class='note'>interval</th>")


def _table(header: str, rows: str) -> str:
    """A table that scrolls sideways on its own on a narrow screen, instead of widening the page."""
    return f"<div class='scroll'><table><tr>{header}</tr>{rows}</table></div>"


def _verdict_cell(value: Any, correct: bool | None) -> str:
    cls = "" if correct is None else (" right" if correct else " wrong")
    return f"<td class='t{cls}'>{html.escape(_decision(value))}{html.escape(_mark(correct))}</td>"


def _html(c: Comparison, max_changed: int = 200) -> str:
    e = html.escape
    v = c.verdict
    metric_rows = "".join(
        f"<tr><td>{e(m.name)}{' <strong>(primary)</strong>' if m.primary else ''}</td><td>{_num(m.old)}</td>"
        f"<td class='note'>{_ci(m.old_ci)}</td><td>{_num(m.new)}</td><td class='note'>{_ci(m.new_ci)}</td>"
        f"<td>{_num(m.delta, signed=True)}</td><td class='note'>{_ci(m.delta_ci)}</td>"
        f"<td class='note'>{'Wilson' if m.interval == 'wilson' else 'bootstrap'}</td></tr>" for m in c.metrics)
    label_rows = "".join(f"<tr><td>{e(r.label)}</td><td>{r.support}</td><td>{_num(r.old_f1, 3)}</td>"
                         f"<td>{_num(r.new_f1, 3)}</td><td>{_num(r.delta, 3, signed=True)}</td></tr>"
                         for r in c.per_label)
    changed_rows = "".join(
        f"<tr><td>{r.line if r.line is not None else r.index}</td><td class='t'>{e(r.input)}</td>"
        f"<td class='t'>{e(_decision(r.gold)) if r.gold is not None else ''}</td>"
        f"{_verdict_cell(r.old, r.old_correct)}{_verdict_cell(r.new, r.new_correct)}</tr>"
        for r in c.changed[:max_changed])
    more = (f"<p class='meta'>{c.changed_count - max_changed} more: all are in the --changed file (and in "
            f"comparison.json when the page is a directory).</p>" if c.changed_count > max_changed else "")
    changed_table = (_table("<th>line</th><th class='t'>input</th><th class='t'>gold</th><th class='t'>OLD</th>"
                            "<th class='t'>NEW</th>", changed_rows) if changed_rows
                     else "<p>None: both bundles decide every record the same way.</p>")
    t = c.mcnemar
    mcnemar = (f"<p>McNemar: records only OLD gets right: {t.old_only}, only NEW: {t.new_only}; exact two-sided "
               f"p = {t.p_value:.4g}, one-sided p(NEW worse) = {t.p_worse:.4g}.</p>" if t else "")
    lat = c.latency
    latency = ("<h2>Latency</h2>" + _table(
        "<th>bundle</th><th>p50 ms/record</th><th>p90 ms/record</th><th>batch records/s</th>",
        f"<tr><td>OLD</td><td>{lat.old_p50_ms:.1f}</td><td>{lat.old_p90_ms:.1f}</td>"
        f"<td>{lat.old_batch_records_per_s:.0f}</td></tr><tr><td>NEW</td><td>{lat.new_p50_ms:.1f}</td>"
        f"<td>{lat.new_p90_ms:.1f}</td><td>{lat.new_batch_records_per_s:.0f}</td></tr>")
        + f"<p class='meta'>{lat.records} records predicted one at a time, OLD and NEW interleaved; NEW/OLD p50 "
          f"{lat.ratio_p50:.2f}.</p>" if lat else "")
    notes = "".join(f"<li>{e(n)}</li>" for n in c.notes)
    cls = "worse" if v.worse else "ok"
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Comparison: {e(c.task)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 10px;text-align:right}}
td:first-child,th:first-child,.t,.note{{text-align:left}}td.note{{color:#555}}summary{{cursor:pointer}}
svg{{max-width:100%;height:auto}}.meta{{color:#555}}figure{{margin:1em 0}}.scroll{{overflow-x:auto}}
.ok{{background:#eafaf1;border-left:4px solid #1e8449;padding:.6em 1em}}
.worse{{background:#fdedec;border-left:4px solid #c0392b;padding:.6em 1em}}
.warning{{background:#fff4e5;border-left:4px solid #e67e00;padding:.6em 1em}}
td.right{{color:#1e6b3a}}td.wrong{{color:#a93226}}h1,code{{overflow-wrap:anywhere}}</style></head><body>
<h1>Comparison: {e(c.task)}</h1>
<p class="meta">OLD <code>{e(c.old['path'])}</code> (digest <code>{e(c.old['digest'][:16])}…</code>), NEW
<code>{e(c.new['path'])}</code> (digest <code>{e(c.new['digest'][:16])}…</code>); data <code>{e(c.data)}</code>,
{c.n} records.</p>
<p class="{cls}"><strong>{'NEW is worse than OLD' if v.worse else 'NEW is not worse than OLD'}</strong> on
{e(v.metric)} (exit {v.exit_code}): {e(_test_line(c))}.</p>
<h2>Metrics</h2>{_table(METRIC_HEADER, metric_rows)}
<p class="meta">Intervals: Wilson for accuracy, otherwise percentile bootstrap; differences from {c.resamples} paired
resamples of the records (seed {c.seed}).</p>
<figure>{_forest(c)}<figcaption class="meta">NEW − OLD per metric with its 95% interval; red: NEW lower, green: NEW
higher, beyond the interval (whether higher is better depends on the metric).</figcaption></figure>
{mcnemar}
{f'<ul class="warning">{notes}</ul>' if notes else ''}
<h2>Per label F1 (largest changes first)</h2>
<details{' open' if len(c.per_label) <= 30 else ''}><summary>{len(c.per_label)} labels</summary>
{_table("<th>label</th><th>support</th><th>OLD F1</th><th>NEW F1</th><th>change</th>", label_rows)}
</details>
<h2>Changed decisions: {c.changed_count} of {c.n}</h2>
{changed_table}
{more}
{latency}
<p class="meta">Generated by Verticals {e(__version__)}.</p></body></html>
"""
