"""medical.ner encodes records in sliding windows: distillation refuses it with one clear line (exit 2)."""

from __future__ import annotations

from pathlib import Path

from verticals import api
from verticals.cli import main

from .data import write_conll


def test_distilling_a_windowed_tagger_is_refused(tmp_path: Path, tiny_backbone: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    write_conll(tmp_path / "train.conll", repeat=2)
    api.train("medical.ner", tmp_path / "train.conll", output=tmp_path / "teacher", backbone=str(tiny_backbone),
              overrides=["training.epochs=1", "training.batch_size=8"])
    code = main(["distill", str(tmp_path / "teacher"), "--train", str(tmp_path / "train.conll"), "--output",
                 str(tmp_path / "student"), "--backbone", str(tiny_backbone), "--set", "training.epochs=1"])
    err = capsys.readouterr().err
    assert code == 2 and "does not support yet" in err and "Traceback" not in err, err
    assert not (tmp_path / "student").exists()
