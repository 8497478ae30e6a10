"""Model cards a model-risk reviewer can tie to one bundle: its digest, the data's sha256, the training options
and a 95% interval beside every headline score (issue 29, item 4)."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import verticals
from verticals.bundles.bundle import digest, write_manifest
from verticals.cli import main
from verticals.metrics import classification_metrics, entity_metrics
from verticals.metrics import significance as sig
from verticals.testing import make_tiny_backbone, only_plugins

SECTIONS = ("## Intended use", "## Data", "## Training", "## Metrics", "## Thresholds", "## Limitations",
            "## Versions")


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("card")
    backbone = make_tiny_backbone(root / "tiny")
    files = {}
    for split, count in (("train", 10), ("validation", 6), ("test", 5)):
        rows = [{"text": f"{w} {split} claim {i}", "label": lab} for i in range(count)
                for lab, w in (("approve", "valid"), ("reject", "fraudulent"))]
        files[split] = root / f"{split}.jsonl"
        files[split].write_text("".join(json.dumps(r) + "\n" for r in rows))
    with only_plugins():
        verticals.train("text-classification", files["train"], validation=files["validation"], test=files["test"],
                        output=root / "bundle", backbone=str(backbone),
                        overrides=["training.epochs=2", "training.learning_rate=0.0003", "training.batch_size=8",
                                   "training.seed=7"])
    return {"root": root, "bundle": root / "bundle", "backbone": backbone, **files}


def _card(bundle: Path, out: Path) -> str:
    with only_plugins():
        assert main(["card", str(bundle), "--output", str(out)]) == 0
    return out.read_text()


def test_card_names_the_bundle_digest_inspect_checks(bundle: dict[str, Path], tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    card = _card(bundle["bundle"], tmp_path / "card.md")
    capsys.readouterr()
    with only_plugins():
        assert main(["inspect", str(bundle["bundle"]), "--json"]) == 0
    inspected = json.loads(capsys.readouterr().out)["digest"]
    assert inspected == digest(bundle["bundle"]) == _sha256(bundle["bundle"] / "manifest.json")
    shown = re.search(r"Bundle digest \(sha256 of manifest.json\): `([0-9a-f]{64})`", card)
    assert shown and shown.group(1) == inspected
    with only_plugins():  # the command the card prints passes on this bundle
        assert main(["inspect", str(bundle["bundle"]), "--expect", shown.group(1)]) == 0
    for section in SECTIONS:
        assert section in card


def test_card_has_full_data_sha256_and_training_options(bundle: dict[str, Path], tmp_path: Path) -> None:
    card = _card(bundle["bundle"], tmp_path / "card.md")
    for split in ("train", "validation", "test"):
        assert f"| {split} | {split}.jsonl | {20 if split == 'train' else 12 if split == 'validation' else 10} | " \
               f"`{_sha256(bundle[split])}` |" in card
    # the backbone digest: sha256 of `sha256sum`-style lines of its weight/config/vocabulary files, by name
    lines = "".join(f"{_sha256(p)}  {p.name}\n" for p in sorted(bundle["backbone"].iterdir(), key=lambda p: p.name)
                    if p.suffix in {".json", ".safetensors", ".txt", ".model", ".tiktoken"})
    backbone_digest = hashlib.sha256(lines.encode()).hexdigest()
    assert f"; digest `{backbone_digest}`" in card
    info = json.loads((bundle["bundle"] / "bundle.json").read_text())
    epochs = [e["epoch"] for e in info["history"]]
    best = next(e["epoch"] for e in info["history"] if e["best"])
    assert "- Strategy: full; learning rate 0.0003; batch size 8; seed 7" in card
    assert f"- Epochs: 2 configured, {max(epochs)} run, best epoch {best} (its weights are the bundle's)" in card


def test_card_metrics_carry_stored_intervals(bundle: dict[str, Path], tmp_path: Path) -> None:
    card = _card(bundle["bundle"], tmp_path / "card.md")
    info = json.loads((bundle["bundle"] / "bundle.json").read_text())
    for split in ("validation", "test"):
        found = info["intervals"][split]
        assert found["n"] == (12 if split == "validation" else 10) and found["seed"] == sig.DEFAULT_SEED
        assert found["metrics"]["accuracy"]["method"] == "wilson"
        for name in ("macro_f1", "weighted_f1"):
            assert found["metrics"][name]["method"] == "bootstrap"
        for name, value in info["metrics"][split].items():  # every headline score has one, around its value
            entry = found["metrics"][name]
            assert entry["value"] == pytest.approx(value)
            assert entry["low"] - 1e-12 <= value <= entry["high"] + 1e-12
            assert f"| {split} | {name} | {value:.4f} | {entry['low']:.4f} – {entry['high']:.4f} |" in card
        right = round(info["metrics"][split]["accuracy"] * found["n"])
        assert (found["metrics"]["accuracy"]["low"], found["metrics"]["accuracy"]["high"]) == \
            pytest.approx(sig.wilson_interval(right, found["n"]))
        assert set(found["per_label_f1"]) == {"approve", "reject"}
        assert f"Per-label F1 on {split}" in card


def test_card_of_a_bundle_written_before_intervals(bundle: dict[str, Path], tmp_path: Path) -> None:
    old = tmp_path / "old"
    old.mkdir()
    for file in bundle["bundle"].iterdir():
        if file.is_file():
            (old / file.name).write_bytes(file.read_bytes())
        else:
            import shutil

            shutil.copytree(file, old / file.name)
    info = json.loads((old / "bundle.json").read_text())
    del info["intervals"]
    del info["model"]["backbone"]["digest"]
    (old / "bundle.json").write_text(json.dumps(info))
    (old / "manifest.json").unlink()
    write_manifest(old)
    with only_plugins():
        assert verticals.load(old).predict_one("valid claim").label in {"approve", "reject"}  # older bundles still load
    card = _card(old, tmp_path / "card.md")
    assert "not stored (older bundle)" in card and "digest `not recorded" in card
    assert f"`{digest(old)}`" in card


def test_label_intervals_are_seeded_and_contain_the_estimate() -> None:
    rng = np.random.default_rng(3)
    labels = ["a", "b", "c"]
    y_true = [labels[i] for i in rng.integers(0, 3, 150)]
    y_pred = [t if rng.random() < 0.7 else labels[rng.integers(0, 3)] for t in y_true]
    metrics, per_label, _ = classification_metrics(y_true, y_pred, labels)
    first = sig.label_intervals(y_true, y_pred, labels, metrics, per_label, resamples=300, seed=5)
    assert first == sig.label_intervals(y_true, y_pred, labels, metrics, per_label, resamples=300, seed=5)
    other = sig.label_intervals(y_true, y_pred, labels, metrics, per_label, resamples=300, seed=6)
    assert other["metrics"]["macro_f1"] != first["metrics"]["macro_f1"]  # the seed, not chance, fixes them
    assert set(first["metrics"]) == set(metrics) and set(first["per_label_f1"]) == set(labels)
    for name, entry in first["metrics"].items():
        assert entry["value"] == pytest.approx(metrics[name]) and entry["low"] <= entry["value"] <= entry["high"]
        assert 0.0 < entry["high"] - entry["low"] < 0.3  # 150 records: informative, not degenerate
    for label, entry in first["per_label_f1"].items():
        assert entry["value"] == pytest.approx(per_label[label]["f1"])
        assert entry["support"] == per_label[label]["support"]
        assert entry["low"] <= entry["value"] <= entry["high"]
    assert first["metrics"]["accuracy"]["method"] == "wilson"
    right = sum(t == p for t, p in zip(y_true, y_pred))
    assert (first["metrics"]["accuracy"]["low"], first["metrics"]["accuracy"]["high"]) == \
        pytest.approx(sig.wilson_interval(right, 150))
    # a metric defined otherwise than here (a pack's own) gets no interval rather than one about another number
    changed = dict(metrics, macro_f1=metrics["macro_f1"] + 0.01)
    assert "macro_f1" not in sig.label_intervals(y_true, y_pred, labels, changed, per_label, resamples=100)["metrics"]


def test_entity_intervals_resample_sentences() -> None:
    from verticals.tasks.intervals import _entity_counts

    gold = [["B-ORG", "O", "B-PER", "I-PER"], ["O", "B-LOC", "O"], ["B-ORG", "I-ORG", "O"]] * 10
    pred = [["B-ORG", "O", "B-PER", "O"], ["O", "B-LOC", "O"], ["B-ORG", "I-ORG", "B-LOC"]] * 10
    metrics, _ = entity_metrics(gold, pred)
    records = [SimpleNamespace(tags=t) for t in gold]
    predictions = [SimpleNamespace(tags=t) for t in pred]
    found = sig.entity_intervals(_entity_counts(records, predictions), metrics, resamples=200)
    assert set(found["metrics"]) == {"precision", "recall", "f1", "token_accuracy"} and found["n"] == 30
    for name, entry in found["metrics"].items():
        assert entry["value"] == pytest.approx(metrics[name]) and entry["low"] <= entry["value"] <= entry["high"]
        assert entry["method"] == "bootstrap"


def test_card_shows_bundle_text_as_written_never_as_markup() -> None:
    """Review of the HTML outputs: labels, task and file names went into the Markdown card raw, so a label
    `<img src=x onerror=...>` was live HTML in Markdown viewers that render it, and `a|b` broke the tables."""
    from verticals.bundles.bundle import BundleInfo
    from verticals.delivery.card import model_card

    labels = ["<img src=x onerror=alert(1)>", "a|b\n# Heading", "[click](javascript:alert(2))", "card_arrival"]
    info = BundleInfo(task="text-classification", task_type="text-classification", sdk_version="0", labels=labels,
                      config={}, metrics={"validation": {"accuracy": 0.5}},
                      data={"train": {"file": "<b>train</b>|x.csv", "records": 4, "sha256": "0" * 64}},
                      intervals={"validation": {"per_label_f1": {label: {"value": 0.5, "low": 0.4, "high": 0.6,
                                                                          "support": 3} for label in labels},
                                                "resamples": 100, "seed": 0}})
    card = model_card(info)
    assert "<img" not in card and "<b>" not in card and "\n# Heading" not in card
    assert "&lt;img src=x onerror=alert(1)&gt;" in card and "a\\|b # Heading" in card
    assert "\\[click\\](javascript:alert(2))" in card and "card_arrival" in card
    rows = [line for line in card.splitlines() if line.startswith("| ") and ("x.csv" in line or "Heading" in line)]
    assert len(rows) == 2 and all(len(re.findall(r"(?<!\\)\|", row)) == 5 for row in rows), rows  # 4 columns
