"""`verticals check`: planted data problems are found, cleanlab's wrapper flags the planted mislabel, the
outputs are strict JSON and an atomic CSV that never replaces a foreign file, `train` warns (never refuses)."""

from __future__ import annotations

import csv
import json
import warnings

import numpy as np
import pytest
from verticals.tasks.data_findings import Item
from verticals.workshop import similarity
from verticals.workshop.check import DataCheckWarning, check_data, format_report

from .conftest import FAST, run_cli, write_csv

LONG = "my invoice " + " ".join(f"item{i}" for i in range(40)) + " was charged twice"


def _planted(tmp_path):
    train = [
        {"text": "I need a refund for this invoice", "label": "billing"},        # line 2
        {"text": "I need a refund for this invoice", "label": "billing"},        # 3: exact duplicate of 2
        {"text": "where is my parcel", "label": "shipping"},                     # 4
        {"text": "Where is   my parcel", "label": "billing"},                    # 5: conflicts with 4
        {"text": LONG, "label": "billing"},                                      # 6: truncated at 16 tokens
        {"text": "???", "label": "shipping"},                                    # 7: no letters
        {"text": "   ", "label": "shipping"},                                    # 8: refused by the reader
        {"text": "the courier lost my package", "label": "shipping"},            # 9
        {"text": "charge on my card twice", "label": "billing"},                 # 10
    ]
    validation = [
        {"text": "the courier lost my package", "label": "shipping"},            # 2: leaked from train:9
        {"text": "my payment failed", "label": "billing"},                       # 3
    ]
    return write_csv(tmp_path / "train.csv", train), write_csv(tmp_path / "val.csv", validation)


def _by(report, check, split):
    return next(f for f in report.findings if f.check == check and f.split == split)


def test_cheap_checks_find_planted_problems(tmp_path, tiny_backbone):
    train, validation = _planted(tmp_path)
    report = check_data("text-classification", train, validation=validation, backbone=str(tiny_backbone),
                        overrides=["training.max_length=16"], thorough=False)
    invalid = _by(report, "invalid_records", "train")
    assert invalid.count == 1 and "train.csv:8" in invalid.examples[0]
    odd = _by(report, "odd_records", "train")
    assert odd.count == 1 and odd.examples[0].startswith(f"{train}:7: no letters")
    duplicates = _by(report, "exact_duplicates", "train")
    assert duplicates.count == 1 and duplicates.examples[0].startswith(f"{train}:3 repeats {train}:2")
    conflicts = _by(report, "label_conflicts", "train")
    assert conflicts.count == 1 and f"{train}:4 'shipping'" in conflicts.examples[0]
    assert {(s.where, s.check, s.suggested_label) for s in report.suspects} == {
        (f"{train}:4", "label_conflict", None), (f"{train}:5", "label_conflict", None)}
    leak = _by(report, "leakage", "validation vs train")
    assert leak.count == 1 and leak.examples[0].startswith(f"{validation}:2 = {train}:9")
    truncated = _by(report, "truncation", "train")
    assert truncated.count == 1 and truncated.examples[0].startswith(f"{train}:6:")
    assert "characters: 'item5 item6" in truncated.examples[0]  # where the cut-off tail starts
    assert _by(report, "truncation", "validation").status == "ok"
    assert _by(report, "rare_labels", "train").count == 2  # both labels have < 10 records
    assert report.splits["train"] == {"source": str(train), "records": 8, "refused": 1}
    table = format_report(report)
    assert "exact_duplicates" in table and "leakage" in table


def test_token_classification_checks(tmp_path, tiny_backbone):
    sentences = [
        [("Alice", "B-PER"), ("flew", "O"), ("to", "O"), ("Paris", "B-LOC")],
        [("Alice", "B-PER"), ("flew", "O"), ("to", "O"), ("Paris", "B-LOC")],   # exact duplicate
        [("Bob", "B-PER"), ("met", "O"), ("Oslo", "B-LOC")],
        [("Bob", "B-PER"), ("met", "O"), ("Oslo", "B-PER")],                    # same words, other tags
        [("Carol", "O"), ("Smith", "I-PER"), ("left", "O")],                    # I- continues nothing
        [(f"w{i}", "O") for i in range(30)] + [("Berlin", "B-LOC")],            # longer than 16 tokens
    ]

    def conll(rows):
        return "\n\n".join("\n".join(f"{t}\t{g}" for t, g in s) for s in rows) + "\n"

    train = tmp_path / "train.conll"
    train.write_text(conll(sentences), encoding="utf-8")
    test = tmp_path / "test.conll"
    test.write_text(conll([sentences[2], [("Dave", "B-PER"), ("sang", "O")]]), encoding="utf-8")
    report = check_data("token-classification", train, test=test, backbone=str(tiny_backbone),
                        overrides=["training.max_length=16"], thorough=False)
    assert _by(report, "exact_duplicates", "train").count == 1
    conflict = _by(report, "label_conflicts", "train")
    assert conflict.count == 1 and "word 3 'Oslo' is B-LOC in one, B-PER in the other" in conflict.examples[0]
    assert _by(report, "leakage", "test vs train").count == 1
    sanity = _by(report, "tag_sanity", "train")
    assert sanity.count == 1 and "'Smith' is I-PER after O" in sanity.examples[0]
    truncated = _by(report, "truncation", "train")
    assert truncated.count == 1 and "words 8-31 are cut: 'w7 w8" in truncated.examples[0]
    balance = _by(report, "label_balance", "train")
    assert "entity mentions" in balance.summary and balance.count == 2  # PER and LOC


def test_near_duplicates_and_near_leakage_on_known_vectors():
    def unit(*rows):
        v = np.asarray(rows, dtype=np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    def items(split, texts, labels):
        return [Item(split, f"{split}:{i}", t, lab, t.lower(), None) for i, (t, lab) in enumerate(zip(texts, labels))]

    train = items("train", ["a", "b", "c", "A"], ["x", "y", "x", "x"])
    test = items("test", ["d", "e"], ["x", "y"])
    vectors = {"train": unit([1, 0, 0], [0.99, 0.1, 0], [0, 1, 0], [1, 0, 0]),  # a~b 0.995; a == A exactly
               "test": unit([0, 0.999, 0.04], [0, 0, 1])}                        # d ~ c 0.999
    found = {(f.check, f.split): f for f in similarity.check_near({"train": train, "test": test}, vectors, 0.95)}
    near = found["near_duplicates", "train"]
    # a~b and A~b; a/A are exact copies (left to the exact check); b has another label
    assert near.count == 2 and "with different labels" in near.summary
    assert found["near_leakage", "test vs train"].count == 1
    assert found["near_leakage", "test vs train"].examples[0].startswith("test:0 ~ train:2")


def test_label_issues_wrapper_flags_the_contradicted_label():
    labels = [0, 0, 0, 1, 1, 1, 0, 1]
    probs = np.array([[0.9, 0.1], [0.85, 0.15], [0.95, 0.05], [0.1, 0.9], [0.2, 0.8], [0.05, 0.95],
                      [0.03, 0.97],  # labelled 0, every other view says 1
                      [0.15, 0.85]])
    issues = similarity.label_issues(labels, probs)
    assert [x["row"] for x in issues] == [6]
    assert issues[0]["suggested"] == 1 and issues[0]["self_confidence"] == pytest.approx(0.03)


def test_thorough_check_flags_planted_mislabel(tmp_path, tiny_backbone):
    rng = np.random.default_rng(0)
    words = {"billing": ["invoice", "refund", "charge", "payment"], "shipping": ["parcel", "courier", "tracking",
                                                                                "delivery"]}
    rows = [{"text": " ".join(rng.choice(words[label], 3)) + f" {i}", "label": label}
            for i in range(20) for label in words]
    rows.append({"text": "invoice refund charge payment", "label": "shipping"})  # the planted mislabel: line 42
    train = write_csv(tmp_path / "train.csv", rows)
    report = check_data("text-classification", train, backbone=str(tiny_backbone))
    issues = [s for s in report.suspects if s.check == "label_issue"]
    assert issues and issues[0].where == f"{train}:42"
    assert issues[0].suggested_label == "billing"
    assert _by(report, "label_issues", "all").status == "warn"


def _cli(capsys, *args):
    """The CLI in-process (the console script is ``verticals.cli:main``): exit code, stdout, stderr."""
    from verticals.cli import main

    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_json_and_suspects_csv(tmp_path, tiny_backbone, capsys):
    train, validation = _planted(tmp_path)
    suspects = tmp_path / "suspects.csv"
    code, out, err = _cli(capsys, "check", "text-classification", "--train", str(train), "--validation",
                          str(validation), "--backbone", str(tiny_backbone), "--json", "--suspects", str(suspects))
    assert code == 0, err
    report = json.loads(out, parse_constant=lambda c: pytest.fail(f"not strict JSON: {c}"))
    assert {f["check"] for f in report["findings"]} >= {"exact_duplicates", "near_duplicates", "label_issues"}
    with open(suspects, encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert {r["check"] for r in rows} >= {"label_conflict"} and len(rows) == len(report["suspects"])
    assert all(r["where"] for r in rows)
    # a suspects file Verticals wrote is replaced with --overwrite only; a foreign file never
    cheap = ["check", "text-classification", "--train", str(train), "--backbone", str(tiny_backbone), "--cheap"]
    assert _cli(capsys, *cheap, "--suspects", str(suspects))[0] == 2
    code, out, err = _cli(capsys, *cheap, "--suspects", str(suspects), "--overwrite")
    assert code == 0, err
    assert "exact_duplicates" in out and "skipped" in out  # the table, with the embedding checks skipped
    foreign = tmp_path / "notes.csv"
    foreign.write_text("my,own\nnotes,here\n", encoding="utf-8")
    code, _, err = _cli(capsys, *cheap, "--suspects", str(foreign), "--overwrite")
    assert code == 2 and "did not write it" in err
    assert foreign.read_text(encoding="utf-8") == "my,own\nnotes,here\n"


@pytest.mark.parametrize("args, fragment", [
    (["--train", "{tmp}/missing.csv"], "missing.csv"),
    (["--train", "{train}", "--near-threshold", "1.5"], "near-duplicate threshold 1.5"),
    (["--train", "{train}", "--set", "data.text_column=utterance"], "'utterance'"),
])
def test_cli_bad_input_is_one_line_exit_2(tmp_path, tiny_backbone, capsys, args, fragment):
    train = write_csv(tmp_path / "t.csv", [{"text": "hello there", "label": "a"}, {"text": "bye now", "label": "b"}])
    code, out, err = _cli(capsys, "check", "text-classification", "--backbone", str(tiny_backbone),
                          *[a.format(train=train, tmp=tmp_path) for a in args])
    assert code == 2, (out, err)
    assert "Traceback" not in err
    errors = [line for line in err.splitlines() if line.startswith("verticals: error:")]
    assert len(errors) == 1 and fragment in errors[0], err


def test_cli_check_subprocess_one_line_error(tmp_path):
    """The installed console script: the same one-line error, exit 2, no traceback."""
    result = run_cli("check", "text-classification", "--train", str(tmp_path / "nope.csv"), "--cheap")
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert [line for line in result.stderr.splitlines() if line.startswith("verticals: error:")]


def test_train_warns_on_cheap_findings_and_no_check_skips(tmp_path, tiny_backbone):
    import verticals
    from verticals.errors import DataError

    from .conftest import text_rows

    rows = text_rows(6, 0)
    rows.append(dict(rows[0]))  # an exact duplicate
    train = write_csv(tmp_path / "t.csv", rows)
    with pytest.warns(DataCheckWarning, match="repeat an earlier one"):  # warns, and trains all the same
        verticals.train("text-classification", train, output=tmp_path / "a", backbone=str(tiny_backbone),
                        overrides=FAST[1:] + ["training.epochs=1"])
    assert (tmp_path / "a" / "bundle.json").is_file()
    # check=False: the same data trains without a word
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        verticals.train("text-classification", train, output=tmp_path / "b", backbone=str(tiny_backbone),
                        overrides=FAST[1:] + ["training.epochs=1"], check=False)
    assert not [w for w in caught if issubclass(w.category, DataCheckWarning)]
    # a run that cannot start says only why: the refusal comes before (and instead of) the warnings
    one_label = write_csv(tmp_path / "one.csv", [{"text": "same text", "label": "a"}] * 3)
    with warnings.catch_warnings(record=True) as caught, pytest.raises(DataError, match="one label only"):
        warnings.simplefilter("always")
        verticals.train("text-classification", one_label, output=tmp_path / "c", backbone=str(tiny_backbone))
    assert not [w for w in caught if issubclass(w.category, DataCheckWarning)]
