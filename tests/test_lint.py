"""The project's own lint configuration ([tool.ruff] in pyproject.toml) holds for every file in the repository:
line length, unused imports, sorted import blocks, the bugbear and pyupgrade rules it selects."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def test_ruff_check_is_clean() -> None:
    # the environment's own ruff (the test extra pins it), never another version found on PATH
    pytest.importorskip("ruff", reason="ruff is not installed (it comes with the test extra)")
    result = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--output-format", "concise",
                             str(ROOT)], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
