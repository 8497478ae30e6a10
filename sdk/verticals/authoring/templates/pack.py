"""Templates of a scaffolded pack distribution; ``$names`` are filled in by :mod:`verticals.authoring.scaffold`."""

PYPROJECT = '''[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "$dist"
version = "0.1.0"
description = "$description"
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["$core_requirement"]

[project.optional-dependencies]
test = ["pytest>=8"]

# This entry point is how Verticals finds the pack: `verticals packs` lists it once installed.
[project.entry-points.verticals]
$name = "$module.plugin"

[tool.setuptools.packages.find]
where = ["src"]

[tool.setuptools.package-data]
$module = ["py.typed"]

[tool.pytest.ini_options]
addopts = "-ra --import-mode=importlib"
'''

INIT = '''"""Verticals pack '$name': $description"""

__version__ = "0.1.0"
'''

PLUGIN = '''"""Entry-point target of the '$name' pack: what it offers, as configuration."""

from __future__ import annotations

from verticals import PackSpec, TaskSpec, hookimpl

from . import __version__

$const = TaskSpec(
    name="$task",
    task_type="$task_type",
    description="$task_description",
    labels=$labels,
    metrics=$metrics,
    primary_metric="$primary_metric",
    # Layered under the user's --config and --set. These are the core's own defaults, written out to tune by
    # experiment on your validation data. "epochs" is a budget: with "min_steps" set too, a small data set gets
    # more epochs (up to 50) until training makes that many optimizer steps, and early stopping ends it when
    # validation stops improving. Drop "min_steps" and "epochs" is literal (docs/writing-a-pack.md).
    defaults={"training": {"learning_rate": 1e-4, "batch_size": 32, "epochs": 3, "min_steps": 300,
                           "warmup_ratio": 0.1}},
)


@hookimpl
def register_packs(register):  # type: ignore[no-untyped-def]
    register(PackSpec(name="$name", version=__version__, description="$description",
                      tasks=[$const]))
'''

CONFTEST = '''import pytest

from verticals.testing import only_plugins

pytest.importorskip("$module")


@pytest.fixture(autouse=True, scope="module")
def _only_this_pack():
    with only_plugins("$name"):  # tests never load whatever else happens to be installed
        yield
'''

TEST_CONFORMANCE = '''"""The Verticals conformance kit: registration, defaults, training, bundle round trip, metrics."""

from __future__ import annotations

import json
from pathlib import Path

from verticals.conformance import PackConformance

DATA = Path(__file__).resolve().parents[1] / "data"


class TestPack(PackConformance):
    pack = "$name"

    def make_data(self, task: str, directory: Path) -> dict:
        return {"train": DATA / "train.jsonl", "validation": DATA / "validation.jsonl"}


def test_data_uses_declared_labels() -> None:
    from verticals import get_catalog

    declared = set(get_catalog().packs.get("$name").task("$task").labels)
    for name in ("train.jsonl", "validation.jsonl"):
        for line in (DATA / name).read_text(encoding="utf-8").splitlines():
            record = json.loads(line)
            found = set(record["tags"]) if "tags" in record else {record["label"]}
            assert found <= declared, f"{name}: {found - declared} not declared in the pack"
'''

README = '''# $dist

Verticals pack **$name**: $description

Task `$name.$task` ($task_type): $task_description

## Install and use

```bash
pip install -e .
verticals packs                                   # lists '$name'
verticals train $name.$task --train data/train.jsonl --validation data/validation.jsonl --output bundle
verticals evaluate bundle --data data/validation.jsonl
verticals predict bundle $example
pytest tests -q                                   # conformance kit with a tiny random backbone
```

`data/` holds a starter data set: replace it with real examples of your domain (JSONL, CSV or CoNLL;
see `verticals train --help`). Tune the defaults in `src/$module/plugin.py` on validation data.
'''
