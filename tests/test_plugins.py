"""Plugin wiring, tested with fake plugins (never with whatever happens to be installed)."""

from __future__ import annotations

import inspect
import json
import textwrap
import warnings
from pathlib import Path

import pytest
import verticals
from verticals import PackSpec, TaskSpec, hookimpl
from verticals.errors import ConfigError, PluginError
from verticals.plugins import hookspecs
from verticals.plugins.manager import catalog_with

from .conftest import run_cli

HOOKS = [name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if name.startswith("register_")]


class FakePack:
    @hookimpl
    def register_packs(self, register):
        register(PackSpec(name="fake", version="1.0", description="A fake pack", tasks=[
            TaskSpec(name="topic", task_type="text-classification", labels=["a", "b"], metrics=["accuracy"],
                     primary_metric="accuracy", defaults={"training": {"epochs": 9}})]))


class FakeEverything:
    """Implements every hook, so each hook is exercised."""

    calls: list[str] = []

    @hookimpl
    def register_packs(self, register):
        FakeEverything.calls.append("register_packs")

    @hookimpl
    def register_task_types(self, register):
        FakeEverything.calls.append("register_task_types")

    @hookimpl
    def register_heads(self, register):
        FakeEverything.calls.append("register_heads")

    @hookimpl
    def register_backbones(self, register):
        FakeEverything.calls.append("register_backbones")
        register("fake-backbone", lambda: "/nonexistent")

    @hookimpl
    def register_trainers(self, register):
        FakeEverything.calls.append("register_trainers")


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_documented_and_called(hook):
    assert (getattr(hookspecs, hook).__doc__ or "").strip(), f"{hook} has no docstring"
    FakeEverything.calls.clear()
    catalog_with(FakeEverything())
    assert hook in FakeEverything.calls


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "writing-a-pack.md"


def _signature(fn) -> str:  # type: ignore[no-untyped-def]
    return f"def {fn.__name__}{inspect.signature(fn)}".replace("'", "")


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_is_in_the_pack_guide_with_its_signature(hook):
    assert _signature(getattr(hookspecs, hook)) in GUIDE.read_text(encoding="utf-8")


def _overridable(cls: type) -> list[str]:
    return sorted(name for name, member in vars(cls).items()
                  if not name.startswith("_") and (inspect.isfunction(member) or isinstance(member, classmethod)))


def test_pack_guide_covers_task_type_methods_and_new_pack():
    """A partner writes a custom task type from the guide alone: every method of the interfaces is named."""
    from verticals.heads.base import Head
    from verticals.tasks.base import TaskType
    from verticals.tasks.transformer import TransformerTask
    from verticals.trainers.base import Trainer

    guide = GUIDE.read_text(encoding="utf-8")
    assert "verticals new-pack" in guide
    interfaces = {TaskType: _overridable(TaskType), TransformerTask: ["labels_from", "encode", "decode",
                                                                      "class_weights"],
                  Head: ["forward"], Trainer: _overridable(Trainer)}
    missing = [f"{cls.__name__}.{name}" for cls, names in interfaces.items() for name in names
               if f"{name}(" not in guide]
    assert not missing, f"docs/writing-a-pack.md does not describe {missing}"
    for attribute in ("name", "Record", "Prediction", "DataOptions", "Options", "metric_names", "primary_metric",
                      "greater_is_better", "label_field", "head_name"):
        assert f"`{attribute}`" in guide, attribute


def test_builtins_register_through_the_hooks():
    catalog = catalog_with()
    assert catalog.task_types.names() == ["text-classification", "token-classification"]
    assert {"sequence-classification", "token-classification"} <= set(catalog.heads.names())
    assert "all-MiniLM-L6-v2" in catalog.backbones
    assert "transformers" in catalog.trainers
    assert catalog.packs.names() == []


def test_pack_task_resolves_with_defaults():
    catalog = catalog_with(FakePack())
    spec, pack = catalog.task("fake.topic")
    assert pack == "fake" and spec.defaults["training"]["epochs"] == 9
    verticals.set_catalog(catalog)
    try:
        task, _, _ = verticals.build_task("fake.topic", overrides=["training.epochs=2"])
        assert task.config.training.epochs == 2 and task.config.labels == ["a", "b"]
    finally:
        verticals.set_catalog(None)


def test_unknown_task_suggests_close_name():
    catalog = catalog_with(FakePack())
    with pytest.raises(ConfigError, match="did you mean 'fake.topic'"):
        catalog.task("fake.topik")


def test_duplicate_pack_names_both_sources():
    with pytest.raises(PluginError, match="registered twice"):
        catalog_with(FakePack(), FakePack())


def test_hook_raising_is_contained():
    class Raising:
        @hookimpl
        def register_packs(self, register):
            raise RuntimeError("boom")

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        catalog = catalog_with(Raising(), FakePack())
    assert "fake" in catalog.packs
    assert any("boom" in b.error for b in catalog.broken)
    assert any("boom" in str(w.message) for w in caught)


def test_misspelled_hookimpl_fails_loudly():
    class Misspelled:
        @hookimpl
        def register_pack(self, register):  # missing 's'
            pass

    with pytest.raises(Exception, match="register_pack"):
        catalog_with(Misspelled())


# ---- real entry points through the console script ----------------------------------------------------
def _fake_distribution(root: Path, name: str, module_source: str) -> None:
    (root / f"{name}.py").write_text(textwrap.dedent(module_source))
    info = root / f"verticals_{name}-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: verticals-{name}\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(f"[verticals]\n{name} = {name}\n")


GOOD = """
    from verticals import PackSpec, TaskSpec, hookimpl

    @hookimpl
    def register_packs(register):
        register(PackSpec(name="good", version="0.1", description="good pack", tasks=[
            TaskSpec(name="topic", task_type="text-classification", metrics=["accuracy"], primary_metric="accuracy")]))
"""


def test_packs_json_with_no_packs():
    result = run_cli("packs", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["packs"] == [] and {t["name"] for t in data["generic_tasks"]} == {"text-classification",
                                                                                   "token-classification"}


def test_packs_json_with_entry_point_plugin_and_a_broken_one(tmp_path):
    _fake_distribution(tmp_path, "good", GOOD)
    _fake_distribution(tmp_path, "broken", "import not_a_module_anywhere\n")
    env = {"PYTHONPATH": str(tmp_path)}
    result = run_cli("packs", "--json", env={**env, "VERTICALS_PLUGINS": "good,broken"})
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [p["name"] for p in data["packs"]] == ["good"]
    assert data["packs"][0]["tasks"][0]["name"] == "good.topic"
    assert data["broken"][0]["distribution"].startswith("verticals-broken")
    assert "verticals-broken" in result.stderr and "Traceback" not in result.stderr
    # the environment variable restricts which plugins load
    only_good = json.loads(run_cli("packs", "--json", env={**env, "VERTICALS_PLUGINS": "good"}).stdout)
    assert only_good["broken"] == []
