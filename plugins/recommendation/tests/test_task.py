"""recommendation.scoring end to end on tiny data: seen items, cold items, score(), the CLI."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from recommendation_testdata import write_split
from verticals import load, train
from verticals.cli import main as cli
from verticals.testing import make_tiny_backbone
from verticals_recommendation import Recommender


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    directory = tmp_path_factory.mktemp("rec")
    data = write_split(directory)
    backbone = make_tiny_backbone(directory / "tiny")
    overrides = [*data["overrides"], "training.epochs=2", "training.batch_size=8", "task.rerank_min_cases=5"]
    train("recommendation.scoring", data["train"], validation=data["validation"], output=directory / "bundle",
          overrides=overrides, backbone=str(backbone))
    return {**data, "bundle": directory / "bundle"}


def _items(path: Path) -> list[str]:
    with open(path, newline="", encoding="utf-8") as handle:
        return [row["book_id"] for row in csv.DictReader(handle)]


def test_recommendations_exclude_seen_items(trained: dict) -> None:
    rec = Recommender.load(trained["bundle"])
    task = rec.predictor.task
    seen = {task.catalogue_.ids[i] for i in task.histories_.seen["u0"]}
    everything = rec.recommend("u0", k=100)
    assert {s.item for s in everything}.isdisjoint(seen)
    assert len(everything) == 32 - len(seen)
    with_seen = rec.recommend("u0", k=100, exclude_seen=False)
    assert seen <= {s.item for s in with_seen}
    assert [s.score for s in everything] == sorted((s.score for s in everything), reverse=True)


def test_cold_items_are_ranked(trained: dict) -> None:
    rec = Recommender.load(trained["bundle"])
    ranked = rec.recommend("u1", k=100)
    cold = {s.item for s in ranked if s.cold}
    expected = set(_items(trained["catalogue"])) - set(_items(trained["train"]))
    assert "28" in expected and cold == expected  # in the index and flagged, though no one rated them
    scores = rec.score("u1", ["31", "1", "28"])
    assert list(scores) == ["31", "1", "28"]
    by_rank = {s.item: s.score for s in ranked}
    assert scores["31"] == pytest.approx(by_rank["31"], abs=1e-5)


def test_unknown_user_with_history(trained: dict) -> None:
    rec = Recommender.load(trained["bundle"])
    items = rec.recommend("newcomer", k=3, history=["0", "4"])
    assert len(items) == 3 and {"0", "4"}.isdisjoint({s.item for s in items})


def test_evaluate_reports_cold_metrics(trained: dict) -> None:
    evaluation = load(trained["bundle"]).evaluate(trained["validation"])
    trained_items = set(_items(trained["train"]))
    expected_cold = sum(item not in trained_items for item in _items(trained["validation"]))
    assert expected_cold >= 1 and evaluation.details["cold_cases"] == expected_cold
    for name in ("hr@10", "ndcg@10", "mrr", "recall@10_full", "ndcg@10_full", "hr@10_cold", "hr@10_warm"):
        assert 0.0 <= evaluation.metrics[name] <= 1.0
    assert evaluation.metrics["ndcg@10"] <= evaluation.metrics["hr@10"]


def test_cli_predict_and_evaluate(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["predict", str(trained["bundle"]), "--field", "user=u3", "--field", "k=4", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert rows[0]["user"] == "u3" and len(rows[0]["items"]) == 4
    assert cli(["predict", str(trained["bundle"]), "u3", "u4"]) == 0
    assert capsys.readouterr().out.count("user u") == 2
    # bare user ids plus --field: every user gets the extra fields
    assert cli(["predict", str(trained["bundle"]), "u3", "u4", "--field", "k=2", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [r["user"] for r in rows] == ["u3", "u4"] and all(len(r["items"]) == 2 for r in rows)
    code = cli(["predict", str(trained["bundle"]), "--input", str(trained["validation"]), "--field", "k=2"])
    assert code != 0 and "cannot be combined with --input" in capsys.readouterr().err
    out = Path(trained["bundle"]).parent / "streamed.jsonl"  # file to file streams; the fields are refused there too
    code = cli(["predict", str(trained["bundle"]), "--input", str(trained["validation"]), "--output", str(out),
                "--field", "k=2"])
    assert code != 0 and "cannot be combined with --input" in capsys.readouterr().err and not out.exists()
    assert cli(["evaluate", str(trained["bundle"]), "--data", str(trained["validation"]), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert {"hr@10", "ndcg@10", "mrr", "recall@10_full", "ndcg@10_full"} <= set(metrics)


def test_cli_train(trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sets = [arg for o in [*trained["overrides"], "training.epochs=1"] for arg in ("--set", o)]
    code = cli(["train", "recommendation.scoring", "--train", str(trained["train"]), "--output",
                str(tmp_path / "b"), "--backbone", str(Path(trained["bundle"]).parent / "tiny"), *sets, "--json"])
    assert code == 0
    assert "hr@10" in json.loads(capsys.readouterr().out)["metrics"]["validation"]
    # the core's 10 % holdout leaves a handful of validation positives: too few to fit the re-ranker on
    assert json.loads((tmp_path / "b" / "bundle.json").read_text(encoding="utf-8"))["state"]["reranker"] is None


def test_bundle_keeps_the_reranker_and_recommend_uses_it(trained: dict) -> None:
    bundle = Path(trained["bundle"])
    assert (bundle / "neighbours.safetensors").is_file()
    state = json.loads((bundle / "bundle.json").read_text(encoding="utf-8"))["state"]
    assert state["reranker"]["features"] == ["similarity", "log_popularity", "log_knn", "log_knn_recent"]
    rec = Recommender.load(bundle)
    task = rec.predictor.task
    assert task.reranker_ is not None
    scores, similarity = task.score_items([task.histories_.positives["u2"]])
    for item in rec.recommend("u2", k=6):
        row = task.catalogue_.index[item.item]
        assert item.score == pytest.approx(float(scores[0, row]), abs=1e-5)
        assert item.similarity == pytest.approx(float(similarity[0, row]), abs=1e-5)
    assert not np.allclose(scores, similarity)  # the score is the re-ranker's, not the cosine


def test_without_the_reranker_the_score_is_the_similarity(trained: dict, tmp_path: Path) -> None:
    overrides = [*trained["overrides"], "training.epochs=1", "training.batch_size=8", "task.rerank=false"]
    train("recommendation.scoring", trained["train"], validation=trained["validation"], output=tmp_path / "b",
          overrides=overrides, backbone=str(Path(trained["bundle"]).parent / "tiny"))
    assert json.loads((tmp_path / "b" / "bundle.json").read_text(encoding="utf-8"))["state"]["reranker"] is None
    items = Recommender.load(tmp_path / "b").recommend("u1", k=5)
    assert all(s.score == s.similarity for s in items)
    assert [s.score for s in items] == sorted((s.score for s in items), reverse=True)


def test_training_logs_each_epoch_and_keeps_the_history(trained: dict) -> None:
    """The two-tower loop printed `step N/M loss ...` and raw `epoch 1: {...}` dicts with print(); it now
    reports through the 'verticals' logger and stores one history entry per epoch, labelled as what it is:
    the two-tower's ranking metrics before the re-ranker."""
    info = json.loads((Path(trained["bundle"]) / "bundle.json").read_text(encoding="utf-8"))
    history = info["history"]
    assert [h["epoch"] for h in history] == [1, 2]
    for entry in history:
        assert entry["metrics_on"].startswith("validation, two-tower only")
        assert {"hr@10", "ndcg@10", "mrr"} <= set(entry["metrics"]) and entry["train_loss"] > 0
        assert entry["learning_rate"] is not None and entry["learning_rate"] >= 0
    assert sum(h["best"] for h in history) == 1
    best = next(h for h in history if h["best"])
    assert best["metrics"]["hr@10"] == info["state"]["training_log"]["best_validation"]


def test_console_lines_during_training(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    import logging

    caplog.set_level(logging.INFO, logger="verticals")
    data = write_split(tmp_path)
    train("recommendation.scoring", data["train"], validation=data["validation"], output=tmp_path / "b",
          overrides=[*data["overrides"], "training.epochs=2", "training.batch_size=8", "task.rerank=false"],
          backbone=str(make_tiny_backbone(tmp_path / "tiny")))
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    assert "validation, two-tower only" in lines[0] and "hr@10=" in lines[0] and "lr=" in lines[0]


def test_export_is_refused_with_one_line(trained: dict, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["export", str(trained["bundle"]), "--output", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "recommendation.scoring" in err and "cannot be exported to ONNX" in err
    assert not (tmp_path / "onnx").exists()


def test_embed_gives_the_indexed_item_vectors(trained: dict) -> None:
    predictor = load(trained["bundle"])
    texts = predictor.task.catalogue_.texts[:3]
    vectors = predictor.embed(texts)
    assert vectors.shape == (3, predictor.task.item_vectors_.shape[1]) and vectors.dtype == np.float32
    assert np.allclose(vectors, predictor.task.item_vectors_[:3], atol=1e-5)
