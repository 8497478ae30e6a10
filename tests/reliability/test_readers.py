"""Reader-level defects (issue 15 items 10 and 12): files that are valid, or hostile, must give the right
records or one clear DataError naming the file and line -- never a split record, an unbounded read, a
RecursionError or a TypeError far from the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from verticals.data.records import read_raw
from verticals.errors import DataError
from verticals.scale.streaming import iter_raw

pytestmark = pytest.mark.reliability

LINE_SEPARATORS = ["\u0085", "\u2028", "\u2029", "\x0b", "\x0c", "\x1c", "\r"]


@pytest.mark.parametrize("separator", LINE_SEPARATORS, ids=[f"U+{ord(c):04X}" for c in LINE_SEPARATORS])
def test_jsonl_strings_may_hold_unicode_line_separators(tmp_path: Path, separator: str) -> None:
    # JSON Lines are separated by '\n' only; ensure_ascii=False writes these characters raw (scraped
    # tweets and news hold them), so str.splitlines() would cut the record in two.
    rows = [{"text": f"first{separator}half", "label": "a"}, {"text": "second", "label": "b"}]
    path = tmp_path / "t.jsonl"
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8", newline="")
    records = read_raw(path)
    assert [r.data for r in records] == rows
    assert [r.line for r in records] == [1, 2]
    assert [r.data for r in iter_raw(path)] == rows


@pytest.mark.parametrize("separator", ["\u0085", "\u2028"])
def test_csv_and_conll_fields_may_hold_unicode_line_separators(tmp_path: Path, separator: str) -> None:
    csv_path = tmp_path / "t.csv"
    csv_path.write_text(f"text,label\nfirst{separator}half,a\nsecond,b\n", encoding="utf-8", newline="")
    assert [r.data["text"] for r in read_raw(csv_path)] == [f"first{separator}half", "second"]
    conll = tmp_path / "t.conll"
    conll.write_text(f"a{separator}b\tB-X\nc\tO\n\nd\tO\n", encoding="utf-8", newline="")
    assert [r.data["tokens"] for r in read_raw(conll)] == [[f"a{separator}b", "c"], ["d"]]


@pytest.mark.parametrize("name", ["zero.jsonl", "zero.csv", "zero.conll"])
def test_a_line_without_end_is_bounded(tmp_path: Path, name: str) -> None:
    # /dev/zero (or a binary file) has no line end: reading must stop at the record size limit.
    source = Path("/dev/zero") if os.path.exists("/dev/zero") else None
    if source is None:
        pytest.skip("no /dev/zero")
    link = tmp_path / name
    link.symlink_to(source)
    with pytest.raises(DataError, match=r"longer than 2048 bytes.*data.max_record_bytes") as info:
        read_raw(link, max_record_bytes=2048)
    assert info.value.line == 1 and info.value.path == str(link)


def test_the_default_record_limit_is_one_mebibyte(tmp_path: Path) -> None:
    path = tmp_path / "big.jsonl"
    path.write_text(json.dumps({"text": "x" * (1 << 20), "label": "a"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"big.jsonl:1: line is longer than 1048576 bytes"):
        read_raw(path)
    fits = tmp_path / "fits.jsonl"  # exactly 1,024 bytes of JSON plus its line end: the limit counts the record
    fits.write_text(json.dumps({"text": "x" * 998, "label": "a"}) + "\n", encoding="utf-8")
    assert len(json.dumps({"text": "x" * 998, "label": "a"})) == 1024
    assert len(read_raw(fits, max_record_bytes=1024)) == 1


def test_duplicated_csv_header_is_named(tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    path.write_text("text,label,text\nhello,a,again\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t.csv:1: duplicate column name 'text' \(columns 1, 3\)"):
        read_raw(path)


@pytest.mark.parametrize("content", ["[]", "  [ ]\n", "\ufeff[]"])
def test_empty_json_array_names_the_file(tmp_path: Path, content: str) -> None:
    path = tmp_path / "t.json"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError, match="JSON array is empty") as info:
        read_raw(path)
    assert info.value.path == str(path)


def test_json_array_records_carry_their_line(tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('[\n  {"text": "a", "label": "x"},\n  {"text": "b",\n   "label": "y"}\n]\n', encoding="utf-8")
    records = read_raw(path)
    assert [(r.line, r.data["text"]) for r in records] == [(2, "a"), (3, "b")]
    one_line = tmp_path / "dump.json"  # json.dump() writes one line of any length: no line limit for arrays
    one_line.write_text(json.dumps([{"text": "y" * 3000, "label": "x"}] * 3), encoding="utf-8")
    assert len(read_raw(one_line, max_record_bytes=1024)) == 3
    bad = tmp_path / "bad.json"
    bad.write_text('[{"text": "a"},\n 3]', encoding="utf-8")
    with pytest.raises(DataError, match=r"bad.json:2: record 2 of the JSON array is int"):
        read_raw(bad)


@pytest.mark.parametrize("name", ["deep.jsonl", "deep.json"])
def test_deeply_nested_json_is_a_data_error(tmp_path: Path, name: str) -> None:
    deep = '{"text": "ok", "label": "a", "x": ' + "[" * 5000 + "]" * 5000 + "}"
    path = tmp_path / name
    path.write_text('{"text": "fine", "label": "a"}\n' + deep + "\n" if name.endswith("l") else f"[{deep}]",
                    encoding="utf-8")
    with pytest.raises(DataError, match="nested more than") as info:
        read_raw(path)
    assert info.value.path == str(path) and info.value.line == (2 if name.endswith("l") else 1)


def test_moderately_nested_json_is_refused_before_it_reaches_the_model(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "ok", "label": "a", "x": ' + "[" * 100 + "]" * 100 + "}\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"t.jsonl:1: field 'x': value nested more than 32"):
        read_raw(path)


@pytest.mark.parametrize("name", ["t.jsonl", "t.json"])
def test_lone_surrogates_are_refused_at_read_time(tmp_path: Path, name: str) -> None:
    line = '{"text": "hello \\ud800 world", "label": "a"}'
    path = tmp_path / name
    path.write_text('{"text": "fine \\ud83d\\ude00", "label": "b"}\n' + line + "\n" if name.endswith("l")
                    else f'[{{"text": "fine", "label": "b"}},\n{line}]', encoding="utf-8")
    with pytest.raises(DataError, match=r"t.jsonl?:2: field 'text': text holds a lone surrogate \(U\+D800\)"):
        read_raw(path)


def test_a_valid_surrogate_pair_is_text(tmp_path: Path) -> None:
    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "smile \\ud83d\\ude00", "label": "b"}\n', encoding="utf-8")
    assert read_raw(path)[0].data["text"] == "smile \U0001f600"


def test_cli_training_on_hostile_files_is_one_line_exit_2(tmp_path: Path) -> None:
    from ..conftest import run_cli

    path = tmp_path / "t.jsonl"
    path.write_text('{"text": "x", "label": "a", "x": ' + "[" * 5000 + "]" * 5000 + "}\n", encoding="utf-8")
    result = run_cli("train", "text-classification", "--train", str(path), "--output", str(tmp_path / "o"))
    assert result.returncode == 2, result.stderr
    assert "t.jsonl:1:" in result.stderr and "nested more than" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "o").exists()
