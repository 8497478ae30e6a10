"""Pack authoring (issue 29 item 10): a scaffolded pack trains as the generic task does on small data, its
``--description`` describes its task too, a typo in a pack's defaults is the pack's error, and a plugin that
failed to load is named with its reason in the final error."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
import verticals
from verticals import ConfigError, PackSpec, TaskSpec, catalog_with, hookimpl, set_catalog
from verticals.authoring.scaffold import scaffold_pack
from verticals.cli import main
from verticals.testing import only_plugins

from .test_scaffold import _discoverable

COMPARED = ("learning_rate", "batch_size", "epochs", "min_steps", "warmup_ratio", "early_stopping_patience")


def test_a_scaffolded_pack_trains_with_the_generic_tasks_small_data_rule(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with only_plugins():
        scaffold_pack("legal", tmp_path / "pack", task="clause", labels=["a", "b", "c", "d"])
        generic = verticals.build_task("text-classification")[0].config.training
    _discoverable(tmp_path / "pack", "legal", tmp_path / "site", monkeypatch)
    with only_plugins("legal"):
        packed = verticals.build_task("legal.clause")[0].config.training
        # the user's epoch count is still literal
        literal = verticals.build_task("legal.clause", overrides=["training.epochs=4"])[0].config.training
    assert {k: getattr(packed, k) for k in COMPARED} == {k: getattr(generic, k) for k in COMPARED}
    assert packed.min_steps == 300  # 32 rows at batch 32 train up to 50 epochs, not 3 (or 5 of 2 steps)
    assert literal.epochs == 4 and literal.min_steps is None


def test_new_pack_description_describes_its_task(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    text = "Clauses of commercial leases: liability, termination, payment"
    with only_plugins():
        assert main(["new-pack", "leases", "--output", str(tmp_path / "pack"), "--labels", "a,b",
                     "--description", text]) == 0
    _discoverable(tmp_path / "pack", "leases", tmp_path / "site", monkeypatch)
    with only_plugins("leases"):
        capsys.readouterr()
        assert main(["packs", "--json"]) == 0
    (pack,) = json.loads(capsys.readouterr().out)["packs"]
    assert pack["description"] == text and pack["tasks"][0]["description"] == text
    assert text in (tmp_path / "pack" / "README.md").read_text(encoding="utf-8")


def _pack_with_defaults(defaults: dict) -> object:
    class Plugin:
        @hookimpl
        def register_packs(self, register):  # type: ignore[no-untyped-def]
            register(PackSpec(name="legal", version="0.1.0", description="Legal.", tasks=[TaskSpec(
                name="clause", task_type="text-classification", description="Clauses.", labels=["a", "b"],
                metrics=["accuracy"], primary_metric="accuracy", defaults=defaults)]))
    return Plugin()


@pytest.mark.parametrize("defaults, wrong", [
    ({"training": {"learnig_rate": 1e-4}}, "training.learnig_rate; did you mean training.learning_rate"),
    ({"data": {"text_colum": "body"}}, "text_colum"),
    ({"training": {"epochs": 3}, "training@base": {"batch_sise": 8}}, "batch_sise"),  # only for base-size
])
def test_a_typo_in_a_packs_defaults_is_reported_as_the_packs(defaults: dict, wrong: str) -> None:
    set_catalog(catalog_with(_pack_with_defaults(defaults)))
    try:
        with pytest.raises(ConfigError) as refused:
            verticals.build_task("legal.clause")
        assert "pack 'legal'" in str(refused.value) and wrong in str(refused.value), refused.value
        assert "bug in the pack" in str(refused.value)
        # the user's own typo stays the user's
        set_catalog(catalog_with(_pack_with_defaults({"training": {"epochs": 3}})))
        with pytest.raises(ConfigError) as mine:
            verticals.build_task("legal.clause", overrides=["training.learnig_rate=1e-4"])
        assert "pack 'legal'" not in str(mine.value) and "learnig_rate" in str(mine.value)
    finally:
        set_catalog(None)


def test_a_plugin_that_fails_to_load_is_named_in_the_final_error(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    scaffold = tmp_path / "pack"
    (scaffold / "src" / "verticals_legal").mkdir(parents=True)
    (scaffold / "src" / "verticals_legal" / "__init__.py").write_text("")
    (scaffold / "src" / "verticals_legal" / "plugin.py").write_text("import verticals_legal_missing_dependency\n")
    _discoverable(scaffold, "legal", tmp_path / "site", monkeypatch)
    with only_plugins("legal"):
        with pytest.warns(verticals.plugins.manager.PluginWarning), pytest.raises(ConfigError) as refused:
            verticals.build_task("legal.clause")
        capsys.readouterr()
        assert main(["config", "legal.clause"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    for message in (str(refused.value), err[-1]):
        assert "plugin 'legal' (verticals-legal 0.1.0) failed to load" in message, message
        assert "No module named 'verticals_legal_missing_dependency'" in message, message


def test_the_min_steps_line_adds_up(caplog: pytest.LogCaptureFixture) -> None:
    from verticals.config import resolve_config
    from verticals.trainers.transformers import epoch_budget

    cfg = resolve_config({}).training
    with caplog.at_level(logging.INFO, logger="verticals"):
        assert epoch_budget(cfg, 32, 32) == 50  # capped: 50 steps, short of 300
        assert epoch_budget(cfg, 616, 32) == 15
    capped, reached = [r.getMessage() for r in caplog.records]
    assert "32 rows make 1 step per epoch" in capped and "50 epochs (50 steps, capped at 50 epochs, below " \
        "training.min_steps=300)" in capped, capped
    assert "616 rows make 20 steps per epoch" in reached and "15 epochs (300 steps, reaching " \
        "training.min_steps=300)" in reached, reached


def test_a_bundle_whose_pack_failed_to_load_says_why(tmp_path: Path, tiny_backbone: Path,
                                                     text_data: dict[str, Path]) -> None:
    from verticals.plugins.manager import BrokenPlugin, Catalog

    set_catalog(catalog_with(_pack_with_defaults({"training": {"epochs": 1}})))
    try:
        verticals.train("legal.clause", text_data["train"], output=tmp_path / "b", backbone=str(tiny_backbone),
                        overrides=['labels=["billing", "shipping", "account"]'], quiet=True, check=False)
        builtins = catalog_with()
        set_catalog(Catalog(task_types=builtins.task_types, heads=builtins.heads, backbones=builtins.backbones,
                            trainers=builtins.trainers, broken=[BrokenPlugin(
                                "legal", "verticals-legal 0.1.0", "ModuleNotFoundError: No module named 'pdfminer'")]))
        with pytest.raises(verticals.BundleError) as refused:
            verticals.load(tmp_path / "b")
        assert "needs the 'legal' pack; plugin 'legal' (verticals-legal 0.1.0) failed to load: " \
            "ModuleNotFoundError: No module named 'pdfminer'" in str(refused.value), refused.value
        assert "not installed" not in str(refused.value)
    finally:
        set_catalog(None)
