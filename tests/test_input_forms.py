"""Data in any form, at every verb (issue 16 items 1-2): a path, a pandas DataFrame, a datasets.Dataset, a
list of dicts or (predict) texts give the same records, metrics and predictions as the file; anything else
is a clear TypeError; a client's column names work through ``--set data.*`` / ``overrides``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import verticals
from verticals.conformance import INPUT_FORMS, input_form
from verticals.errors import ConfigError, DataError

from .conftest import FAST, conll_text, run_cli, text_rows, write_csv

pd = pytest.importorskip("pandas")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Any]:
    """Each core task type trained once; its validation file and raw rows."""
    root = tmp_path_factory.mktemp("forms")
    text_validation = write_csv(root / "text-val.csv", text_rows(4, 1))
    token_train, token_validation = root / "train.conll", root / "val.conll"
    token_train.write_text(conll_text(24, 0), encoding="utf-8")
    token_validation.write_text(conll_text(6, 1), encoding="utf-8")
    out = {}
    for task, train, validation in [("text-classification", write_csv(root / "text.csv", text_rows(8, 0)),
                                     text_validation),
                                    ("token-classification", token_train, token_validation)]:
        predictor = verticals.train(task, train, validation=validation, output=root / task, overrides=FAST,
                                    backbone=str(tiny_backbone))
        rows = [raw.data for raw in predictor.task.read_raw(validation)]
        out[task] = {"predictor": predictor, "validation": validation, "rows": rows, "bundle": root / task}
    return out


TASKS = ["text-classification", "token-classification"]


@pytest.mark.parametrize("form", INPUT_FORMS)
@pytest.mark.parametrize("task", TASKS)
def test_every_form_evaluates_and_predicts_like_the_file(trained, task: str, form: str, tmp_path: Path) -> None:
    result = trained[task]
    predictor, path = result["predictor"], result["validation"]
    data = input_form(form, path, result["rows"], tmp_path)
    assert [r.model_dump() for r in predictor.task.read(data)] == [r.model_dump() for r in predictor.task.read(path)]
    reference = predictor.evaluate(path)
    evaluation = predictor.evaluate(data)
    assert evaluation.n == reference.n == len(result["rows"])
    assert evaluation.metrics == pytest.approx(reference.metrics)
    predictions = predictor.predict(data)
    assert [p.model_dump() for p in predictions] == [p.model_dump() for p in predictor.predict(path)]


def test_a_dataframe_is_never_iterated_as_column_names(trained) -> None:
    # The measurement: 16 rows in, 2 predictions out (for the strings "text" and "label").
    predictor = trained["text-classification"]["predictor"]
    frame = pd.DataFrame(text_rows(16, 3)[:16])
    assert len(frame) == 16 and list(frame.columns) == ["text", "label"]
    predictions = predictor.predict(frame)
    assert len(predictions) == 16
    assert [p.label for p in predictions] == [p.label for p in predictor.predict(list(frame["text"]))]


def test_texts_where_the_task_allows_them(trained) -> None:
    text = trained["text-classification"]["predictor"]
    rows = trained["text-classification"]["rows"]
    assert [p.label for p in text.predict([r["text"] for r in rows])] == [p.label for p in text.predict(rows)]
    token = trained["token-classification"]["predictor"]
    (prediction,) = token.predict(["Alice Smith flew to Oslo ."])
    assert prediction.tokens == ["Alice", "Smith", "flew", "to", "Oslo", "."]
    with pytest.raises(DataError, match=r"<list>: row 1: a bare text has no label"):
        text.evaluate([rows[0], "just a text"])


def test_train_takes_dataframe_dataset_and_records(trained, tiny_backbone: Path, tmp_path: Path) -> None:
    datasets = pytest.importorskip("datasets")
    train_rows, validation_rows, test_rows = text_rows(8, 0), text_rows(3, 1), text_rows(2, 2)
    predictor = verticals.train("text-classification", pd.DataFrame(train_rows),
                                validation=datasets.Dataset.from_list(validation_rows), test=test_rows,
                                output=tmp_path / "b", overrides=[*FAST, "training.epochs=1"],
                                backbone=str(tiny_backbone))
    data = json.loads((tmp_path / "b" / "bundle.json").read_text(encoding="utf-8"))["data"]
    assert [data[s]["source"] for s in ("train", "validation", "test")] == ["<DataFrame>", "<Dataset>", "<list>"]
    assert [data[s]["records"] for s in ("train", "validation", "test")] == [24, 9, 6]
    assert set(predictor.evaluate(test_rows).metrics) >= {"accuracy", "macro_f1"}
    # The same rows in any in-memory form have one fingerprint (the digest of the validated records).
    task = predictor.task
    digests = {verticals.data.records.data_fingerprint(form, task.read(form))["sha256"]
               for form in (train_rows, pd.DataFrame(train_rows), datasets.Dataset.from_list(train_rows))}
    assert digests == {data["train"]["sha256"]}


@pytest.mark.parametrize(("make", "fragment"), [
    (lambda rows: {"text": "one record"}, "predict_one"),
    (lambda rows: "not a file.csv", "not an existing file"),
    (lambda rows: pd.DataFrame(rows)["text"], r"Series.tolist\(\)"),
    (lambda rows: pd.DataFrame(rows).to_numpy(), r"ndarray.tolist\(\)"),
    (lambda rows: 42, "got int"),
    (lambda rows: iter(rows), r"got list_iterator; pass list\(...\)"),
])
def test_other_inputs_are_refused_with_what_is_expected(trained, make, fragment: str) -> None:
    predictor = trained["text-classification"]["predictor"]
    with pytest.raises(TypeError, match=fragment):
        predictor.predict(make(trained["text-classification"]["rows"]))


def test_evaluate_refuses_a_dict_and_a_datasetdict(trained) -> None:
    predictor = trained["text-classification"]["predictor"]
    with pytest.raises(TypeError, match=r"wrap one record in a list"):
        predictor.evaluate({"text": ["a"], "label": ["billing"]})
    datasets = pytest.importorskip("datasets")
    splits = datasets.DatasetDict({"test": datasets.Dataset.from_list(trained["text-classification"]["rows"])})
    with pytest.raises(TypeError, match=r"pass one, e.g. data\['train'\]"):
        predictor.evaluate(splits)


def test_in_memory_errors_name_the_row(trained, tmp_path: Path) -> None:
    predictor = trained["text-classification"]["predictor"]
    rows = [dict(r) for r in trained["text-classification"]["rows"]]
    rows[3]["label"] = None
    with pytest.raises(DataError, match=r"^<DataFrame>: row 3: field 'label': empty label"):
        predictor.evaluate(pd.DataFrame(rows))
    rows[3] = {"body": "no text"}
    with pytest.raises(DataError, match=r"^<list>: row 3: field 'text': missing column 'text'"):
        predictor.evaluate(rows)
    with pytest.raises(DataError, match=r"^<DataFrame>: no records"):
        predictor.evaluate(pd.DataFrame(columns=["text", "label"]))
    with pytest.raises(DataError, match=r"^<list>: row 0: field 'text': text holds a lone surrogate"):
        predictor.predict([{"text": "bad \ud800"}])


def client_file(tmp_path: Path, rows: list[dict[str, str]]) -> Path:
    return write_csv(tmp_path / "client.csv", [{"utterance": r["text"], "intent": r["label"]} for r in rows])


def test_client_columns_through_overrides(trained, tmp_path: Path) -> None:
    predictor = trained["text-classification"]["predictor"]
    rows = trained["text-classification"]["rows"]
    client = client_file(tmp_path, rows)
    with pytest.raises(DataError, match=r"missing column 'text' \(found: utterance, intent\); set data.text_column"):
        predictor.evaluate(client)
    columns = ["data.text_column=utterance", "data.label_column=intent"]
    expected = predictor.evaluate(trained["text-classification"]["validation"])
    assert predictor.evaluate(client, overrides=columns).metrics == pytest.approx(expected.metrics)
    frame = pd.read_csv(client)
    as_dict = {"data": {"text_column": "utterance", "label_column": "intent"}}
    assert predictor.evaluate(frame, overrides=as_dict).metrics == pytest.approx(expected.metrics)
    loaded = verticals.load(trained["text-classification"]["bundle"], overrides=columns)
    assert [p.label for p in loaded.predict(client)] == [p.label for p in predictor.predict(rows)]
    assert predictor.task.data_options.text_column == "text"  # the original predictor is unchanged
    with pytest.raises(ConfigError, match="training options were fixed"):
        predictor.evaluate(client, overrides=["training.epochs=3"])
    with pytest.raises(ConfigError, match="data.validation_fraction: fixed when the bundle was trained"):
        predictor.evaluate(client, overrides=["data.validation_fraction=0.2"])


def test_cli_verbs_take_data_set(trained, tmp_path: Path) -> None:
    bundle = trained["text-classification"]["bundle"]
    client = client_file(tmp_path, trained["text-classification"]["rows"])
    columns = ["--set", "data.text_column=utterance", "--set", "data.label_column=intent"]
    result = run_cli("evaluate", str(bundle), "--data", str(client), *columns, "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["n"] == len(trained["text-classification"]["rows"])
    out = tmp_path / "p.jsonl"
    result = run_cli("predict", str(bundle), "--input", str(client), "--output", str(out), *columns[:2])
    assert result.returncode == 0, result.stderr
    assert len(out.read_text(encoding="utf-8").splitlines()) == len(trained["text-classification"]["rows"])
    result = run_cli("evaluate", str(bundle), "--data", str(client), "--set", "training.epochs=1")
    assert result.returncode == 2 and "only data.* options" in result.stderr


def write_as(path: Path, rows: list[dict[str, Any]]) -> Path:
    """``rows`` written in the format of ``path``'s extension."""
    kind = path.suffix[1:]
    if kind in ("csv", "tsv"):
        lines = ["\t".join(rows[0]) if kind == "tsv" else ",".join(rows[0])]
        lines += ["\t".join(r.values()) if kind == "tsv" else ",".join(r.values()) for r in rows]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    elif kind == "jsonl":
        path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    elif kind == "json":
        path.write_text(json.dumps(rows, indent=1), encoding="utf-8")
    elif kind == "conll":
        path.write_text("\n\n".join("\n".join(f"{t}\t{g}" for t, g in zip(r["tokens"], r["tags"])) for r in rows)
                        + "\n", encoding="utf-8")
    else:
        pa, pq = pytest.importorskip("pyarrow"), pytest.importorskip("pyarrow.parquet")
        pq.write_table(pa.Table.from_pylist(rows), path)
    return path


@pytest.mark.parametrize(("task", "kind"), [
    *[("text-classification", k) for k in ("csv", "tsv", "jsonl", "json", "parquet")],
    *[("token-classification", k) for k in ("conll", "jsonl", "json", "parquet")],
])
def test_every_file_format_through_evaluate_and_predict(trained, task: str, kind: str, tmp_path: Path) -> None:
    """One reader: what evaluate reads, predict reads too (a Parquet file was read as text by evaluate)."""
    result = trained[task]
    predictor, rows = result["predictor"], result["rows"]
    path = write_as(tmp_path / f"data.{kind}", rows)
    reference = predictor.evaluate(result["validation"])
    assert predictor.evaluate(path).metrics == pytest.approx(reference.metrics)
    assert len(predictor.predict(path)) == len(rows)
    if kind == "parquet":
        cli = run_cli("evaluate", str(result["bundle"]), "--data", str(path), "--json")
        assert cli.returncode == 0, cli.stderr
        assert json.loads(cli.stdout)["metrics"] == pytest.approx(reference.metrics)


def test_serve_and_report_take_data_overrides(trained, tmp_path: Path) -> None:
    pytest.importorskip("fastapi")
    pytest.importorskip("matplotlib")
    from fastapi.testclient import TestClient
    from verticals.delivery.report import write_report
    from verticals.delivery.serve import create_app

    result = trained["text-classification"]
    client = client_file(tmp_path, result["rows"])
    columns = ["data.text_column=utterance", "data.label_column=intent"]
    app = create_app([result["bundle"]], engine="torch", overrides=columns)
    with TestClient(app) as http:
        response = http.post(f"/v1/models/{result['bundle'].name}/predict",
                             headers={"content-type": "application/json"},  # ASCII JSON: "\ud800" escaped
                             content=json.dumps({"inputs": [*({"utterance": r["text"]} for r in result["rows"][:3]),
                                                            {"utterance": "a lone surrogate \ud800"}]}))
    assert response.status_code == 200, response.text
    *good, bad = response.json()["results"]
    expected = [p.label for p in result["predictor"].predict(result["rows"][:3])]
    assert [r["prediction"]["label"] for r in good] == expected
    assert not bad["ok"] and "lone surrogate" in bad["error"]["message"]  # that record fails alone, no 500
    report = write_report(result["bundle"], client, tmp_path / "report", overrides=columns)
    assert report.n == len(result["rows"])


def test_a_dataframe_read_by_pandas_reads_like_its_csv(tmp_path: Path) -> None:
    """pd.read_csv types columns (ids and labels become int64); the records must equal the CSV's."""
    task, _, _ = verticals.api.build_task("text-classification")
    path = write_csv(tmp_path / "t.csv", [{"text": "first", "label": "1"}, {"text": "second", "label": "2"}])
    assert [r.model_dump() for r in task.read(pd.read_csv(path))] == [r.model_dump() for r in task.read(path)]
