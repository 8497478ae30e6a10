"""finance.fraud: bad input, preprocessing saved/restored, cost-based threshold, metrics, CLI."""

import json
from pathlib import Path

import numpy as np
import pytest
from finance_testdata import fraud_overrides, fraud_rows, write_csv
from verticals import DataError, build_task, load, train
from verticals.cli import main as cli
from verticals_finance.fraud.metrics import choose_threshold, fraud_metrics


def fraud_task(*extra: str):  # type: ignore[no-untyped-def]
    task, _, _ = build_task("finance.fraud", overrides=fraud_overrides(text=False) + list(extra))
    return task


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tabular-only fraud bundle (no backbone needed: seconds to train)."""
    root = tmp_path_factory.mktemp("fraud")
    train_rows = fraud_rows(80, seed=0)
    train_rows[1]["category"] = "rare-once"  # seen once: below min_category_count, shares the unknown slot
    write_csv(root / "train.csv", train_rows)
    write_csv(root / "validation.csv", fraud_rows(40, seed=1))
    write_csv(root / "test.csv", fraud_rows(40, seed=2))
    train("finance.fraud", root / "train.csv", validation=root / "validation.csv", output=root / "bundle",
          overrides=fraud_overrides(text=False) + ["training.epochs=20", "task.cost_false_negative=25"])
    return root


# ---- bad input ---------------------------------------------------------------------------------------
@pytest.mark.parametrize(("column", "value", "reason"), [
    ("amount", "nan", "finite number"),
    ("amount", "inf", "finite number"),
    ("v1", "-Infinity", "finite number"),
    ("amount", "12,50 EUR", "expected a number"),
    ("amount", "", "expected a number, found an empty value"),
    ("is_fraud", "2", "label must be 0 (legitimate) or 1 (fraud)"),
    ("is_fraud", "yes", "label must be 0"),
    ("is_fraud", "", "empty label"),
])
def test_bad_cells_name_row_and_column(tmp_path: Path, column: str, value: str, reason: str) -> None:
    rows = fraud_rows(4)
    rows[2][column] = value
    path = write_csv(tmp_path / "bad.csv", rows)
    with pytest.raises(DataError) as err:
        fraud_task().read(path)
    assert (err.value.line, err.value.field) == (4, column)  # header is line 1, rows[2] is line 4
    assert reason in str(err.value)


def test_missing_declared_column(tmp_path: Path) -> None:
    rows = [{k: v for k, v in row.items() if k != "category"} for row in fraud_rows(3)]
    with pytest.raises(DataError, match="missing declared column 'category'") as err:
        fraud_task().read(write_csv(tmp_path / "bad.csv", rows))
    assert err.value.line == 2 and err.value.field == "category"


def test_jsonl_nan_and_types(tmp_path: Path) -> None:
    path = tmp_path / "bad.jsonl"
    path.write_text('{"amount": 1.5, "v1": 0, "category": "atm", "is_fraud": true}\n'
                    '{"amount": NaN, "v1": 0, "category": "atm", "is_fraud": 0}\n', encoding="utf-8")
    with pytest.raises(DataError, match="finite number") as err:
        fraud_task().read(path)
    assert (err.value.line, err.value.field) == (2, "amount")


def test_columns_must_be_declared() -> None:
    from verticals import ConfigError

    task, _, _ = build_task("finance.fraud")
    with pytest.raises(ConfigError, match="data.numeric_columns"):
        task.as_record({"amount": 1})


def test_training_needs_both_classes(tmp_path: Path) -> None:
    rows = [r for r in fraud_rows(40) if r["is_fraud"] == 0]
    path = write_csv(tmp_path / "legit.csv", rows)
    with pytest.raises(DataError, match="only label 0"):
        train("finance.fraud", path, output=tmp_path / "b", overrides=fraud_overrides(text=False))


# ---- threshold and metrics ---------------------------------------------------------------------------
def test_threshold_minimises_expected_cost() -> None:
    y = np.array([1, 0, 1, 0, 0])
    p = np.array([0.9, 0.8, 0.7, 0.3, 0.1])
    # missed fraud is expensive: flag the top 3 (one false alarm) rather than miss the fraud at 0.7
    assert choose_threshold(y, p, cost_fn=10, cost_fp=1) == (pytest.approx(0.5), pytest.approx(1 / 5))
    # false alarms are expensive: flag only the top score (one miss costs 1 < one alarm costs 10)
    assert choose_threshold(y, p, cost_fn=1, cost_fp=10) == (pytest.approx(0.85), pytest.approx(1 / 5))
    # each legit record stands for 100: one alarm (100) is worse than a miss (10), so stop at the top score
    assert choose_threshold(y, p, cost_fn=10, cost_fp=1, negative_weight=100) == (
        pytest.approx(0.85), pytest.approx(10 / 302))


def test_threshold_never_splits_tied_scores() -> None:
    y = np.array([1, 0, 0])
    p = np.array([0.5, 0.5, 0.1])  # flagging the fraud means flagging its tied legit twin too
    threshold, cost = choose_threshold(y, p, cost_fn=10, cost_fp=1)
    assert threshold == pytest.approx(0.3) and cost == pytest.approx(1 / 3)


def test_fraud_metrics_match_definitions() -> None:
    from sklearn.metrics import average_precision_score, roc_auc_score

    rng = np.random.default_rng(0)
    y = (rng.random(400) < 0.2).astype(int)
    p = np.clip(y * 0.4 + rng.random(400) * 0.7, 0, 1)
    metrics, per_label, details = fraud_metrics(y, p, 0.6, 10.0, 1.0)
    assert metrics["auprc"] == pytest.approx(average_precision_score(y, p))
    assert metrics["roc_auc"] == pytest.approx(roc_auc_score(y, p))
    fpr_ok = [t for t in np.unique(p) if ((p >= t) & (y == 0)).sum() / (y == 0).sum() <= 0.01]
    assert metrics["recall_at_1pct_fpr"] == pytest.approx(((p >= min(fpr_ok)) & (y == 1)).sum() / y.sum())
    c = details["confusion"]
    assert metrics["recall"] == pytest.approx(c["tp"] / (c["tp"] + c["fn"]))
    assert metrics["expected_cost"] == pytest.approx((10 * c["fn"] + c["fp"]) / 400)


# ---- bundle: preprocessing and threshold saved and restored ------------------------------------------
def test_preprocessing_fitted_on_train_only_and_restored(bundle: Path) -> None:
    saved = json.loads((bundle / "bundle" / "preprocessing.json").read_text())
    train_amounts = np.array([r["amount"] for r in fraud_rows(80, seed=0)])
    assert saved["numeric"]["amount"]["mean"] == pytest.approx(train_amounts.mean())
    assert saved["numeric"]["amount"]["scale"] == pytest.approx(train_amounts.std())
    assert "rare-once" not in saved["categories"]["category"]
    assert saved["categories"]["category"][0] == "<unknown>"
    predictor = load(bundle / "bundle")
    rows = [{"amount": 40.0, "v1": -0.5, "category": "never-seen", "is_fraud": 0}]
    x = predictor.task.preprocessor_.transform([predictor.task.as_record(r).model_extra for r in rows])
    assert x[0, 0] == pytest.approx((40.0 - train_amounts.mean()) / train_amounts.std(), rel=1e-5)
    assert x[0, 2] == 1.0  # the unknown slot


def test_threshold_is_stored_and_used(bundle: Path) -> None:
    info = json.loads((bundle / "bundle" / "bundle.json").read_text())
    threshold = info["state"]["threshold"]
    assert 0.0 < threshold <= 1.0 + 1e-9
    assert info["config"]["task"]["cost_false_negative"] == 25
    predictor = load(bundle / "bundle")
    predictions = predictor.predict([r for r in fraud_rows(20, seed=3)])
    assert all(p.threshold == threshold and p.label == int(p.score >= threshold) for p in predictions)
    evaluation = predictor.evaluate(bundle / "test.csv")
    assert evaluation.metrics["auprc"] > 0.9  # the tiny data is nearly separable
    assert evaluation.details["threshold"] == threshold


def test_cli_train_evaluate_predict(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sets = [arg for o in fraud_overrides(text=False) for arg in ("--set", o)]
    out = tmp_path / "cli-bundle"
    assert cli(["train", "finance.fraud", "--train", str(bundle / "train.csv"), "--validation",
                str(bundle / "validation.csv"), "--output", str(out), "--json", *sets]) == 0
    capsys.readouterr()
    assert cli(["evaluate", str(out), "--data", str(bundle / "test.csv"), "--json"]) == 0
    metrics = json.loads(capsys.readouterr().out)["metrics"]
    assert {"auprc", "roc_auc", "recall_at_1pct_fpr", "expected_cost"} <= set(metrics)
    assert cli(["predict", str(out), "--input", str(bundle / "test.csv"), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert len(rows) == 40 and {"label", "score", "threshold"} == set(rows[0])
    assert cli(["predict", str(out), "--field", "amount=950", "--field", "v1=2.1", "--field", "category=online"]) == 0
    assert capsys.readouterr().out.startswith("1 (")
    bad = write_csv(tmp_path / "bad.csv", [dict(fraud_rows(1)[0], amount="abc")])
    assert cli(["evaluate", str(out), "--data", str(bad)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "bad.csv:2: field 'amount'" in err


def test_evaluate_json_on_one_class_is_strict_json(bundle: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # Ranking metrics are undefined on one class (NaN); `evaluate --json` printed a bare NaN, which strict
    # JSON parsers (jq, JavaScript, json.loads with parse_constant) refuse.
    legit = write_csv(tmp_path / "legit.csv", [r for r in fraud_rows(40, seed=3) if r["is_fraud"] == 0])
    assert cli(["evaluate", str(bundle / "bundle"), "--data", str(legit), "--json"]) == 0

    def refuse(name: str) -> None:
        raise AssertionError(f"not JSON: {name}")

    result = json.loads(capsys.readouterr().out, parse_constant=refuse)
    assert result["metrics"]["roc_auc"] is None
    assert any("metrics.roc_auc" in note and "null" in note for note in result["notes"])


def test_serve_docs_example_shows_the_declared_columns(bundle: Path) -> None:
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    client = TestClient(create_app([bundle / "bundle"]))
    spec = client.get("/openapi.json").json()
    body = spec["paths"]["/v1/models/bundle/predict"]["post"]["requestBody"]["content"]["application/json"]
    examples = [e["value"] for e in body["examples"].values()]
    record = examples[0]["inputs"][0]
    assert set(record) == {"amount", "v1", "category"}  # no label, no additionalProp1
    assert isinstance(record["amount"], float) and isinstance(record["category"], str)
    answer = client.post("/v1/models/bundle/predict", json=examples[0]).json()["results"][0]
    assert answer["ok"] and 0 <= answer["prediction"]["score"] <= 1


# ---- training console --------------------------------------------------------------------------------
def test_training_reports_every_epoch_of_every_head(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """finance.fraud used to print nothing until it ended: each head's epochs are logged as they end and
    kept in bundle.json, the kept (best) epoch of each head marked."""
    import logging

    caplog.set_level(logging.INFO, logger="verticals")
    write_csv(tmp_path / "train.csv", fraud_rows(60, seed=0))
    write_csv(tmp_path / "validation.csv", fraud_rows(30, seed=1))
    predictor = train("finance.fraud", tmp_path / "train.csv", validation=tmp_path / "validation.csv",
                      output=tmp_path / "bundle", overrides=fraud_overrides(text=False) + [
                          "training.epochs=3", "task.ensemble=2", "training.early_stopping_patience=null"])
    lines = [r.getMessage() for r in caplog.records if r.name == "verticals" and " epoch " in f" {r.getMessage()}"
             and not r.getMessage().startswith(("best", "head 1/2 best", "head 2/2 best"))]
    assert [line.split(" epoch ")[1].split()[0] for line in lines] == ["1/3", "2/3", "3/3"] * 2, lines
    assert lines[0].startswith("head 1/2 epoch 1/3") and "auprc=" in lines[0] and "roc_auc=" in lines[0]
    assert "validation, this head alone:" in lines[0] and "left" in lines[0]
    history = json.loads((tmp_path / "bundle" / "bundle.json").read_text())["history"]
    assert len(history) == 6 and [h["run"] for h in history] == ["head 1/2"] * 3 + ["head 2/2"] * 3
    assert sum(h["best"] for h in history if h["run"] == "head 1/2") == 1
    assert predictor.info.history == history


def test_callbacks_and_report_to_need_a_transformers_trainer(tmp_path: Path) -> None:
    from verticals import ConfigError

    write_csv(tmp_path / "train.csv", fraud_rows(20, seed=0))
    with pytest.raises(ConfigError, match="not trained by transformers.Trainer"):
        train("finance.fraud", tmp_path / "train.csv", output=tmp_path / "bundle",
              overrides=fraud_overrides(text=False) + ["training.report_to=tensorboard"])
    assert not (tmp_path / "bundle").exists()


def test_export_is_refused_with_one_line(bundle: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli(["export", str(bundle / "bundle"), "--output", str(tmp_path / "onnx")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1
    assert "finance.fraud" in err and "cannot be exported to ONNX" in err and "verticals serve" in err
    assert not (tmp_path / "onnx").exists()


# ---- the report a client reads -----------------------------------------------------------------------
def test_report_names_labels_states_cost_unit_and_warns_on_small_samples(bundle: Path, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from verticals.delivery.report import write_report

    result = write_report(bundle / "bundle", bundle / "test.csv", tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<td>fraud</td>" in page and "<td>1</td>" not in page  # the pack's names, not 0/1
    assert "0 = legitimate" in page and "1 = fraud" in page
    # expected_cost with its unit and the costs it was computed with (the bundle was trained with 25)
    assert "cost units per transaction" in page and "missed fraud costs 25" in page
    assert "auprc" in page and "average_precision" not in page and "average_precision" not in result.metrics
    assert "Only 40 records" in page
    card = (tmp_path / "r" / "model_card.md").read_text()
    assert "cost units per transaction" in card and "legitimate" in card


def test_cost_unit_is_configurable() -> None:
    notes = fraud_task("task.cost_unit=EUR", "task.cost_false_positive=2").metric_notes()
    assert notes["expected_cost"].startswith("EUR per transaction") and "false alarm costs 2" in notes["expected_cost"]


def test_card_from_the_bundle_alone_has_names_and_units(bundle: Path, tmp_path: Path) -> None:
    assert cli(["card", str(bundle / "bundle"), "--output", str(tmp_path / "card.md")]) == 0
    card = (tmp_path / "card.md").read_text()
    assert "Labels: 0 = legitimate, 1 = fraud." in card
    assert "`expected_cost`: cost units per transaction (a missed fraud costs 25" in card


def test_embed_says_there_is_no_fine_tuned_encoder(bundle: Path) -> None:
    from verticals import ConfigError

    with pytest.raises(ConfigError, match="finance.fraud.*no fine-tuned sentence encoder"):
        load(bundle / "bundle").embed(["quick cash ltd"])
