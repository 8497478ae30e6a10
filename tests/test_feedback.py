"""Feedback through `verticals serve`: prediction ids, POST /v1/models/{name}/feedback, the opt-in prediction
log with its retention limit, and `verticals feedback export` (format, merging, conflicts, overwrite)."""

from __future__ import annotations

import contextlib
import json
import shutil
import sqlite3
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

import verticals  # noqa: E402
from verticals.bundles.outputs import file_sha256  # noqa: E402
from verticals.cli import main  # noqa: E402
from verticals.delivery.serve import create_app  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins  # noqa: E402

from .conftest import db_rows, serve_in_thread  # noqa: E402

WORDS = {"pos": ["great", "good", "love", "excellent"], "neg": ["bad", "awful", "hate", "poor"]}
# Custom column names: the export must write the bundle's own, not the record's field names.
COLUMNS = ["data.text_column=utterance", "data.label_column=intent"]


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("feedback")
    rows = [{"utterance": f"{WORDS[lab][i % 4]} {WORDS[lab][(i + 1) % 4]} film", "intent": lab}
            for i in range(12) for lab in WORDS]
    (root / "tc.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    tokens = [{"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]},
              {"tokens": ["Mary", "visited", "Berlin"], "tags": ["B-PER", "O", "B-LOC"]}] * 6
    (root / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in tokens), encoding="utf-8")
    backbone = str(make_tiny_backbone(root / "tiny"))
    with only_plugins():
        verticals.train("text-classification", root / "tc.jsonl", output=root / "sentiment", backbone=backbone,
                        overrides=["training.epochs=1", *COLUMNS])
        verticals.train("token-classification", root / "ner.jsonl", output=root / "ner", backbone=backbone,
                        overrides=["training.epochs=1"])
    return {"sentiment": root / "sentiment", "ner": root / "ner", "root": root}


@contextlib.contextmanager
def serving(app) -> Iterator[httpx.Client]:  # type: ignore[no-untyped-def]
    """A real uvicorn server on a loopback port, in a thread; shut down (lifespan included) on exit."""
    with serve_in_thread(app) as port, httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
        yield client


def app_for(bundles: dict[str, Path], **kwargs):  # type: ignore[no-untyped-def]
    with only_plugins():
        return create_app([bundles["sentiment"], bundles["ner"]], engine="torch", **kwargs)


def rows(db: Path | str, sql: str = "SELECT * FROM feedback ORDER BY id") -> list[dict]:  # type: ignore[type-arg]
    return db_rows(db, sql)


def test_every_predicted_result_has_an_id_and_feedback_needs_a_db(bundles: dict[str, Path]) -> None:
    with serving(app_for(bundles)) as client:
        answer = client.post("/v1/models/sentiment/predict", json={"inputs": ["great film", "bad film", ""]})
        results = answer.json()["results"]
        ids = [r["prediction_id"] for r in results[:2]]
        assert all(len(i) == 32 and int(i, 16) >= 0 for i in ids) and ids[0] != ids[1]
        assert results[2]["ok"] is False and results[2]["prediction_id"] is None
        schema = client.get("/openapi.json").json()["components"]["schemas"]
        assert "prediction_id" in schema["SentimentPredictResult"]["properties"]
        refused = client.post("/v1/models/sentiment/feedback", json={"prediction_id": ids[0], "label": "neg"})
        assert refused.status_code == 503 and "--feedback-db" in refused.json()["detail"]


def test_feedback_by_prediction_id_is_stored_with_the_logged_input(bundles: dict[str, Path],
                                                                   feedback_db: Path | str) -> None:
    db = feedback_db
    with serving(app_for(bundles, feedback_db=db, log_predictions=True)) as client:
        pid = client.post("/v1/models/sentiment/predict", json={"inputs": ["great film"]}).json()["results"][0][
            "prediction_id"]
        answer = client.post("/v1/models/sentiment/feedback", json={"prediction_id": pid, "label": "neg",
                                                                      "comment": "sarcasm"})
        assert answer.status_code == 200, answer.text
        assert answer.json() == {"feedback_id": 1, "stored": True}
        # committed before the answer: another connection sees it while the server still runs
        (row,) = rows(db)
        assert json.loads(row["input"]) == {"text": "great film"} and row["label"] == "neg"
        assert row["prediction_id"] == pid and json.loads(row["predicted"])["label"] in WORDS
        assert row["comment"] == "sarcasm"
        other = client.post("/v1/models/ner/feedback", json={"prediction_id": pid, "tags": ["O", "O"]})
        assert other.status_code == 422 and "of model 'sentiment'" in other.json()["detail"]


def test_without_logging_an_id_alone_is_refused_and_input_works(bundles: dict[str, Path],
                                                                feedback_db: Path | str) -> None:
    db = feedback_db
    with serving(app_for(bundles, feedback_db=db)) as client:
        pid = client.post("/v1/models/sentiment/predict", json={"inputs": ["good film"]}).json()["results"][0][
            "prediction_id"]
        alone = client.post("/v1/models/sentiment/feedback", json={"prediction_id": pid, "label": "pos"})
        assert alone.status_code == 422 and "--log-predictions" in alone.json()["detail"]
        given = client.post("/v1/models/sentiment/feedback",
                            json={"prediction_id": pid, "input": {"utterance": "good film"}, "label": "pos"})
        assert given.status_code == 200
    assert rows(db, "SELECT count(*) AS n FROM predictions")[0]["n"] == 0  # nothing kept unless asked (privacy)
    assert json.loads(rows(db)[0]["input"]) == {"text": "good film"}


def test_labels_are_validated_against_the_model(bundles: dict[str, Path], feedback_db: Path | str) -> None:
    with serving(app_for(bundles, feedback_db=feedback_db)) as client:
        def post(name: str, body: dict) -> httpx.Response:  # type: ignore[type-arg]
            return client.post(f"/v1/models/{name}/feedback", json=body)

        wrong = post("sentiment", {"input": "great film", "label": "neutral"})
        assert wrong.status_code == 422 and "allowed: neg, pos" in wrong.json()["detail"]
        assert post("nope", {"input": "great film", "label": "pos"}).status_code == 404
        assert post("ner", {"input": "John lives in Paris", "label": "PER"}).status_code == 422
        assert post("sentiment", {"input": "great film", "tags": ["O"]}).status_code == 422
        short = post("ner", {"input": "John lives in Paris", "tags": ["B-PER", "O"]})
        assert short.status_code == 422 and "4 tokens" in short.json()["detail"]
        unknown = post("ner", {"input": "John lives in Paris", "tags": ["B-ORG", "O", "O", "B-LOC"]})
        assert unknown.status_code == 422 and "B-LOC" in unknown.json()["detail"]
        dangling = post("ner", {"input": "John lives in Paris", "tags": ["I-PER", "O", "O", "B-LOC"]})
        assert dangling.status_code == 422
        good = post("ner", {"input": "John lives in Paris", "tags": ["B-PER", "O", "O", "B-LOC"]})
        assert good.status_code == 200, good.text
        # or the entities, as a prediction lists them (token indices, end exclusive)
        spans = [{"type": "PER", "start": 0, "end": 2}, {"type": "LOC", "start": 3, "end": 4}]
        assert post("ner", {"input": "Mary Smith visits Oslo", "entities": spans}).status_code == 200
        overlap = post("ner", {"input": "Mary Smith visits Oslo", "entities": spans + [{"type": "PER", "start": 1,
                                                                                          "end": 3}]})
        assert overlap.status_code == 422 and "overlaps" in overlap.json()["detail"]
        outside = post("ner", {"input": "Mary", "entities": [{"type": "PER", "start": 0, "end": 2}]})
        assert outside.status_code == 422 and "outside" in outside.json()["detail"]
        assert post("ner", {"input": "Mary", "entities": [{"type": "ORG", "start": 0, "end": 1}]}).status_code == 422
    stored = rows(feedback_db, "SELECT tags FROM feedback ORDER BY id")
    assert [json.loads(r["tags"]) for r in stored] == [["B-PER", "O", "O", "B-LOC"], ["B-PER", "I-PER", "O", "B-LOC"]]


def test_feedback_needs_the_api_key_like_predict(bundles: dict[str, Path], tmp_path: Path) -> None:
    with serving(app_for(bundles, feedback_db=tmp_path / "fb.db", api_key="s3cret")) as client:
        body = {"input": "great film", "label": "pos"}
        assert client.post("/v1/models/sentiment/feedback", json=body).status_code == 401
        ok = client.post("/v1/models/sentiment/feedback", json=body, headers={"X-API-Key": "s3cret"})
        assert ok.status_code == 200


def test_prediction_log_keeps_only_the_retention_limit(bundles: dict[str, Path], feedback_db: Path | str) -> None:
    db = feedback_db
    with serving(app_for(bundles, feedback_db=db, log_predictions=True, log_retention="3")) as client:
        ids = [client.post("/v1/models/sentiment/predict", json={"inputs": [f"good film {i}"]}).json()["results"][0]
               ["prediction_id"] for i in range(5)]
        kept = {r["id"] for r in rows(db, "SELECT id FROM predictions")}
        assert kept == set(ids[-3:])
        expired = client.post("/v1/models/sentiment/feedback", json={"prediction_id": ids[0], "label": "pos"})
        assert expired.status_code == 422 and "retention" in expired.json()["detail"]


def test_log_predictions_needs_a_db(bundles: dict[str, Path]) -> None:
    from verticals.errors import ConfigError

    with pytest.raises(ConfigError, match="feedback_db='FILE'"):  # a Python caller reads the keyword
        app_for(bundles, log_predictions=True)
    with pytest.raises(ConfigError, match="log_retention"):
        app_for(bundles, feedback_db=bundles["root"] / "never.db", log_retention="a week")


def export(*args: str, capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(["feedback", "export", *args])
    out, err = capsys.readouterr()
    return code, out, err


def test_export_merges_duplicates_lists_conflicts_and_retrains(
        bundles: dict[str, Path], tmp_path: Path, feedback_db: Path | str, capsys: pytest.CaptureFixture[str],
) -> None:
    db = feedback_db
    with serving(app_for(bundles, feedback_db=db, log_predictions=True)) as client:
        def post(body: dict) -> None:  # type: ignore[type-arg]
            assert client.post("/v1/models/sentiment/feedback", json=body).status_code == 200

        for _ in range(3):
            post({"input": "not good at all", "label": "neg"})  # duplicates: one record
        post({"input": "love it", "label": "pos"})
        post({"input": "poor but fun", "label": "pos"})  # conflict: listed, not chosen
        post({"input": "poor but fun", "label": "neg"})
        post({"input": "whatever", "comment": "no idea"})  # no correction
        pid = client.post("/v1/models/sentiment/predict", json={"inputs": ["excellent film"]}).json()["results"][0]
        predicted = pid["prediction"]["label"]
        post({"prediction_id": pid["prediction_id"], "wrong": True})  # two labels: wrong = the other one
    output, conflicts = tmp_path / "feedback.csv", tmp_path / "conflicts.jsonl"
    code, out, err = export(str(db), "--model", "sentiment", "--output", str(output), "--conflicts", str(conflicts),
                            capsys=capsys)
    assert code == 0, err
    assert "2 duplicates merged, 1 conflicting inputs left out, 1 without a correction" in out
    assert f"sha256 {file_sha256(output)}" in out
    assert "conflict" in err and "poor but fun" in err
    lines = output.read_text(encoding="utf-8").splitlines()
    other = "neg" if predicted == "pos" else "pos"
    assert lines[0] == "utterance,intent"  # the bundle's own column names
    assert sorted(lines[1:]) == sorted(["not good at all,neg", "love it,pos", f"excellent film,{other}"])
    (conflict,) = [json.loads(line) for line in conflicts.read_text(encoding="utf-8").splitlines()]
    assert {c["correction"] for c in conflict["corrections"]} == {"pos", "neg"}
    # the export is training data for the same task; the new bundle's fingerprint is the printed sha256
    with only_plugins():
        retrained = verticals.train("text-classification", output, validation=output, output=tmp_path / "again",
                                    backbone=str(bundles["root"] / "tiny"),
                                    overrides=["training.epochs=1", *COLUMNS])
    assert retrained.info.data["train"]["sha256"] == file_sha256(output)


def test_export_refuses_to_replace_what_it_did_not_write(
        bundles: dict[str, Path], tmp_path: Path, feedback_db: Path | str, capsys: pytest.CaptureFixture[str],
) -> None:
    db = feedback_db
    with serving(app_for(bundles, feedback_db=db)) as client:
        assert client.post("/v1/models/sentiment/feedback", json={"input": "good", "label": "pos"}).status_code == 200
    output = tmp_path / "out.jsonl"
    assert export(str(db), "--model", "sentiment", "--output", str(output), capsys=capsys)[0] == 0
    code, _, err = export(str(db), "--model", "sentiment", "--output", str(output), capsys=capsys)
    assert code == 2 and "--overwrite" in err
    assert export(str(db), "--model", "sentiment", "--output", str(output), "--overwrite", capsys=capsys)[0] == 0
    output.write_text('{"utterance": "mine", "intent": "pos"}\n', encoding="utf-8")  # now the user's file
    before = output.read_bytes()
    code, _, err = export(str(db), "--model", "sentiment", "--output", str(output), "--overwrite", capsys=capsys)
    assert code == 2 and "refusing to replace" in err and output.read_bytes() == before
    code, _, err = export(str(db), "--model", "nope", "--output", str(tmp_path / "x.jsonl"), capsys=capsys)
    assert code == 2 and "sentiment" in err
    code, _, err = export(str(db), "--model", "sentiment", "--output", str(tmp_path / "x.jsonl"), "--since",
                          "2999-01-01", capsys=capsys)
    assert code == 2 and "nothing written" in err and not (tmp_path / "x.jsonl").exists()


def test_ner_export_writes_tokens_and_tags(
        bundles: dict[str, Path], tmp_path: Path, feedback_db: Path | str, capsys: pytest.CaptureFixture[str],
) -> None:
    db = feedback_db
    with serving(app_for(bundles, feedback_db=db, log_predictions=True)) as client:
        pid = client.post("/v1/models/ner/predict", json={"inputs": ["Mary lives in Oslo"]}).json()["results"][0][
            "prediction_id"]
        answer = client.post("/v1/models/ner/feedback", json={"prediction_id": pid,
                                                              "tags": ["B-PER", "O", "O", "B-LOC"]})
        assert answer.status_code == 200, answer.text
    assert export(str(db), "--model", "ner", "--output", str(tmp_path / "fix.conll"), capsys=capsys)[0] == 0
    assert (tmp_path / "fix.conll").read_text(encoding="utf-8") == "Mary\tB-PER\nlives\tO\nin\tO\nOslo\tB-LOC\n"
    assert export(str(db), "--model", "ner", "--output", str(tmp_path / "fix.jsonl"), capsys=capsys)[0] == 0
    assert json.loads((tmp_path / "fix.jsonl").read_text(encoding="utf-8")) == {
        "tokens": ["Mary", "lives", "in", "Oslo"], "tags": ["B-PER", "O", "O", "B-LOC"]}
    code, _, err = export(str(db), "--model", "ner", "--output", str(tmp_path / "fix.csv"), capsys=capsys)
    assert code == 2 and "CSV" in err


def test_append_to_copies_the_training_file_and_adds_only_new_corrections(
        bundles: dict[str, Path], tmp_path: Path, feedback_db: Path | str, capsys: pytest.CaptureFixture[str],
) -> None:
    from verticals.operate.feedback_store import open_store

    base = tmp_path / "train.csv"
    base.write_bytes(b"utterance,intent\r\ngreat film,pos\r\nbad film,neg\r\n")  # CRLF, kept byte for byte
    store = open_store(feedback_db)
    store.register_model("sentiment", "d", "text-classification", "text-classification", ["neg", "pos"],
                         {"kind": "label", "fields": {"text": "utterance", "label": "intent"}, "label_field": "label"})
    for text, label in [("great film", "pos"), ("bad film", "pos"), ("not great", "neg")]:
        store.add_feedback("sentiment", "d", prediction_id=None, record={"text": text}, predicted=None, label=label,
                           tags=None, wrong=None, comment=None)
    store.close()
    output = tmp_path / "train-v2.csv"
    code, out, err = export(str(feedback_db), "--model", "sentiment", "--append-to", str(base), "--output",
                            str(output), capsys=capsys)
    assert code == 0, err
    # "great film,pos" is already there (merged); "bad film" is labelled neg there: a conflict, base row kept
    assert output.read_bytes() == base.read_bytes() + b"not great,neg\n"
    assert "bad film" in err and "1 conflicting inputs" in out
    code, _, err = export(str(feedback_db), "--model", "sentiment", "--append-to", str(base), "--output",
                          str(base), "--overwrite", capsys=capsys)
    assert code == 2 and "same file" in err
    with only_plugins():
        retrained = verticals.train("text-classification", output, validation=output, output=tmp_path / "v2",
                                    backbone=str(bundles["root"] / "tiny"), overrides=["training.epochs=1", *COLUMNS])
    assert f"sha256 {retrained.info.data['train']['sha256']}" in out  # the bundle names the export it used


def test_export_log_records_the_digest_of_what_this_export_wrote(tmp_path, monkeypatch):
    """Found reviewing CI stop 47: the digest was read back from the file after its lock was released, so an
    export replacing it meanwhile (--overwrite) put its own digest in this export's log line."""
    import hashlib
    from contextlib import contextmanager

    import verticals.bundles.bundle as bundle_module
    from verticals.operate.feedback_export import _write_owned

    real_atomic_file = bundle_module.atomic_file

    @contextmanager
    def then_another_export_replaces_it(path, *args, **kwargs):
        with real_atomic_file(path, *args, **kwargs) as handle:
            yield handle
        path.write_text("another export's records\n", encoding="utf-8")

    monkeypatch.setattr(bundle_module, "atomic_file", then_another_export_replaces_it)
    logged: list[str] = []

    class Log:
        def record_export(self, sha256, path, model, records):
            logged.append(sha256)

    text = "text,label\nmy parcel,delivery\n"
    digest = _write_owned(tmp_path / "out.csv", text, "feedback-export", Log(), "m", 1, overwrite=False)
    assert logged == [digest] == [hashlib.sha256(text.encode("utf-8")).hexdigest()]


# ---- edge cases found reviewing the stored-data paths (2026-12-06) -------------------------------------
def test_a_feedback_db_inside_a_bundle_is_refused_and_the_bundle_stays_loadable(bundles, tmp_path) -> None:
    copy = tmp_path / "sentiment"
    shutil.copytree(bundles["sentiment"], copy)
    with pytest.raises(verticals.errors.ConfigError, match="inside .* a bundle Verticals wrote"):
        app_for({**bundles, "sentiment": copy}, feedback_db=copy / "feedback.db")
    assert not (copy / "feedback.db").exists()
    with only_plugins():
        verticals.load(copy)


def test_a_feedback_db_that_cannot_be_created_is_one_line(bundles, tmp_path) -> None:
    (tmp_path / "afile.txt").write_text("mine")
    with pytest.raises(verticals.errors.ConfigError, match="is a file, not a folder"):
        app_for(bundles, feedback_db=tmp_path / "afile.txt" / "feedback.db")
    with pytest.raises(verticals.errors.ConfigError, match="cannot create the feedback database"):
        app_for(bundles, feedback_db="/proc/feedback.db")
    assert (tmp_path / "afile.txt").read_text() == "mine"


def test_workers_given_a_database_url_do_not_write_it_as_a_file(bundles, tmp_path, monkeypatch) -> None:
    """`serve --workers 2 --feedback-db postgresql+psycopg://...` created a SQLite tree named after the URL,
    password included, in the working folder."""
    pytest.importorskip("sqlalchemy")
    from verticals.delivery.server import run

    monkeypatch.chdir(tmp_path)
    with pytest.raises(verticals.errors.ConfigError):
        run([bundles["sentiment"]], port=0, workers=2,
            feedback_db="postgresql+psycopg://writer:s3cret@127.0.0.1:1/fb")
    assert list(tmp_path.iterdir()) == []


def test_text_the_database_or_the_conll_export_cannot_hold_is_a_422(bundles, feedback_db) -> None:
    with serving(app_for(bundles, feedback_db=feedback_db)) as client:
        nul = client.post("/v1/models/sentiment/feedback", json={"input": "great film", "label": "pos",
                                                                   "comment": "a\x00b"})
        assert nul.status_code == 422 and "NUL" in nul.json()["detail"]
        for token in ["lives\nhere", "in\there", ""]:
            broken = client.post("/v1/models/ner/feedback", json={"input": {"tokens": ["John", token, "Paris"]},
                                                                   "tags": ["B-PER", "O", "B-LOC"]})
            assert broken.status_code == 422 and "token 2" in broken.json()["detail"], broken.text
    assert rows(feedback_db) == []


def test_retention_holds_while_traffic_pauses_and_is_bounded(bundles, tmp_path) -> None:
    db = tmp_path / "fb.db"
    with serving(app_for(bundles, feedback_db=db, log_predictions=True, log_retention="1d")) as client:
        pid = client.post("/v1/models/sentiment/predict", json={"inputs": ["great film"]}).json()["results"][0][
            "prediction_id"]
        with sqlite3.connect(db) as con:  # two days pass without a request
            con.execute("UPDATE predictions SET created_at = '2020-01-01T00:00:00.000000Z'")
        expired = client.post("/v1/models/sentiment/feedback", json={"prediction_id": pid, "label": "pos"})
        assert expired.status_code == 422 and "retention" in expired.json()["detail"]
    assert len(rows(db, "SELECT id FROM predictions")) == 1  # nothing logged since: not pruned yet ...
    with serving(app_for(bundles, feedback_db=db, log_predictions=True, log_retention="1d")):
        assert rows(db, "SELECT id FROM predictions") == []  # ... until a logging server starts
    for bound in ["1000000d", "10000000000000"]:  # dates and SQLite integers overflow past these
        with pytest.raises(verticals.errors.ConfigError, match="at most"):
            app_for(bundles, feedback_db=db, log_predictions=True, log_retention=bound)


def test_export_takes_a_bom_header_and_refuses_an_impossible_since(bundles, tmp_path, capsys) -> None:
    from verticals.operate.feedback_store import open_store

    db = tmp_path / "fb.db"
    store = open_store(db)
    store.register_model("sentiment", "d", "text-classification", "text-classification", ["neg", "pos"],
                         {"kind": "label", "fields": {"text": "utterance", "label": "intent"}, "label_field": "label"})
    store.add_feedback("sentiment", "d", prediction_id=None, record={"text": "not great"}, predicted=None,
                       label="neg", tags=None, wrong=None, comment=None)
    store.close()
    base = tmp_path / "train.csv"
    base.write_bytes(b"\xef\xbb\xbfutterance,intent\ngreat film,pos\n")  # as a spreadsheet program saves it
    output = tmp_path / "train-v2.csv"
    code, _, err = export(str(db), "--model", "sentiment", "--append-to", str(base), "--output", str(output),
                          capsys=capsys)
    assert code == 0, err
    assert output.read_bytes() == base.read_bytes() + b"not great,neg\n"
    code, _, err = export(str(db), "--model", "sentiment", "--since", "0001-01-01T00:00:00+01:00", "--output",
                          str(tmp_path / "x.csv"), capsys=capsys)
    assert code == 2 and "--since" in err and "Traceback" not in err
