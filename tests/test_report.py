"""Evaluation reports: HTML, PNG plots, model card, atomic writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

import verticals  # noqa: E402
from verticals.cli import main  # noqa: E402
from verticals.report import find_thresholds, write_report  # noqa: E402
from verticals.testing import make_tiny_backbone, only_plugins  # noqa: E402

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _png_size(path: Path) -> tuple[int, int]:
    raw = path.read_bytes()
    assert raw[:8] == PNG_MAGIC, f"{path.name} is not a PNG"
    return int.from_bytes(raw[16:20], "big"), int.from_bytes(raw[20:24], "big")


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("report")
    backbone = str(make_tiny_backbone(root / "tiny"))
    rows = [{"text": f"{w} claim number {i}", "label": lab} for i in range(12)
            for lab, w in (("approve", "valid"), ("reject", "fraudulent"))]
    (root / "binary.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (root / "ner.jsonl").write_text("".join(json.dumps(r) + "\n" for r in [
        {"tokens": ["Acme", "bought", "Widget", "Inc"], "tags": ["B-ORG", "O", "B-ORG", "I-ORG"]},
        {"tokens": ["Shares", "of", "Acme", "rose"], "tags": ["O", "O", "B-ORG", "O"]}] * 6))
    with only_plugins():
        verticals.train("text-classification", root / "binary.jsonl", output=root / "binary", backbone=backbone,
                        overrides=["training.epochs=1"])
        verticals.train("token-classification", root / "ner.jsonl", output=root / "ner", backbone=backbone,
                        overrides=["training.epochs=1"])
    return {"root": root, "binary": root / "binary", "ner": root / "ner"}


def test_binary_report(trained: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "report"
    with only_plugins():
        result = write_report(trained["binary"], trained["root"] / "binary.jsonl", out)
        expected = verticals.load(trained["binary"]).evaluate(trained["root"] / "binary.jsonl")
    assert set(result.files) == {"index.html", "model_card.md", "report.json", "confusion_matrix.png",
                                 "per_label_f1.png", "pr_curve.png", "learning_curve.png"}
    for name in ("confusion_matrix.png", "per_label_f1.png", "pr_curve.png"):
        width, height = _png_size(out / name)
        assert width > 300 and height > 200
    assert result.metrics["accuracy"] == pytest.approx(expected.metrics["accuracy"])
    assert 0.0 <= result.metrics["average_precision"] <= 1.0
    page = (out / "index.html").read_text()
    assert '<img src="pr_curve.png"' in page and "macro_f1" in page and "reject" in page
    card = (out / "model_card.md").read_text()
    for section in ("## Intended use", "## Data", "## Metrics", "## Thresholds", "## Limitations", "## Versions"):
        assert section in card
    assert "binary.jsonl" in card and "Verticals SDK (trained): " in card
    report = json.loads((out / "report.json").read_text())
    assert report["evaluation"]["n"] == 24 and report["data"]["records"] == 24
    assert [p.name for p in tmp_path.iterdir()] == ["report"]  # no temporary directory left behind


def test_token_report_has_tag_confusion_and_no_pr_curve(trained: dict[str, Path], tmp_path: Path) -> None:
    with only_plugins():
        result = write_report(trained["ner"], trained["root"] / "ner.jsonl", tmp_path / "r")
    assert "pr_curve.png" not in result.files and "confusion_matrix.png" in result.files
    assert "f1" in result.metrics
    assert "F1 per entity type" in (tmp_path / "r" / "index.html").read_text()


def test_fallback_threshold_tradeoff(trained: dict[str, Path], tmp_path: Path) -> None:
    with only_plugins():
        predictor = verticals.load(trained["binary"])
    # A customer-service-like bundle stores calibrated thresholds in its state.
    predictor.info.state["thresholds"] = {"confidence": 0.55, "similarity": 0.7, "achieved": {"fallback_rate": 0.3}}
    assert find_thresholds(predictor.info.state) == {"thresholds.confidence": 0.55, "thresholds.similarity": 0.7,
                                                     "thresholds.achieved.fallback_rate": 0.3}
    from verticals.report import _fallback_thresholds

    assert _fallback_thresholds(predictor) == {"thresholds.confidence": 0.55}  # only what gates the fallback
    result = write_report(predictor, trained["root"] / "binary.jsonl", tmp_path / "r")
    assert "threshold_tradeoff.png" in result.files
    _png_size(tmp_path / "r" / "threshold_tradeoff.png")
    card = (tmp_path / "r" / "model_card.md").read_text()
    assert "`thresholds.confidence` = 0.5500" in card and "`thresholds.similarity` = 0.7000" in card


def test_existing_output_and_bad_data(trained: dict[str, Path], tmp_path: Path,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "r"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "fine claim", "label": "approve"}\n{"text": "x", "label": "unknown"}\n')
    with only_plugins():
        args = ["report", str(trained["binary"]), "--data", str(trained["root"] / "binary.jsonl"), "--output", str(out)]
        assert main(args) == 2
        assert "already exists" in capsys.readouterr().err
        assert (out / "keep.txt").read_text() == "mine"
        assert main(["report", str(trained["binary"]), "--data", str(bad), "--output", str(tmp_path / "n")]) == 2
        assert "bad.jsonl:2" in capsys.readouterr().err and not (tmp_path / "n").exists()
        assert main(args + ["--overwrite", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["n"] == 24
        assert not (out / "keep.txt").exists() and (out / "index.html").exists()
