"""The README's Python examples type-check: a type checker knows the fields of what verticals.load returns."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import verticals

pytest.importorskip("mypy")

README = Path(__file__).resolve().parents[1] / "README.md"
# Only Verticals and pydantic (whose BaseModel the prediction types derive from) are analysed: the heavy
# libraries behind them (torch, transformers, numpy, ...) are treated as untyped, which keeps this at seconds.
MYPY_INI = """\
[mypy]
follow_imports = skip
ignore_missing_imports = True
warn_unused_ignores = False
[mypy-verticals,verticals.*,pydantic,pydantic.*,pydantic_core,pydantic_core.*,typing_extensions,annotated_types]
follow_imports = silent
"""


def readme_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(encoding="utf-8"), flags=re.S)
    typed = [block for block in blocks if "verticals.load(" in block]
    assert typed, "README.md has no Python example that loads a bundle"
    return "\n".join(typed)


def test_readme_python_passes_mypy(tmp_path: Path) -> None:
    code = readme_python()
    assert ".label" in code, "the README example reads a prediction's field"
    (tmp_path / "readme_example.py").write_text(code, encoding="utf-8")
    # The control: the same example with a misspelt field must fail, or this test could not fail.
    (tmp_path / "readme_typo.py").write_text(code.replace(".label", ".lable"), encoding="utf-8")
    (tmp_path / "mypy.ini").write_text(MYPY_INI, encoding="utf-8")
    # An editable install is found through an import hook mypy cannot follow: point it at the source tree.
    # An installed wheel sits in site-packages, which mypy searches itself (and refuses in MYPYPATH).
    package_root = Path(verticals.__file__).resolve().parents[1]
    env = dict(os.environ)
    if package_root.name != "site-packages":
        env["MYPYPATH"] = str(package_root)
    proc = subprocess.run(
        [sys.executable, "-m", "mypy", "--config-file", "mypy.ini", "--cache-dir", str(tmp_path / "cache"),
         "--no-error-summary", "readme_example.py", "readme_typo.py"],
        cwd=tmp_path, capture_output=True, text=True, timeout=600, env=env,
        check=False,
    )
    lines = [line for line in proc.stdout.splitlines() if ": error:" in line]
    assert not [line for line in lines if line.startswith("readme_example.py")], proc.stdout + proc.stderr
    assert any('"TextPrediction" has no attribute "lable"' in line for line in lines), proc.stdout + proc.stderr
