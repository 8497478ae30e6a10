"""A few tests with the real embedded all-MiniLM-L6-v2 (offline)."""

from __future__ import annotations

import pytest
import verticals
from verticals.backbones.loading import embedded_minilm_path, load_backbone, load_tokenizer

from .conftest import run_cli, text_rows, write_csv

pytestmark = pytest.mark.integration


def test_embedded_backbone_loads_offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    path = embedded_minilm_path()
    model, tokenizer = load_backbone(path), load_tokenizer(path)
    assert model.config.hidden_size == 384 and tokenizer.is_fast


def test_default_backbone_fine_tunes_and_predicts_via_cli(tmp_path):
    train = write_csv(tmp_path / "train.csv", text_rows(12, 0))
    validation = write_csv(tmp_path / "validation.csv", text_rows(4, 1))
    result = run_cli("train", "text-classification", "--train", str(train), "--validation", str(validation),
                     "--output", str(tmp_path / "b"), "--set", "training.epochs=3",
                     "--set", "training.learning_rate=2e-4", "--set", "training.batch_size=8",
                     env={"HF_HUB_OFFLINE": "1"})
    assert result.returncode == 0, result.stderr
    predictor = verticals.load(tmp_path / "b")
    assert predictor.info.config["training"]["backbone"] == "all-MiniLM-L6-v2"
    assert predictor.info.metrics["validation"]["accuracy"] >= 0.9
    assert predictor.predict(["I need a refund for this charge"])[0].label == "billing"


def test_readme_dataframe_round_trip_runs(tmp_path, monkeypatch):
    """The README's DataFrame example (train -> evaluate -> predict, a client's column names) runs as printed."""
    pd = pytest.importorskip("pandas")
    import re
    from pathlib import Path

    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    (code,) = [block for block in re.findall(r"```python\n(.*?)```", readme, re.S) if "pd.read_csv" in block]
    monkeypatch.chdir(tmp_path)
    rows = text_rows(12, 0)
    pd.DataFrame({"utterance": [r["text"] for r in rows], "intent": [r["label"] for r in rows]}).to_csv(
        "tickets.csv", index=False)
    pd.DataFrame({"sentence": [r["text"] for r in text_rows(2, 1)], "label": "?"}).to_csv(
        "other_client.csv", index=False)
    namespace: dict = {"verticals": verticals}
    exec(compile(code, "README.md", "exec"), namespace)  # noqa: S102 - the README's own example
    data = verticals.load("bundles/tickets").info.data
    assert data["train"]["source"] == "<DataFrame>" and data["train"]["records"] == len(rows)
