"""predictor.explain, predict --explain and "explain": true on the REST route (verticals.tasks.explain)."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
import verticals
from verticals.errors import ConfigError
from verticals.tasks.explain import MAX_EXPLAIN_BATCH, METHODS, _window_words
from verticals.testing import make_tiny_backbone, only_plugins

from .conftest import FAST, conll_text, run_cli, text_rows, write_csv

pytest.importorskip("captum")

FILLER = ["the", "a", "report", "market", "today", "shares", "company", "said", "new", "year", "in", "of"]
KEYWORDS = {"up": "surged", "down": "plunged"}


def keyword_rows(n: int, seed: int) -> list[dict[str, str]]:
    """The label is decided by one planted keyword among random filler words."""
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        label = "up" if i % 2 else "down"
        words = rng.sample(FILLER, 5)
        words.insert(rng.randrange(6), KEYWORDS[label])
        rows.append({"text": " ".join(words), "label": label})
    return rows


@pytest.fixture(scope="module")
def backbone(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_backbone(tmp_path_factory.mktemp("explain") / "tiny")


@pytest.fixture(scope="module")
def text_bundle(tmp_path_factory: pytest.TempPathFactory, backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("explain-text")
    with only_plugins():
        verticals.train("text-classification", write_csv(root / "train.csv", text_rows(8, 0)), output=root / "b",
                        backbone=str(backbone), overrides=[*FAST, "training.max_length=12"])
    return root / "b"


@pytest.fixture(scope="module")
def keyword_model(tmp_path_factory: pytest.TempPathFactory, backbone: Path) -> verticals.Predictor:
    root = tmp_path_factory.mktemp("explain-keyword")
    with only_plugins():
        return verticals.train("text-classification", write_csv(root / "train.csv", keyword_rows(64, 0)),
                               validation=write_csv(root / "validation.csv", keyword_rows(16, 1)),
                               output=root / "b", backbone=str(backbone),
                               overrides=["training.epochs=6", "training.batch_size=8",
                                          "training.learning_rate=0.003"])


@pytest.fixture(scope="module")
def token_bundle(tmp_path_factory: pytest.TempPathFactory, backbone: Path) -> Path:
    root = tmp_path_factory.mktemp("explain-token")
    (root / "train.conll").write_text(conll_text(40, 0), encoding="utf-8")
    with only_plugins():
        verticals.train("token-classification", root / "train.conll", output=root / "b", backbone=str(backbone),
                        overrides=["training.epochs=6", "training.batch_size=8", "training.learning_rate=0.003"])
    return root / "b"


@pytest.mark.parametrize("method", METHODS)
def test_one_attribution_per_word_with_offsets_into_the_text(text_bundle, method):
    predictor = verticals.load(text_bundle)
    texts = ["A refund for the invoice, please!  Café's fee: 10.5 EUR", "where is   my parcel?"]
    explanations = predictor.explain(texts, method=method)
    for text, explanation, prediction in zip(texts, explanations, predictor.predict(texts)):
        assert explanation.label == prediction.label and explanation.score == pytest.approx(prediction.score, 1e-4)
        assert all(text[w.start:w.end] == w.word for w in explanation.words)
        # every visible character belongs to exactly one word, in order
        assert "".join(w.word for w in explanation.words) == "".join(text.split())
        assert [w.start for w in explanation.words] == sorted(w.start for w in explanation.words)
    words = [w.word for w in explanations[0].words]
    assert words[:6] == ["A", "refund", "for", "the", "invoice", ","] and "10.5" in words and "Café's" in words
    # training.max_length=12 cuts the first text: the words past the cut were never read
    cut = [w for w in explanations[0].words if w.truncated]
    assert cut and cut[-1].word == "EUR" and all(w.attribution == 0.0 for w in cut)
    assert not any(w.truncated for w in explanations[1].words)


@pytest.mark.parametrize("method", METHODS)
def test_the_planted_keyword_ranks_first(keyword_model, method):
    assert keyword_model.info.metrics["validation"]["accuracy"] == 1.0
    rows = keyword_rows(20, 7)
    explanations = keyword_model.explain([r["text"] for r in rows], method=method)
    first = [max(e.words, key=lambda w: w.attribution).word for e in explanations]
    assert sum(word in KEYWORDS.values() for word in first) >= 18, first


def test_entities_are_explained_by_their_own_words(token_bundle):
    predictor = verticals.load(token_bundle)
    (explanation,) = predictor.explain(["Alice Smith flew to Paris ."])
    found = {(e.type, e.text) for e in explanation.entities}
    assert found == {(e.type, e.text) for e in predictor.predict(["Alice Smith flew to Paris ."])[0].entities}
    assert ("LOC", "Paris") in found
    for entity in explanation.entities:
        assert [w.word for w in entity.words] == ["Alice", "Smith", "flew", "to", "Paris", "."]
        assert "Alice Smith flew to Paris ."[entity.start:entity.end] == entity.text
        top = max(entity.words, key=lambda w: w.attribution)
        assert top.word in entity.text.split()


def test_window_words_of_sliding_windows():
    """medical.ner keeps only first subwords per window: later subwords join the word before them, a window
    starting inside a word gives its leading subwords to that word, and special tokens belong to none."""
    feature = {"input_ids": [101, 7, 8, 9, 10, 11, 102], "words": [(2, 4, 1.0), (4, 5, 3.0), (5, 6, 2.0)]}
    word_of, firsts = _window_words(feature, {101, 102})
    assert word_of == [-1, 3, 4, 4, 5, 6, -1]
    assert firsts == {4: (2, 1.0), 5: (4, 3.0), 6: (5, 2.0)}


def test_refusals_are_config_errors(text_bundle):
    predictor = verticals.load(text_bundle)
    with pytest.raises(ConfigError, match="unknown explanation method 'shap'"):
        predictor.explain(["a refund"], method="shap")
    pytest.importorskip("onnxruntime")
    onnx = verticals.load(text_bundle, engine="onnx")
    with pytest.raises(ConfigError, match="torch engine only.*engine='torch'"):
        onnx.explain(["a refund"])


def test_cli_predict_explain(text_bundle, capsys):
    done = run_cli("predict", str(text_bundle), "a refund for the invoice", "--explain", "--json")
    assert done.returncode == 0, done.stderr
    (row,) = json.loads(done.stdout)
    assert row["explanation"]["label"] == row["label"] and row["explanation"]["method"] == "occlusion"
    assert [w["word"] for w in row["explanation"]["words"]] == ["a", "refund", "for", "the", "invoice"]

    from verticals.cli import main

    assert main(["predict", str(text_bundle), "where is my parcel", "--explain", "--explain-method",
                 "integrated-gradients"]) == 0
    label, why = capsys.readouterr().out.splitlines()
    assert label.endswith("\twhere is my parcel") and why.startswith(f"  why: {label.split()[0]}: ")
    refused = run_cli("predict", str(text_bundle), "a refund", "--explain", "--engine", "onnx")
    assert refused.returncode == 2 and refused.stdout == ""
    assert refused.stderr.count("\n") == 1 and "torch engine only" in refused.stderr
    assert "Traceback" not in refused.stderr


def test_rest_explain_flag_and_limit(text_bundle, token_bundle):
    pytest.importorskip("fastapi")
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import ServeLimits, create_app

    with only_plugins():
        client = TestClient(create_app([text_bundle, token_bundle], ServeLimits(max_batch=64), engine="torch"))
    name, ner = Path(text_bundle).name, "b-1"
    url = f"/v1/models/{name}/predict"
    plain = client.post(url, json={"inputs": ["a refund for the invoice"]})
    assert plain.status_code == 200 and plain.json()["results"][0]["explanation"] is None
    explained = client.post(url, json={"inputs": ["a refund for the invoice", {"text": ""}], "explain": True})
    assert explained.status_code == 200
    good, bad = explained.json()["results"]
    assert good["ok"] and [w["word"] for w in good["explanation"]["words"]][-1] == "invoice"
    assert good["explanation"]["label"] == good["prediction"]["label"]
    assert not bad["ok"] and bad["error"]["status"] == 422 and bad["explanation"] is None
    too_many = client.post(url, json={"inputs": ["a refund"] * (MAX_EXPLAIN_BATCH + 1), "explain": True})
    assert too_many.status_code == 413 and str(MAX_EXPLAIN_BATCH) in too_many.json()["detail"]
    assert client.post(url, json={"inputs": ["a refund"] * (MAX_EXPLAIN_BATCH + 1)}).status_code == 200
    models = [m["name"] for m in client.get("/v1/models").json()]
    entities = client.post(f"/v1/models/{models[1]}/predict", json={"inputs": ["Alice Smith flew to Paris ."],
                                                                     "explain": True}).json()
    assert entities["results"][0]["explanation"]["entities"], (ner, entities)


def test_rest_explain_on_onnx_is_refused_not_500(text_bundle):
    pytest.importorskip("fastapi")
    pytest.importorskip("onnxruntime")
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    with only_plugins():
        client = TestClient(create_app([text_bundle], engine="onnx"))
    answer = client.post(f"/v1/models/{Path(text_bundle).name}/predict", json={"inputs": ["a"], "explain": True})
    assert answer.status_code == 422 and "torch engine only" in answer.json()["detail"]


def test_report_explains_the_most_confident_errors(text_bundle, tmp_path):
    pytest.importorskip("matplotlib")
    from verticals.delivery.report import write_report

    predictor = verticals.load(text_bundle)
    texts = ["<script>alert(1)</script> refund & invoice", "where is my parcel", "my password and login",
             "the courier lost the package", "a refund for the invoice", "reset my username", "price of the bill"]
    labels = predictor.labels
    rows = [{"text": t, "label": labels[(labels.index(p.label) + 1) % len(labels)]}  # every one wrong
            for t, p in zip(texts, predictor.predict(texts))]
    data = tmp_path / "wrong.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    with only_plugins():
        write_report(text_bundle, data, tmp_path / "report")
    page = (tmp_path / "report" / "index.html").read_text(encoding="utf-8")
    section = page.split("<h2>Most confident errors, explained</h2>")[1].split("<h2>")[0]
    assert "(7 errors in all)" in section and section.count("<tr>") == 1 + 5
    assert "<script>" not in page and "</script>" not in page
    assert ("&lt;</span>" in section) == (">alert</span>" in section)  # escaped wherever it is shown
    assert section.count('<span style="background:rgba(') >= 5 * 2


def test_a_record_full_of_entities_explains_the_highest_scored(token_bundle, monkeypatch):
    """Review of the server: every entity of a record was explained, each listing every word, so one long
    record of 3,000 words cost entities x words (5 GB and 67 s on the tiny model through the REST route)."""
    import verticals.tasks.explain as explain_module

    monkeypatch.setattr(explain_module, "MAX_EXPLAINED_ENTITIES", 3)
    predictor = verticals.load(token_bundle)
    text = " ".join(["Alice Smith flew to Paris ."] * 4)
    predicted = predictor.predict([text])[0].entities
    assert len(predicted) > 3
    (explanation,) = predictor.explain([text])
    assert len(explanation.entities) == 3 and explanation.not_explained == len(predicted) - 3
    top = sorted((e.score for e in predicted), reverse=True)[:3]
    assert sorted((e.score for e in explanation.entities), reverse=True) == pytest.approx(top)
    assert [e.start for e in explanation.entities] == sorted(e.start for e in explanation.entities)
