"""ONNX export: parity with PyTorch for text and token classification, and the exported files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

import verticals  # noqa: E402
from verticals.cli import main  # noqa: E402
from verticals.delivery.export import ParityError, export_onnx  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins, run_export_reference  # noqa: E402


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("export")
    backbone = str(make_tiny_backbone(root / "tiny"))
    (root / "tc.jsonl").write_text("".join(
        json.dumps({"text": f"{w} service today", "label": lab}) + "\n"
        for lab, w in [("ok", "fine"), ("ok", "good"), ("bad", "slow"), ("bad", "rude"), ("meh", "average")] * 6))
    (root / "ner.jsonl").write_text("".join(
        json.dumps(r) + "\n" for r in [{"tokens": ["Aspirin", "treats", "pain"], "tags": ["B-Drug", "O", "B-Sym"]},
                                       {"tokens": ["Take", "ibuprofen", "for", "fever", "now"],
                                        "tags": ["O", "B-Drug", "O", "B-Sym", "O"]}] * 8))
    with only_plugins():
        for name, task, data in (("tc", "text-classification", "tc.jsonl"),
                                 ("ner", "token-classification", "ner.jsonl")):
            verticals.train(task, root / data, output=root / name, backbone=backbone, overrides=["training.epochs=1"])
    return {"tc": root / "tc", "ner": root / "ner"}


@pytest.mark.parametrize("name", ["tc", "ner"])
def test_export_parity(bundles: dict[str, Path], tmp_path: Path, name: str) -> None:
    with only_plugins():
        result = export_onnx(bundles[name], tmp_path / "onnx")
        predictor = verticals.load(bundles[name])
    assert result.max_abs_diff < 1e-4
    assert result.check_batch[0] == 5 and result.inputs[:2] == ["input_ids", "attention_mask"]
    files = {p.name for p in (tmp_path / "onnx").iterdir()}
    assert {"model.onnx", "export.json", "tokenizer.json"} <= files
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert meta["labels"] == predictor.labels and meta["token_level"] == (name == "ner")

    # The exported graph alone (with the exported tokenizer) reproduces the bundle's predictions.
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "onnx")
    session = ort.InferenceSession(str(tmp_path / "onnx" / "model.onnx"), providers=["CPUExecutionProvider"])
    texts = ["good service today", "rude and slow service", "Take aspirin for pain"]
    encoded = tokenizer(texts, padding=True, return_tensors="np")
    (logits,) = session.run(["logits"], {k: encoded[k].astype(np.int64) for k in result.inputs})
    predictor.task.precision_ = "fp32"  # bundles may predict under bf16 autocast; ONNX runs fp32
    predictions = predictor.predict(texts)
    if name == "tc":
        from transformers import AutoConfig

        # standard tooling alone (AutoConfig's id2label + ONNX Runtime logits) names the SDK's labels
        id2label = AutoConfig.from_pretrained(tmp_path / "onnx").id2label
        assert [id2label[int(i)] for i in logits.argmax(-1)] == [p.label for p in predictions]
        probs = np.exp(logits - logits.max(-1, keepdims=True))
        probs /= probs.sum(-1, keepdims=True)
        assert probs.max(-1) == pytest.approx([p.score for p in predictions], abs=1e-4)
    else:
        for row, text, prediction in zip(logits, texts, predictions):
            words = tokenizer(text.split(), is_split_into_words=True).word_ids()
            firsts = [i for i, w in enumerate(words) if w is not None and (i == 0 or words[i - 1] != w)]
            tags = [meta["labels"][row[i].argmax()] for i in firsts]
            from verticals.tasks.token_classification import repair_bio

            assert repair_bio(tags) == prediction.tags


REFERENCE_INPUTS = {"tc": ["good service today", "rude and slow service", "average", "fine fine fine good",
                           "what is the capital of Mongolia"],
                    "ner": ["Aspirin treats pain", "Take ibuprofen for fever now", {"tokens": ["Take", "aspirin"]},
                            " ".join(["pain"] * 80)]}  # longer than max_length: truncated words are 'O'


@pytest.mark.parametrize("name", ["tc", "ner"])
def test_export_is_the_whole_model(bundles: dict[str, Path], tmp_path: Path, name: str) -> None:
    """config.json for standard tooling, decision parameters with values, and a reference implementation
    without Verticals that reproduces the SDK's predictions."""
    from transformers import AutoConfig

    with only_plugins():
        predictor = verticals.load(bundles[name])
        export_onnx(bundles[name], tmp_path / "onnx", overwrite=False)
    out = tmp_path / "onnx"
    config = AutoConfig.from_pretrained(out)
    assert config.id2label == dict(enumerate(predictor.labels))
    assert config.label2id == {label: i for i, label in enumerate(predictor.labels)}
    meta = json.loads((out / "export.json").read_text())
    assert meta["format"] == "verticals-export"
    assert meta["decision"]["kind"] == predictor.info.task_type
    assert meta["decision"]["max_length"] == predictor.task.config.training.max_length
    # every file but export.json itself, the manifest (which covers export.json too) and the marker that lets
    # a later --overwrite prove the folder is ours
    assert set(meta["files"]) == {p.name for p in out.iterdir()} - {"export.json", "manifest.json",
                                                                     ".verticals-output.json"}
    assert {"model.onnx", "config.json", "tokenizer.json", "predict.py"} <= set(meta["files"])

    predictor.task.precision_ = "fp32"  # bundles may predict under bf16 autocast; ONNX runs fp32
    inputs = REFERENCE_INPUTS[name]
    expected = predictor.predict(inputs)
    got = run_export_reference(out, inputs)
    assert len(got) == len(expected)
    for g, e in zip(got, expected):
        assert set(g) == set(e.model_dump())  # the SDK's fields, no more, no fewer
        if name == "tc":
            assert g["label"] == e.label and g["score"] == pytest.approx(e.score, abs=1e-4)
            assert g["scores"] == pytest.approx(e.scores, abs=1e-4)
        else:
            assert g["tokens"] == e.tokens and g["tags"] == e.tags
            assert [(x["type"], x["start"], x["end"], x["text"]) for x in g["entities"]] == [
                (x.type, x.start, x.end, x.text) for x in e.entities]
            assert [x["score"] for x in g["entities"]] == pytest.approx([x.score for x in e.entities], abs=1e-4)


def test_export_needs_the_torch_engine(bundles: dict[str, Path], tmp_path: Path) -> None:
    from verticals.delivery.export import export_predictor

    with only_plugins():
        onnx = verticals.load(bundles["tc"], engine="onnx")
    with pytest.raises(verticals.ConfigError, match="engine='torch'"):
        export_predictor(onnx, tmp_path / "onnx")
    assert not (tmp_path / "onnx").exists()


def test_reference_needs_no_sdk(bundles: dict[str, Path], tmp_path: Path) -> None:
    """The harness really blocks the SDK: a predict.py that imports verticals fails under it."""
    with only_plugins():
        export_onnx(bundles["tc"], tmp_path / "onnx")
    script = tmp_path / "onnx" / "predict.py"
    script.write_text(script.read_text().replace("import numpy as np\n", "import numpy as np\nimport verticals\n"))
    with pytest.raises(AssertionError, match="import of verticals halted"):
        run_export_reference(tmp_path / "onnx", ["good service today"])


def test_parity_failure_writes_nothing(bundles: dict[str, Path], tmp_path: Path) -> None:
    with only_plugins(), pytest.raises(ParityError, match="differ from PyTorch"):
        export_onnx(bundles["tc"], tmp_path / "onnx", tolerance=-1.0)
    assert not (tmp_path / "onnx").exists()
    assert list(tmp_path.iterdir()) == []


def test_cli_export(bundles: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with only_plugins():
        assert main(["export", str(bundles["ner"]), "--format", "onnx", "--output", str(tmp_path / "x"),
                     "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["max_abs_diff"] < 1e-4 and out["task"] == "token-classification"
        assert main(["export", str(bundles["ner"]), "--output", str(tmp_path / "x")]) == 2  # exists
        assert "already exists" in capsys.readouterr().err
        assert main(["export", str(tmp_path / "missing"), "--output", str(tmp_path / "y")]) == 2


# ---- inference engines (verticals.backbones.engines): the same bundle on ONNX Runtime --------------------------
TEXTS = ["good service today", "rude and slow service", "Take aspirin for pain", "ok"]


@pytest.mark.parametrize("name", ["tc", "ner"])
def test_onnx_engine_matches_torch(bundles: dict[str, Path], name: str) -> None:
    with only_plugins():
        torch_predictor = verticals.load(bundles[name], engine="torch")
        onnx_predictor = verticals.load(bundles[name], engine="onnx")
    torch_predictor.task.precision_ = "fp32"
    assert onnx_predictor.engine == "onnx" and "engine='onnx'" in repr(onnx_predictor)
    assert onnx_predictor.task.model_.backbone.parity < 1e-4
    expected, got = torch_predictor.predict(TEXTS), onnx_predictor.predict(TEXTS)
    if name == "tc":
        assert [p.label for p in got] == [p.label for p in expected]
        assert [p.score for p in got] == pytest.approx([p.score for p in expected], abs=1e-4)
        one = onnx_predictor.predict_one(TEXTS[1])  # batch of one: the latency path
        assert one.label == expected[1].label and one.score == pytest.approx(expected[1].score, abs=1e-4)
    else:
        assert [p.tags for p in got] == [p.tags for p in expected]


def test_int8_engine_and_auto(bundles: dict[str, Path]) -> None:
    with only_plugins():
        int8 = verticals.load(bundles["tc"], engine="onnx-int8")
        auto = verticals.load(bundles["tc"], engine="auto")
    assert int8.engine == "onnx-int8" and len(int8.predict(TEXTS)) == len(TEXTS)
    assert all(0.0 <= p.score <= 1.0 for p in int8.predict(TEXTS))
    assert auto.engine == "onnx"  # no CUDA here and onnxruntime is installed (this module skips without it)


def test_engine_cli_and_errors(bundles: dict[str, Path], tmp_path: Path,
                               capsys: pytest.CaptureFixture[str]) -> None:
    data = tmp_path / "eval.jsonl"
    data.write_text("".join(json.dumps({"text": t, "label": "ok"}) + "\n" for t in ["good service", "fine day"]))
    with only_plugins():
        assert main(["evaluate", str(bundles["tc"]), "--data", str(data), "--engine", "onnx", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["n"] == 2
        with pytest.raises(SystemExit) as exc:
            main(["predict", str(bundles["tc"]), "hello", "--engine", "tensorrt"])
        assert exc.value.code == 2
        with pytest.raises(verticals.ConfigError, match="unknown engine"):
            verticals.load(bundles["tc"], engine="tensorrt")
        onnx = verticals.load(bundles["tc"], engine="onnx")
    onnx.task.use_engine("onnx")  # already there: nothing to do
    with pytest.raises(verticals.ConfigError, match="load the bundle again"):
        onnx.task.use_engine("torch")


def test_reference_reads_the_bundles_own_column_names(tmp_path: Path) -> None:
    """A bundle trained on a file whose text column is 'utterance': the export's predict.py takes records
    with that key (as the SDK's predict does) instead of failing with a KeyError traceback."""
    backbone = str(make_tiny_backbone(tmp_path / "tiny"))
    (tmp_path / "train.jsonl").write_text("".join(
        json.dumps({"utterance": f"{w} service today", "intent": lab}) + "\n"
        for lab, w in [("ok", "fine"), ("ok", "good"), ("bad", "slow"), ("bad", "rude")] * 6))
    with only_plugins():
        predictor = verticals.train("text-classification", tmp_path / "train.jsonl", output=tmp_path / "b",
                                    backbone=backbone, overrides=["training.epochs=1", "data.text_column=utterance",
                                                                  "data.label_column=intent"])
        export_onnx(tmp_path / "b", tmp_path / "onnx")
        predictor.task.precision_ = "fp32"
        expected = predictor.predict([{"utterance": "rude and slow service"}])[0]
    meta = json.loads((tmp_path / "onnx" / "export.json").read_text())
    assert meta["fields"] == {"text": "utterance", "label": "intent"}
    got = run_export_reference(tmp_path / "onnx", [{"utterance": "rude and slow service"}, "rude and slow service"])
    assert [g["label"] for g in got] == [expected.label] * 2
    assert got[0]["score"] == pytest.approx(expected.score, abs=1e-4)


@pytest.mark.parametrize(("stdin", "fragment"), [
    ('{"text": "fine"}\n{"words": "x"}\n', "line 2: no 'text' field"),
    ('"fine"\n{not json\n', "line 2: not JSON"),
    ('[1, 2]\n', "line 1: expected a text or a JSON object"),
    # issue 24 item 9: what the SDK refuses, the reference refuses
    ('"fine"\n""\n', "line 2: empty text"),
    ('{"text": "   "}\n', "line 1: field 'text' is empty"),
])
def test_reference_bad_input_is_one_line_and_exit_2(bundles: dict[str, Path], tmp_path: Path, stdin: str,
                                                    fragment: str) -> None:
    import subprocess
    import sys

    with only_plugins():
        export_onnx(bundles["tc"], tmp_path / "onnx")
    proc = subprocess.run([sys.executable, str(tmp_path / "onnx" / "predict.py"), str(tmp_path / "onnx")],
                          input=stdin, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout == ""  # nothing half-written: inputs are all read and checked before predicting
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and fragment in lines[0] and "Traceback" not in proc.stderr


def test_reference_token_records(bundles: dict[str, Path], tmp_path: Path) -> None:
    """Tokens as a list, as a space-separated string (a CSV cell) and as a plain text are the same words;
    the string was read as a list of its characters."""
    with only_plugins():
        export_onnx(bundles["ner"], tmp_path / "onnx")
    got = run_export_reference(tmp_path / "onnx", [{"tokens": ["Take", "aspirin", "now"]},
                                                   {"tokens": "Take aspirin now"}, "Take aspirin now"])
    assert [g["tokens"] for g in got] == [["Take", "aspirin", "now"]] * 3
    assert got[0]["tags"] == got[1]["tags"] == got[2]["tags"]


def test_reference_on_a_folder_that_is_no_export(tmp_path: Path) -> None:
    import subprocess
    import sys

    from verticals.delivery.export import REFERENCE_FILE

    script = tmp_path / REFERENCE_FILE
    script.write_text((Path(verticals.__file__).parent / "delivery" / "onnx_reference.py").read_text(encoding="utf-8"))
    proc = subprocess.run([sys.executable, str(script), str(tmp_path / "missing"), "hello"],
                          capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 2 and "not a readable Verticals export" in proc.stderr
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1
