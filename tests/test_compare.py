"""``verticals compare``: verdicts and exit codes on tiny bundles, the page's ownership rules, and the
paired statistics against published values and the libraries they must agree with."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import pytest
import verticals
from verticals.cli import main
from verticals.metrics import classification_metrics, entity_metrics
from verticals.metrics import significance as sig
from verticals.testing import make_tiny_backbone, only_plugins

from .conftest import FAST, conll_text, text_rows, write_csv


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("compare")
    backbone = str(make_tiny_backbone(root / "tiny"))
    rows = text_rows(16, 0)
    labels = [r["label"] for r in rows]
    random.Random(3).shuffle(labels)  # a model trained on shuffled labels learns nothing: clearly worse
    write_csv(root / "train.csv", rows)
    write_csv(root / "shuffled.csv", [dict(r, label=label) for r, label in zip(rows, labels)])
    write_csv(root / "two.csv", [r for r in rows if r["label"] != "account"])
    write_csv(root / "test.csv", text_rows(40, 5))
    (root / "ner.conll").write_text(conll_text(30, 0), encoding="utf-8")
    (root / "ner_test.conll").write_text(conll_text(40, 7), encoding="utf-8")
    text = ["training.epochs=3", *FAST[1:]]
    with only_plugins():
        verticals.train("text-classification", root / "train.csv", output=root / "good", backbone=backbone,
                        overrides=text)
        verticals.train("text-classification", root / "shuffled.csv", output=root / "bad", backbone=backbone,
                        overrides=["training.epochs=1"])
        verticals.train("text-classification", root / "two.csv", output=root / "two", backbone=backbone,
                        overrides=["training.epochs=1"])
        verticals.train("token-classification", root / "ner.conll", output=root / "ner", backbone=backbone,
                        overrides=["training.epochs=1"])
    return {name: root / name for name in ("good", "bad", "two", "ner", "test.csv", "ner_test.conll")}


def run(*args: str | Path) -> int:
    with only_plugins():
        return main([str(a) for a in args])


def test_same_bundle_is_not_worse_and_nothing_changed(bundles, tmp_path, capsys) -> None:
    changed = tmp_path / "changed.jsonl"
    code = run("compare", bundles["good"], bundles["good"], "--data", bundles["test.csv"], "--json",
               "--changed", changed, "--latency-records", "3")
    report = json.loads(capsys.readouterr().out)  # one strict JSON object
    assert code == 0 and report["verdict"]["exit_code"] == 0 and not report["verdict"]["worse"]
    assert report["changed_count"] == 0 and changed.read_text() == ""
    assert report["mcnemar"]["old_only"] == report["mcnemar"]["new_only"] == 0
    accuracy = report["metrics"][0]
    assert accuracy["name"] == "accuracy" and accuracy["primary"] and accuracy["interval"] == "wilson"
    assert accuracy["delta"] == 0 and accuracy["delta_ci"] == [0, 0]
    right = round(accuracy["old"] * 120)
    assert accuracy["old_ci"] == pytest.approx(list(sig.wilson_interval(right, 120)))
    with only_plugins():  # the numbers are the task's own, as `evaluate` prints them
        expected = verticals.load(bundles["good"]).evaluate(bundles["test.csv"]).metrics
    assert {m["name"]: m["old"] for m in report["metrics"]} == pytest.approx(expected)
    assert report["latency"]["records"] == 3 and report["latency"]["old_p50_ms"] > 0


def test_clearly_worse_bundle_exits_3_and_lists_what_changed(bundles, tmp_path, capsys) -> None:
    changed, page = tmp_path / "changed.jsonl", tmp_path / "page"
    code = run("compare", bundles["good"], bundles["bad"], "--data", bundles["test.csv"], "--changed", changed,
               "--output-html", page, "--max-changed", "2", "--latency-records", "2")
    out = capsys.readouterr().out
    assert code == 3, out
    assert "NEW is WORSE than OLD on accuracy" in out and "-> exit 3" in out
    lines = [json.loads(line) for line in changed.read_text().splitlines()]
    assert lines and all(r["old"] != r["new"] for r in lines)
    assert out.count(" -> NEW ") == 2 and f"changed decisions: {len(lines)} of 120" in out
    assert {"index.html", "comparison.json", ".verticals-output.json"} == {p.name for p in page.iterdir()}
    html = (page / "index.html").read_text()
    assert "NEW is worse" in html and "<svg" in html and "http" not in html.replace("http-equiv", "")
    # The reverse is an improvement: not worse.
    assert run("compare", bundles["bad"], bundles["good"], "--data", bundles["test.csv"],
               "--latency-records", "0") == 0
    # A tolerated loss larger than the whole difference (and its noise) is not "worse" either.
    assert run("compare", bundles["good"], bundles["bad"], "--data", bundles["test.csv"], "--margin", "0.9",
               "--latency-records", "0") == 0
    assert "paired bootstrap" in capsys.readouterr().out  # a margin is tested with the bootstrap


def test_different_labels_or_tasks_are_refused_with_exit_2(bundles, capsys) -> None:
    assert run("compare", bundles["good"], bundles["two"], "--data", bundles["test.csv"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different label sets (only in OLD: account; only in NEW: none)" in err
    assert run("compare", bundles["good"], bundles["ner"], "--data", bundles["test.csv"]) == 2
    err = capsys.readouterr().err
    assert "is task 'text-classification'" in err and "'token-classification'" in err
    assert run("compare", bundles["good"], bundles["good"], "--data", bundles["test.csv"], "--alpha", "2") == 2
    assert run("compare", bundles["good"], bundles["good"], "--data", bundles["test.csv"], "--max-changed", "-1") == 2


def test_ner_compares_entity_sets_per_sentence(bundles, capsys) -> None:
    code = run("compare", bundles["ner"], bundles["ner"], "--data", bundles["ner_test.conll"], "--json",
               "--latency-records", "0")
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["primary_metric"] == "f1" and report["verdict"]["test"] == "paired-bootstrap"
    assert report["mcnemar"] is None and report["changed_count"] == 0
    with only_plugins():
        expected = verticals.load(bundles["ner"]).evaluate(bundles["ner_test.conll"]).metrics
    assert {m["name"]: m["old"] for m in report["metrics"]} == pytest.approx(expected)
    assert not any("score()" in note for note in report["notes"])  # every entity metric vectorised


def test_page_and_changed_file_are_never_written_over_a_file_verticals_did_not_write(bundles, tmp_path, capsys) -> None:
    args = ["compare", bundles["good"], bundles["good"], "--data", bundles["test.csv"], "--latency-records", "0"]
    theirs = tmp_path / "theirs.html"
    theirs.write_text("<p>the user's own page</p>")
    assert run(*args, "--output-html", theirs, "--overwrite") == 2
    assert theirs.read_text() == "<p>the user's own page</p>"
    ours = tmp_path / "ours.html"
    assert run(*args, "--output-html", ours) == 0
    assert run(*args, "--output-html", ours) == 2  # exists: --overwrite needed
    assert run(*args, "--output-html", ours, "--overwrite") == 0
    ours.write_text(ours.read_text().replace("Comparison", "Edited"))
    assert run(*args, "--output-html", ours, "--overwrite") == 2
    assert "changed after Verticals wrote it" in capsys.readouterr().err
    assert (tmp_path / ".ours.html.verticals-output.json").is_file()  # the single-file proof, as for predictions
    mine = tmp_path / "mine.jsonl"
    mine.write_text('{"a user": "file"}\n')
    assert run(*args, "--changed", mine, "--overwrite") == 2 and mine.read_text() == '{"a user": "file"}\n'
    folder = tmp_path / "folder"
    folder.mkdir()
    (folder / "notes.txt").write_text("keep me")
    assert run(*args, "--output-html", folder, "--overwrite") == 2 and (folder / "notes.txt").exists()


def test_generic_resampling_through_score_matches_the_vectorised_path(bundles, monkeypatch) -> None:
    """Metrics without a vectorised definition are resampled through the task's own score(); on the same
    seeded rows both routes must give the same intervals."""
    from verticals.operate import compare as module

    with only_plugins():
        fast = module.compare(bundles["good"], bundles["bad"], bundles["test.csv"], resamples=100,
                              latency_records=0)
        original = module._outcomes

        def without_vectorised(a, b):
            outcomes = original(a, b)
            outcomes.statistic = None
            return outcomes

        monkeypatch.setattr(module, "_outcomes", without_vectorised)
        slow = module.compare(bundles["good"], bundles["bad"], bundles["test.csv"], resamples=100,
                              latency_records=0)
    assert any("score()" in note for note in slow.notes)
    for f, s in zip(fast.metrics, slow.metrics):
        assert f.name == s.name and f.delta_ci == pytest.approx(s.delta_ci, abs=1e-12)
        if f.interval == "bootstrap":
            assert f.old_ci == pytest.approx(s.old_ci, abs=1e-12)


# ---- the statistics module ---------------------------------------------------------------------------------
def test_wilson_interval_matches_newcombe_1998() -> None:
    # Newcombe, Statistics in Medicine 17 (1998) 857-872, Table I, method 3 (score interval).
    for (successes, n), expected in {(81, 263): (0.2553, 0.3662), (15, 148): (0.0624, 0.1605),
                                     (0, 20): (0.0, 0.1611), (1, 29): (0.0061, 0.1718),
                                     (29, 29): (0.8830, 1.0)}.items():
        assert sig.wilson_interval(successes, n) == pytest.approx(expected, abs=5e-5)


def test_mcnemar_on_textbook_tables() -> None:
    # Fagerland, Lydersen & Laake, BMC Med Res Methodol 13:91 (2013): b=1, c=7; exact conditional p = 0.070.
    small = sig.mcnemar_counts(1, 7)
    assert small.p_value == pytest.approx(0.0703, abs=1e-4) and small.statistic == pytest.approx(25 / 8)
    # Wikipedia's McNemar example (b=121, c=59): chi-square 21.35 without, 20.67 with continuity correction.
    assert sig.mcnemar_counts(121, 59).statistic == pytest.approx(20.672, abs=1e-3)
    # One-sided: NEW losing 7 of 8 discordant pairs is p = 9/256 (P[X >= 7], X ~ Bin(8, 1/2)).
    assert sig.mcnemar_counts(7, 1).p_worse == pytest.approx(9 / 256)
    assert sig.mcnemar_counts(1, 7).p_worse == pytest.approx(1 - 1 / 256)
    assert sig.mcnemar_counts(0, 0).p_worse == 1.0
    outcome = sig.mcnemar(np.array([1, 1, 0, 0, 1], bool), np.array([1, 0, 1, 0, 0], bool))
    assert (outcome.old_only, outcome.new_only) == (2, 1)


def test_label_scores_equal_scikit_learn_on_resamples() -> None:
    rng = np.random.default_rng(1)
    labels = ["a", "b", "c", "d"]
    y, p = rng.integers(0, 4, 60), rng.integers(0, 3, 60)  # 'd' never predicted; some resamples lack labels
    idx = np.vstack([rng.integers(0, 60, (20, 60)), rng.integers(0, 5, (1, 60))])
    got = sig.label_scores(y, p, np.ones(4, bool), idx)
    for row, values in zip(idx, got):
        expected, _, _ = classification_metrics([labels[i] for i in y[row]], [labels[i] for i in p[row]], labels)
        assert values == pytest.approx([expected[name] for name in sig.LABEL_METRICS], abs=1e-12)


def test_entity_scores_equal_seqeval_on_resamples() -> None:
    rng = np.random.default_rng(2)
    tags = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]
    gold = [list(rng.choice(tags, 6)) for _ in range(25)]
    pred = [list(rng.choice(tags, 6)) for _ in range(25)]
    from verticals.operate.compare import _entities

    counts = np.array([[len(_entities([], g) & _entities([], q)), len(_entities([], q)), len(_entities([], g)),
                        sum(a == b for a, b in zip(g, q)), len(g)] for g, q in zip(gold, pred)])
    idx = rng.integers(0, 25, (10, 25))
    for row, values in zip(idx, sig.entity_scores(counts, idx)):
        expected, _ = entity_metrics([gold[i] for i in row], [pred[i] for i in row])
        assert values == pytest.approx([expected[name] for name in sig.ENTITY_METRICS], abs=1e-12)


def test_bootstrap_is_seeded_paired_and_independent_of_chunking(monkeypatch) -> None:
    whole = np.concatenate(list(sig.bootstrap_indices(50, 300, seed=4)))
    monkeypatch.setattr(sig, "CHUNK_CELLS", 120)  # 2 rows per chunk
    assert np.array_equal(np.concatenate(list(sig.bootstrap_indices(50, 300, seed=4))), whole)
    assert not np.array_equal(np.concatenate(list(sig.bootstrap_indices(50, 300, seed=5))), whole)
    values = np.arange(50.0)
    means = sig.paired_bootstrap(lambda idx: values[idx].mean(axis=1), 50, 300, seed=4)
    assert means.shape == (300, 1) and np.allclose(means[:, 0], values[whole].mean(axis=1))


def test_bootstrap_p_worse_and_interval() -> None:
    assert sig.p_worse(np.zeros(999)) == 1.0  # identical models: never worse
    assert sig.p_worse(np.full(999, -0.1)) == pytest.approx(1 / 1000)
    assert sig.p_worse(np.full(999, -0.1), margin=0.2) == 1.0  # inside the tolerated loss
    assert sig.p_worse(np.array([np.nan, 1.0, -1.0])) == pytest.approx(2 / 3)  # undefined resamples left out
    assert sig.percentile_interval(np.arange(101.0)) == pytest.approx((2.5, 97.5))
