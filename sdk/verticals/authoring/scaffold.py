"""``verticals new-pack NAME --output DIR``: scaffold a pack distribution that installs with pip.

The scaffold has a ``pyproject.toml`` with the ``verticals`` entry point, a hookimpl ``plugin.py``
declaring the pack's task (labels, metrics, defaults), a starter data set in ``data/``, a README and a
test running the conformance kit. Everything is written to a temporary directory and renamed into place.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from string import Template

from .._version import __version__
from ..bundles.bundle import atomic_directory
from ..errors import ConfigError, option
from .templates import pack as templates

NAME = re.compile(r"^[a-z][a-z0-9_]*$")
SUPPORTED = ("text-classification", "token-classification")
STARTER_PER_LABEL = 8


def core_requirement(version: str = __version__) -> str:
    """The core range a pack built against ``version`` declares: same minor while the major is 0 (where a
    minor may break hooks), same major afterwards, e.g. ``verticals>=0.1,<0.2``."""
    major, minor = (int(part) for part in version.split(".")[:2])
    upper = f"{major}.{minor + 1}" if major == 0 else f"{major + 1}"
    return f"verticals>={major}.{minor},<{upper}"


def _starter_records(task_type: str, labels: Sequence[str], per_label: int) -> list[dict[str, object]]:
    """A few obviously synthetic records per label so the scaffold trains before real data exists."""
    records: list[dict[str, object]] = []
    for i in range(per_label):
        if task_type == "text-classification":
            records += [{"text": f"replace me: example {i + 1} of {label.replace('_', ' ')}", "label": label}
                        for label in labels]
        else:
            for kind in labels:
                tokens = ["Replace", "me", ":", kind.lower(), f"entity{i + 1}", "here"]
                tags = ["O", "O", "O", f"B-{kind}", f"I-{kind}", "O"]
                records.append({"tokens": tokens, "tags": tags})
    return records


def scaffold_pack(name: str, output: str | Path, *, task: str = "classify", task_type: str = "text-classification",
                  labels: Sequence[str] = (), description: str | None = None, overwrite: bool = False) -> Path:
    """Write a new pack distribution for pack ``name`` to the directory ``output`` and return it.

    ``labels`` are the class labels (text classification) or entity types (token classification, expanded
    to BIO tags).
    """
    from ..config import distinct_labels
    from ..plugins.manager import get_catalog
    from ..tasks.token_classification import bio_labels

    if not NAME.match(name):
        raise ConfigError(f"pack name '{name}' must be lowercase letters, digits and '_', starting with a letter")
    if not NAME.match(task):
        raise ConfigError(f"task name '{task}' must be lowercase letters, digits and '_', starting with a letter")
    if task_type not in SUPPORTED:
        raise ConfigError(f"new-pack scaffolds task types {', '.join(SUPPORTED)}; got '{task_type}'")
    labels = [label.strip() for label in labels if label.strip()]
    try:
        labels = distinct_labels(labels)
    except ValueError as exc:
        raise ConfigError(f"--labels: {exc}") from None
    if len(set(labels)) < (2 if task_type == "text-classification" else 1):
        raise ConfigError("give the labels (text classification: at least 2) or entity types (token "
                          "classification), e.g. --labels auto,property,injury")
    if name in get_catalog().packs:
        raise ConfigError(f"a pack named '{name}' is already installed ({get_catalog().packs.source(name)}); "
                          f"choose another name")
    output = Path(output)
    if output.exists() and any(output.iterdir()) and not overwrite:
        raise ConfigError(f"{output} already exists and is not empty; choose another {option('output')} or pass "
                          f"{option('overwrite', True)}")
    if output.is_dir() and not any(output.iterdir()):
        output.rmdir()  # an empty directory may be replaced without --overwrite

    task_cls = get_catalog().task_types.get(task_type)
    declared = bio_labels({f"B-{t}" for t in labels}) if task_type == "token-classification" else labels
    module = f"verticals_{name}"
    # The pack's only task is what the pack is about: a given description says what both do (`verticals packs`
    # lists the task's, `verticals config` and the README the pack's).
    task_description = (description.strip() if description and description.strip() else
                        f"{task.replace('_', ' ').capitalize()} ({task_type}) for the {name} domain.")
    description = description or f"{name.replace('_', ' ').capitalize()} pack for Verticals."
    example = "'John Smith visited Paris'" if task_type == "token-classification" else "'some text to classify'"
    values = {
        "name": name, "dist": f"verticals-{name.replace('_', '-')}", "module": module, "task": task,
        "task_type": task_type, "const": task.upper(), "labels": json.dumps(declared),
        "metrics": json.dumps(list(task_cls.metric_names)), "primary_metric": task_cls.primary_metric,
        "description": description.replace('"', "'"), "core_requirement": core_requirement(), "example": example,
        "task_description": task_description.replace('"', "'"),
    }
    records = _starter_records(task_type, labels, STARTER_PER_LABEL)
    n_val = max(len(labels), len(records) // 4)
    files = {
        "pyproject.toml": templates.PYPROJECT, "README.md": templates.README,
        f"src/{module}/__init__.py": templates.INIT, f"src/{module}/plugin.py": templates.PLUGIN,
        f"src/{module}/py.typed": "", "tests/conftest.py": templates.CONFTEST,
        "tests/test_conformance.py": templates.TEST_CONFORMANCE,
    }
    with atomic_directory(output, overwrite, kind="pack") as tmp:
        for relative, text in files.items():
            path = tmp / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(Template(text).substitute(values), encoding="utf-8")
        (tmp / "data").mkdir()
        for split, rows in (("train", records[n_val:]), ("validation", records[:n_val])):
            (tmp / "data" / f"{split}.jsonl").write_text(
                "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return output
