"""The Financial PhraseBank reader and the sentiment task's data handling."""

from pathlib import Path

import pytest
from finance_testdata import write_phrasebank
from verticals import DataError, build_task


def read(path: Path, *overrides: str):  # type: ignore[no-untyped-def]
    task, _, _ = build_task("finance.sentiment", overrides=list(overrides))
    return task.read(path)


def test_reads_latin1_lines_and_splits_on_the_last_at(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes("Profit at Jyväskylä rose , see ir@kone.com@positive\n\nSales fell@negative\n".encode("latin-1"))
    records = read(path)
    assert [(r.text, r.label) for r in records] == [
        ("Profit at Jyväskylä rose , see ir@kone.com", "positive"), ("Sales fell", "negative")]
    assert records[1].origin() == (str(path), 3)  # blank lines are skipped but line numbers stay true


def test_explicit_format_and_custom_columns(tmp_path: Path) -> None:
    path = write_phrasebank(tmp_path / "bank.dat", 6)
    records = read(path, "data.format=phrasebank", "data.text_column=sentence", "data.label_column=sentiment")
    assert len(records) == 6 and records[0].label == "positive" and "Jyväskylä" in records[0].text


def test_csv_and_jsonl_still_read_as_utf8(tmp_path: Path) -> None:
    csv_path = tmp_path / "s.csv"
    csv_path.write_text("text,label\nVoitto kasvoi Jyväskylässä,positive\n", encoding="utf-8")
    jsonl = tmp_path / "s.jsonl"
    jsonl.write_text('{"text": "Loss widened", "label": "negative"}\n', encoding="utf-8")
    assert read(csv_path)[0].text == "Voitto kasvoi Jyväskylässä"
    assert read(jsonl)[0].label == "negative"


@pytest.mark.parametrize(("line", "field", "reason"), [
    ("Sales fell sharply", "label", "no '@'"),
    ("Sales fell sharply@", "label", "empty label"),
    ("@neutral", "text", "empty sentence"),
])
def test_malformed_lines_name_file_and_line(tmp_path: Path, line: str, field: str, reason: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_bytes(f"Profit rose@positive\n{line}\n".encode("latin-1"))
    with pytest.raises(DataError) as err:
        read(path)
    assert err.value.line == 2 and err.value.field == field and reason in str(err.value)


def test_a_utf8_copy_of_phrasebank_is_read_as_utf8(tmp_path: Path) -> None:
    # Re-saved copies of the release are UTF-8; read as latin-1 they became 'JyvÃ¤skylÃ¤' without a word.
    path = tmp_path / "s.txt"
    path.write_bytes("Profit rose in Jyväskylä , up 5 €@positive\nSales fell@negative\n".encode())
    assert read(path)[0].text == "Profit rose in Jyväskylä , up 5 €"
    assert read(path, "data.encoding=latin-1")[0].text.startswith("Profit rose in JyvÃ¤")  # an explicit choice wins


def test_utf8_bytes_in_a_latin1_file_still_decode_but_wrong_encoding_is_reported(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes("Profit rose in Jyväskylä@positive\n".encode("latin-1"))
    with pytest.raises(DataError, match="undecodable bytes for encoding 'utf-8'"):
        read(path, "data.encoding=utf-8")


def test_label_outside_the_pack_labels_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "s.txt"
    path.write_bytes(b"Profit rose@positive\nNo idea@mixed\n")
    task, _, _ = build_task("finance.sentiment")
    with pytest.raises(DataError, match="mixed"):
        task.prepare(task.read(path))
