"""Reading CoNLL/JSONL/raw text, user entity types, and clear errors that never echo record text."""

import json

import pytest
from verticals import DataError, api
from verticals.cli import main

from .data import write_conll, write_jsonl

SECRET = "Jane Roe , born 1961 , has lupus"


def read(tmp_path, name: str, content: str, *overrides: str, labelled: bool = True):  # type: ignore[no-untyped-def]
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    task, _, _ = api.build_task("medical.ner", overrides=list(overrides))
    return task.read(path, require_labels=labelled)


def test_conll_and_jsonl_read_alike(tmp_path) -> None:  # type: ignore[no-untyped-def]
    task, _, _ = api.build_task("medical.ner")
    a = task.read(write_conll(tmp_path / "a.conll"))
    b = task.read(write_jsonl(tmp_path / "b.jsonl"))
    assert [(r.tokens, r.tags) for r in a] == [(r.tokens, r.tags) for r in b]
    assert a[1].origin()[1] == 11  # records remember the line their sentence starts on


def test_jsonl_text_only_records_are_pretokenised(tmp_path) -> None:  # type: ignore[no-untyped-def]
    (record,) = read(tmp_path, "p.jsonl", json.dumps({"text": "Crohn's disease (CD)."}) + "\n", labelled=False)
    assert record.tokens == ["Crohn", "'", "s", "disease", "(", "CD", ")", "."]
    assert record.text == "Crohn's disease (CD)."


def test_user_entity_types_come_from_data(tmp_path) -> None:  # type: ignore[no-untyped-def]
    records = read(tmp_path, "g.conll", "BRCA1\tB-Gene\nmutation\tO\n")
    task, _, _ = api.build_task("medical.ner")
    task.prepare(records)
    assert task.labels_ == ["O", "B-Chemical", "I-Chemical", "B-Disease", "I-Disease", "B-Gene", "I-Gene"]
    task, _, _ = api.build_task("medical.ner", overrides=["labels=[]"])
    task.prepare(records)
    assert task.labels_ == ["O", "B-Gene", "I-Gene"]


@pytest.mark.parametrize("content, expected", [
    ("lupus\tS-Disease\n", "not in the BIO scheme"),
    ("lupus\tB-Disease\nnephritis\tE-Disease\n", "not in the BIO scheme"),
    ("lupus\tDISEASE\n", "not in the BIO scheme"),
])
def test_unknown_tag_scheme(tmp_path, content: str, expected: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match=expected) as info:
        read(tmp_path, "x.conll", content)
    assert info.value.path.endswith("x.conll") and info.value.line == 1 and info.value.field == "tags"


def test_tag_token_count_mismatch_is_reported_without_the_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    line = json.dumps({"tokens": SECRET.split(), "tags": ["O"] * 3})
    with pytest.raises(DataError, match="token/tag count mismatch: 8 tokens but 3 tags") as info:
        read(tmp_path, "m.jsonl", json.dumps({"tokens": ["a"], "tags": ["O"]}) + "\n" + line + "\n")
    assert info.value.line == 2
    assert "Jane" not in str(info.value) and "lupus" not in str(info.value)


def test_values_are_quoted_only_when_asked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    line = json.dumps({"tokens": SECRET.split(), "tags": ["O"] * 3}) + "\n"
    with pytest.raises(DataError) as info:
        read(tmp_path, "m.jsonl", line, "task.show_values_in_errors=true")
    assert "Jane" in str(info.value)  # the core's message quotes the record, which is why it is off by default


@pytest.mark.parametrize("line", [
    {"tokens": [], "tags": []},
    {"text": "   ", "tags": []},
    {"tokens": ["lupus", " "], "tags": ["B-Disease", "O"]},
])
def test_empty_sentence_or_blank_token(tmp_path, line) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(DataError, match="empty sentence|blank|empty label"):
        read(tmp_path, "e.jsonl", json.dumps(line) + "\n")


def test_tokens_that_do_not_match_the_text(tmp_path) -> None:  # type: ignore[no-untyped-def]
    line = json.dumps({"text": SECRET, "tokens": ["lupus", "Jane"]}) + "\n"
    with pytest.raises(DataError, match="do not appear in order") as info:
        read(tmp_path, "t.jsonl", line, labelled=False)
    assert "Jane" not in str(info.value)


def test_cli_bad_input_is_one_line_exit_2(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"tokens": SECRET.split(), "tags": ["O"]}) + "\n", encoding="utf-8")
    code = main(["train", "medical.ner", "--train", str(bad), "--output", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "count mismatch" in err
    assert "Jane" not in err


def test_tsv_token_tag_files_are_read_as_conll(tmp_path) -> None:  # type: ignore[no-untyped-def]
    records = read(tmp_path, "train.tsv", "Wilson\tB-Disease\ndisease\tI-Disease\n\nOK\tO\n")
    assert [r.tags for r in records] == [["B-Disease", "I-Disease"], ["O"]]


def test_a_table_mixing_text_and_token_rows_reads_like_jsonl(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A DataFrame/Dataset has one set of columns: a row with text only has tokens=None, as absent in JSONL."""
    pd = pytest.importorskip("pandas")
    rows = [{"text": "Crohn's disease (CD)."}, {"tokens": ["aspirin", "helps"]}]
    path = tmp_path / "mixed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    task, _, _ = api.build_task("medical.ner")
    expected = [r.model_dump() for r in task.read(path, require_labels=False)]
    assert [r.model_dump() for r in task.read(pd.DataFrame(rows), require_labels=False)] == expected
