import json

import pytest
import verticals
from verticals.errors import NotFittedError
from verticals.tasks import TextClassificationTask

from .conftest import FAST, run_cli


@pytest.fixture
def trained(tmp_path, tiny_backbone, text_data):
    return verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                           output=tmp_path / "bundle", overrides=FAST, backbone=str(tiny_backbone))


def test_train_writes_a_verified_bundle(trained, tmp_path):
    bundle = tmp_path / "bundle"
    names = {p.relative_to(bundle).as_posix() for p in bundle.rglob("*") if p.is_file()}
    assert {"bundle.json", "manifest.json", "head.safetensors", "backbone/model.safetensors",
            "backbone/config.json", "backbone/tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pkl", ".pt")) for n in names)
    info = json.loads((bundle / "bundle.json").read_text())
    assert info["task"] == "text-classification" and info["labels"] == ["account", "billing", "shipping"]
    assert info["config"]["training"]["epochs"] == 2
    assert info["data"]["train"]["records"] == 48 and len(info["data"]["train"]["sha256"]) == 64
    assert set(info["metrics"]["validation"]) >= {"accuracy", "macro_f1"}
    assert info["model"]["precision"] in {"bf16", "fp32"} and info["sdk_version"]
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == names - {"manifest.json"}
    assert not list(tmp_path.glob("bundle.checkpoints")), "checkpoints are removed after training"


def test_load_predict_evaluate_round_trip(trained, tmp_path, text_data):
    loaded = verticals.load(tmp_path / "bundle")
    texts = ["a refund for the invoice", "where is my parcel"]
    before, after = trained.predict(texts), loaded.predict(texts)
    for b, a in zip(before, after):
        assert b.label == a.label and abs(b.score - a.score) < 1e-4
        assert abs(sum(a.scores.values()) - 1) < 1e-4
    evaluation = loaded.evaluate(text_data["validation"])
    assert evaluation.n == 12
    assert evaluation.metrics == pytest.approx(trained.info.metrics["validation"], abs=1e-6)
    assert set(evaluation.per_label) == {"account", "billing", "shipping"}


def test_same_seed_same_metrics(trained, tmp_path, tiny_backbone, text_data):
    again = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                            output=tmp_path / "again", overrides=FAST, backbone=str(tiny_backbone))
    assert again.info.metrics == trained.info.metrics


def test_learns_the_tiny_task(tmp_path, tiny_backbone, text_data):
    """Fails if training is broken: a tiny model must beat chance clearly on this separable data."""
    predictor = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                                output=tmp_path / "b", backbone=str(tiny_backbone),
                                overrides=["training.epochs=8", "training.batch_size=8",
                                           "training.learning_rate=0.003"])
    assert predictor.info.metrics["validation"]["accuracy"] >= 0.75


def test_heldout_split_without_validation(tmp_path, tiny_backbone, text_data):
    predictor = verticals.train("text-classification", text_data["train"], output=tmp_path / "b",
                                overrides=FAST + ["data.validation_fraction=0.25"], backbone=str(tiny_backbone))
    assert predictor.info.data["validation"]["records"] == 12
    assert predictor.info.data["train"]["records"] == 48


def test_predict_before_fit_is_a_clear_error():
    with pytest.raises(NotFittedError, match="not fitted"):
        TextClassificationTask().predict([])


def test_cli_train_evaluate_predict(tmp_path, tiny_backbone, text_data):
    bundle = tmp_path / "cli-bundle"
    sets = [arg for s in FAST for arg in ("--set", s)]
    result = run_cli("train", "text-classification", "--train", str(text_data["train"]), "--validation",
                     str(text_data["validation"]), "--output", str(bundle), "--backbone", str(tiny_backbone),
                     "--json", *sets)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["task"] == "text-classification"
    result = run_cli("evaluate", str(bundle), "--data", str(text_data["validation"]), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["task"] == "text-classification" and report["n"] == 12
    assert {"accuracy", "macro_f1"} <= set(report["metrics"]) and report["per_label"]
    result = run_cli("predict", str(bundle), "refund my invoice", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)[0]["label"] in {"account", "billing", "shipping"}
    out = tmp_path / "preds.jsonl"
    result = run_cli("predict", str(bundle), "--input", str(text_data["validation"]), "--output", str(out))
    assert result.returncode == 0, result.stderr
    assert len(out.read_text().splitlines()) == 12


@pytest.mark.parametrize("strategy", ["head-only", "lora"])
def test_strategies(tmp_path, tiny_backbone, text_data, strategy):
    predictor = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                                output=tmp_path / strategy, backbone=str(tiny_backbone),
                                overrides=FAST + [f"training.strategy={strategy}"])
    loaded = verticals.load(tmp_path / strategy)
    assert loaded.predict(["my password"])[0].label == predictor.predict(["my password"])[0].label
    if strategy == "head-only":
        from safetensors.torch import load_file

        saved = load_file(str(tmp_path / strategy / "backbone" / "model.safetensors"))
        original = load_file(str(tiny_backbone / "model.safetensors"))
        key = next(k for k in original if "word_embeddings" in k)
        assert (saved[key] == original[key]).all(), "head-only must not change backbone weights"
    else:
        from safetensors.torch import load_file

        saved = load_file(str(tmp_path / strategy / "backbone" / "model.safetensors"))
        assert not [k for k in saved if "lora" in k.lower()], "adapters must be merged into a plain backbone"
        original = load_file(str(tiny_backbone / "model.safetensors"))
        key = next(k for k in original if k.endswith("attention.self.query.weight"))
        assert not (saved[key] == original[key]).all(), "merged LoRA deltas must change the query weights"


def test_resume_from_checkpoint(tmp_path, tiny_backbone, text_data):
    overrides = FAST + ["training.keep_checkpoints=true"]
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                    output=tmp_path / "b", overrides=overrides, backbone=str(tiny_backbone))
    checkpoints = sorted((tmp_path / "b.checkpoints").glob("checkpoint-*"))
    assert checkpoints, "per-epoch checkpoints are kept when asked"
    resumed = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                              output=tmp_path / "b", overrides=overrides + ["training.epochs=3"],
                              backbone=str(tiny_backbone), resume=True, overwrite=True)
    assert resumed.task.trainer_.epochs_run_ == pytest.approx(3.0)


def test_jsonl_labels_may_be_numbers_or_booleans(tmp_path):
    # 0, 0.0 and false were refused as "empty label" while 1 was accepted (a falsy check).
    path = tmp_path / "t.jsonl"
    labels = [0, 0.0, False, 1, "1", True, 2.5]
    path.write_text("".join(json.dumps({"text": f"row {i}", "label": label}) + "\n" for i, label in enumerate(labels)))
    records = TextClassificationTask().read(path)
    assert [r.label for r in records] == ["0", "0", "false", "1", "1", "true", "2.5"]
