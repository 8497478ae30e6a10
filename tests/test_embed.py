"""Typed results and embeddings: Predictor.embed, load(prediction=...)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import verticals
from verticals import ConfigError, TextPrediction, TokenPrediction

from .conftest import FAST


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Path]:
    from .conftest import conll_text, text_rows, write_csv

    root = tmp_path_factory.mktemp("embed")
    write_csv(root / "train.csv", text_rows(12, 0))
    (root / "train.conll").write_text(conll_text(24, 0), encoding="utf-8")
    verticals.train("text-classification", root / "train.csv", output=root / "tc", backbone=str(tiny_backbone),
                    overrides=FAST)
    verticals.train("token-classification", root / "train.conll", output=root / "ner",
                    backbone=str(tiny_backbone), overrides=FAST)
    return {"tc": root / "tc", "ner": root / "ner"}


TEXTS = ["question about my invoice and the refund", "where is the courier", "password reset please"]


@pytest.mark.parametrize("name", ["tc", "ner"])
def test_embed_is_the_fine_tuned_encoder(bundles: dict[str, Path], tiny_backbone: Path, name: str) -> None:
    from verticals.backbones.embeddings import encode_texts
    from verticals.backbones.loading import load_backbone, load_tokenizer

    predictor = verticals.load(bundles[name])
    vectors = predictor.embed(TEXTS)
    assert vectors.shape == (3, 32) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert np.array_equal(vectors, predictor.embed(TEXTS))  # deterministic (dropout off)
    assert np.allclose(predictor.embed(TEXTS[1:2]), vectors[1:2], atol=1e-5)  # no batch effects
    raw = encode_texts(load_backbone(tiny_backbone), load_tokenizer(tiny_backbone), TEXTS)
    assert np.abs(vectors - raw).max() > 1e-3  # fine-tuning moved the encoder
    onnx = verticals.load(bundles[name], engine="onnx").embed(TEXTS)
    assert np.allclose(onnx, vectors, atol=1e-4)
    assert predictor.embed([]).shape == (0, 32)
    with pytest.raises(TypeError, match="list"):
        predictor.embed("one text")  # type: ignore[arg-type]


def test_embed_pools_as_the_head(bundles: dict[str, Path], tiny_backbone: Path, tmp_path: Path) -> None:
    """A classifier that pools with [CLS] embeds with [CLS]: the vector is the one the head reads."""
    from .conftest import text_rows, write_csv

    write_csv(tmp_path / "train.csv", text_rows(8, 0))
    cls = verticals.train("text-classification", tmp_path / "train.csv", output=tmp_path / "cls",
                          backbone=str(tiny_backbone),
                          overrides=[*FAST, "training.epochs=1", "training.head.pooling=cls"])
    task = cls.task
    encoded = task.tokenizer_(TEXTS[:1], return_tensors="pt")
    hidden = task.model_.backbone(**encoded).last_hidden_state[:, 0].detach().numpy()
    assert np.allclose(cls.embed(TEXTS[:1]), hidden / np.linalg.norm(hidden), atol=1e-5)


def test_load_with_a_prediction_type_checks_it(bundles: dict[str, Path]) -> None:
    typed = verticals.load(bundles["tc"], prediction=TextPrediction)
    assert isinstance(typed.predict(TEXTS)[0], TextPrediction)
    with pytest.raises(ConfigError, match="predicts TextPrediction, not TokenPrediction"):
        verticals.load(bundles["tc"], prediction=TokenPrediction)
