"""Evaluation reports: HTML, PNG plots, model card, atomic writes."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

pytest.importorskip("matplotlib")

import verticals  # noqa: E402
from verticals.bundles.bundle import digest  # noqa: E402
from verticals.cli import main  # noqa: E402
from verticals.delivery.report import find_thresholds, write_report  # noqa: E402
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
    # tied to the bundle (the digest inspect --expect checks) and the data (its full sha256), with intervals
    bundle_digest = digest(trained["binary"])
    data_sha = hashlib.sha256((trained["root"] / "binary.jsonl").read_bytes()).hexdigest()
    assert report["bundle_digest"] == bundle_digest and report["data"]["sha256"] == data_sha
    assert bundle_digest in page and data_sha in page and bundle_digest in card and data_sha in card
    assert report["training"]["learning_rate"] == 1e-4 and report["training"]["epochs_run"] == 1
    assert report["training"]["best_epoch"] == 1 and report["training"]["backbone_digest"]
    found = report["intervals"]
    assert found["metrics"]["accuracy"]["method"] == "wilson" and found["n"] == 24
    for name, value in result.metrics.items():
        if name == "average_precision":
            continue  # a report extra, not one of the task's headline scores
        entry = found["metrics"][name]
        assert entry["value"] == pytest.approx(value) and entry["low"] <= value <= entry["high"]
        assert f"| evaluation (this report) | {name} | {value:.4f} | {entry['low']:.4f} – {entry['high']:.4f} |" \
            in card
    assert set(found["per_label_f1"]) == {"approve", "reject"} and "F1 95% interval" in page
    with only_plugins():
        again = write_report(trained["binary"], trained["root"] / "binary.jsonl", tmp_path / "again")
    assert json.loads((tmp_path / "again" / "report.json").read_text())["intervals"] == found  # seeded
    assert again.metrics == result.metrics
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again", "report"]  # no temporary directory left


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
    from verticals.delivery.report import _fallback_thresholds

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
        # --overwrite replaces only a report Verticals wrote, never a folder holding someone's file
        assert main(args + ["--overwrite"]) == 2
        assert "refusing to delete" in capsys.readouterr().err and (out / "keep.txt").read_text() == "mine"
        (out / "keep.txt").unlink()
        assert main(args + ["--overwrite", "--json"]) == 0
        assert json.loads(capsys.readouterr().out)["n"] == 24
        assert main(args + ["--overwrite", "--json"]) == 0 and (out / "index.html").exists()


# ---- reading well at many labels, small samples, the card from the bundle alone ----------------------
class _Capture:
    """Wraps ``_report_plots._figure`` to keep the figures a plot function draws, to read them as pictures."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        from verticals.delivery import report_plots as _report_plots

        self.figures: list = []
        original = _report_plots._figure

        def figure(*args, **kwargs):  # type: ignore[no-untyped-def]
            self.figures.append(original(*args, **kwargs))
            return self.figures[-1]

        monkeypatch.setattr(_report_plots, "_figure", figure)


def _ticks_top_to_bottom(ax) -> list[str]:  # type: ignore[no-untyped-def]
    """Y tick labels in the order a reader sees them (top of the image first)."""
    ax.figure.canvas.draw()
    ticks = [(t.get_window_extent().y0, t.get_text()) for t in ax.get_yticklabels() if t.get_text()]
    return [text for _, text in sorted(ticks, reverse=True)]  # display y grows upwards


def test_per_label_f1_worst_is_at_the_top(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from verticals.delivery.report_plots import per_label_f1_png

    capture = _Capture(monkeypatch)
    per_label = {"good": {"f1": 0.9, "support": 5}, "worst": {"f1": 0.1, "support": 5},
                 "middle": {"f1": 0.5, "support": 5}}
    per_label_f1_png(tmp_path / "f1.png", per_label, "F1 per label")
    shown = _ticks_top_to_bottom(capture.figures[0].axes[0])
    assert [s.split(" ")[0] for s in shown] == ["worst", "middle", "good"]


def _many(n_labels: int) -> tuple[list[str], list[str], list[str]]:
    labels = [f"intent_number_{i:03d}_with_a_long_name" for i in range(n_labels)]
    y_true = [lab for lab in labels for _ in range(3)]
    # every third record of a label is confused with the next label; label 0 twice with label 1
    y_pred = [labels[(i // 3 + 1) % n_labels] if i % 3 == 2 else t for i, t in enumerate(y_true)]
    y_pred[1] = labels[1]
    return labels, y_true, y_pred


@pytest.mark.parametrize("n_labels", [77, 150])
def test_confusion_and_f1_images_stay_bounded_for_many_labels(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                              n_labels: int) -> None:
    from verticals.delivery.report_plots import confusion_matrix_png, per_label_f1_png

    capture = _Capture(monkeypatch)
    labels, y_true, y_pred = _many(n_labels)
    confusion_matrix_png(tmp_path / "cm.png", y_true, y_pred, labels, "Confusion matrix")
    width, height = _png_size(tmp_path / "cm.png")
    assert width <= 1100 and height <= 1100, (width, height)
    ax = capture.figures[0].axes[0]
    assert not [t for t in ax.get_xticklabels() + ax.get_yticklabels() if t.get_text()], "unreadable tick labels"
    per_label = {lab: {"f1": i / n_labels, "support": 3} for i, lab in enumerate(labels)}
    per_label_f1_png(tmp_path / "f1.png", per_label, "F1 per label")
    width, height = _png_size(tmp_path / "f1.png")
    assert height <= 1400, height
    assert _ticks_top_to_bottom(capture.figures[1].axes[0])[0].startswith(labels[0])  # the worst, on top


def test_confused_pairs_most_frequent_first() -> None:
    from verticals.delivery.report import confused_pairs

    labels, y_true, y_pred = _many(77)
    pairs = confused_pairs(y_true, y_pred, limit=5)
    assert len(pairs) == 5
    assert pairs[0] == (labels[0], labels[1], 2, pytest.approx(2 / 3))
    assert all(t != p for t, p, _, _ in pairs)


@pytest.fixture(scope="module")
def many_labels(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("many")
    backbone = str(make_tiny_backbone(root / "tiny"))
    rows = [{"text": f"question {i} about topic {k}", "label": f"intent_{k:02d}"} for k in range(77) for i in range(3)]
    (root / "data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    with only_plugins():
        verticals.train("text-classification", root / "data.jsonl", output=root / "bundle", backbone=backbone,
                        overrides=["training.epochs=1", "data.validation_fraction=0.34"])
    return {"data": root / "data.jsonl", "bundle": root / "bundle"}


def test_report_with_77_labels_reads_well(many_labels: dict[str, Path], tmp_path: Path) -> None:
    with only_plugins():
        write_report(many_labels["bundle"], many_labels["data"], tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert "<h2>Most confused pairs</h2>" in page and "<th>true</th>" in page and "77 labels</summary>" in page
    for name in ("confusion_matrix.png", "per_label_f1.png"):
        width, height = _png_size(tmp_path / "r" / name)
        assert width <= 1400 and height <= 1400, (name, width, height)


def test_small_sample_warning_with_interval(trained: dict[str, Path], tmp_path: Path) -> None:
    with only_plugins():
        write_report(trained["binary"], trained["root"] / "binary.jsonl", tmp_path / "r")
    page = (tmp_path / "r" / "index.html").read_text()
    assert 'class="warning"' in page and "Only 24 records" in page
    assert "95% interval" in page  # Wilson interval of the accuracy
    card = (tmp_path / "r" / "model_card.md").read_text()
    assert "Only 24 records" in card


def test_card_from_the_bundle_alone(trained: dict[str, Path], tmp_path: Path,
                                    capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "card.md"
    with only_plugins():
        assert main(["card", str(trained["binary"]), "--output", str(out)]) == 0
        card = out.read_text()
        for section in ("## Intended use", "## Data", "## Metrics", "## Thresholds", "## Limitations",
                        "## Versions"):
            assert section in card
        assert "binary.jsonl" in card and "validation" in card and "evaluation (this report)" not in card
        assert "validation records: with fewer than 100" in card  # the stored scores come from a handful
        assert main(["card", str(trained["binary"]), "--output", str(out)]) == 2
        assert "already exists" in capsys.readouterr().err
        assert main(["card", str(trained["binary"]), "--output", str(out), "--overwrite"]) == 0
        assert main(["card", str(tmp_path / "nope"), "--output", str(tmp_path / "c2.md")]) == 2
        assert not (tmp_path / "c2.md").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [".card.md.verticals-output.json", "card.md"]


def test_learning_curve_has_separate_panels_and_legends_off_the_lines(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    from verticals.delivery.report_plots import learning_curve

    capture = _Capture(monkeypatch)
    history = [{"epoch": i, "train_loss": 2.0 / i, "validation_loss": 2.0 / i + 0.05 * i,
                "metrics": {"accuracy": min(1.0, 0.4 + 0.1 * i), "macro_f1": min(1.0, 0.3 + 0.1 * i)},
                "metrics_on": "validation", "best": i == 4} for i in range(1, 9)]
    assert learning_curve(tmp_path / "lc.png", history, "accuracy")
    figure = capture.figures[0]
    figure.canvas.draw()
    loss_ax, metric_ax = figure.axes  # two panels, not one panel with a twin y axis
    top, bottom = loss_ax.get_window_extent(), metric_ax.get_window_extent()
    assert bottom.y1 < top.y0, "the loss and metric panels overlap"
    assert [line.get_label() for line in loss_ax.get_lines() if not line.get_label().startswith("_")] == \
        ["train loss", "val loss"]
    assert {line.get_label() for line in metric_ax.get_lines()} >= {"accuracy", "macro_f1"}
    for ax in (loss_ax, metric_ax):
        legend = ax.get_legend()
        assert legend is not None and legend.get_window_extent().x0 >= ax.get_window_extent().x1, \
            "the legend covers the plotting area"
    width, height = _png_size(tmp_path / "lc.png")
    assert height > 500 and width > 600


def test_labels_with_dollar_signs_are_drawn_as_written(tmp_path):
    """Review of the HTML outputs: matplotlib read '$x^$' (a label) as a maths formula and `verticals report`
    failed with an internal error; 'from $5 to $10' was drawn as maths."""
    from verticals.delivery.report_plots import confusion_matrix_png, per_label_f1_png

    labels = ["$x^$", "from $5 to $10"]
    confusion_matrix_png(tmp_path / "cm.png", labels * 3, labels[::-1] * 3, labels, "confusion")
    per_label_f1_png(tmp_path / "f1.png", {label: {"f1": 0.5} for label in labels}, "$F_1$ per label")
    assert (tmp_path / "cm.png").stat().st_size > 0 and (tmp_path / "f1.png").stat().st_size > 0
