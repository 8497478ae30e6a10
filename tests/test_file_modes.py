"""Bundles and exports are written with the user's umask: another user of a server can read a delivered model."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
import verticals

from .conftest import FAST, text_rows, write_csv


def _modes(directory: Path) -> dict[str, int]:
    return {p.relative_to(directory).as_posix(): stat.S_IMODE(p.stat().st_mode)
            for p in directory.rglob("*") if p.is_file()}


@pytest.mark.parametrize("umask", [0o022, 0o027])
def test_bundle_and_export_files_follow_the_umask(tiny_backbone, tmp_path, umask):
    train = write_csv(tmp_path / "train.csv", text_rows(6, 0))
    previous = os.umask(umask)
    try:
        verticals.train("text-classification", train, output=tmp_path / "b", overrides=FAST,
                        backbone=str(tiny_backbone))
        from verticals.delivery.export import export_onnx

        export_onnx(tmp_path / "b", tmp_path / "onnx")
    finally:
        os.umask(previous)
    for directory in (tmp_path / "b", tmp_path / "onnx"):
        modes = _modes(directory)
        assert "head.safetensors" in modes or "model.onnx" in modes
        wrong = {name: oct(mode) for name, mode in modes.items() if mode != 0o666 & ~umask}
        assert not wrong, f"{directory.name}: expected {oct(0o666 & ~umask)}, found {wrong}"
        assert stat.S_IMODE(directory.stat().st_mode) == 0o777 & ~umask
    verticals.load(tmp_path / "b")  # modes changed before the manifest: the bundle still verifies
