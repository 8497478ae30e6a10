"""Per-backbone defaults: a base-size backbone (hidden size >= 768) gets the base variant of the defaults,
under whatever the user set."""

from __future__ import annotations

from pathlib import Path

import pytest
from verticals import api
from verticals.plugins.hookspecs import hookimpl
from verticals.plugins.manager import catalog_with, set_catalog
from verticals.plugins.specs import PackSpec, TaskSpec
from verticals.testing import make_base_width_config


@pytest.fixture(scope="module")
def base_width(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_base_width_config(tmp_path_factory.mktemp("base-width"))


class SizedPack:
    @hookimpl
    def register_packs(self, register):  # type: ignore[no-untyped-def]
        register(PackSpec(name="sized", version="1.0", tasks=[
            TaskSpec(name="topic", task_type="text-classification", labels=["a", "b"], metrics=["accuracy"],
                     primary_metric="accuracy",
                     defaults={"training": {"learning_rate": 8e-5, "epochs": 6},
                               "training@base": {"learning_rate": 3e-5, "epochs": 3}}),
            TaskSpec(name="typo", task_type="text-classification", labels=["a", "b"], metrics=["accuracy"],
                     primary_metric="accuracy", defaults={"training@base": {"learnng_rate": 3e-5}}),
            TaskSpec(name="plain", task_type="text-classification", labels=["a", "b"], metrics=["accuracy"],
                     primary_metric="accuracy", defaults={"training": {"learning_rate": 8e-5, "epochs": 6}}),
        ]))


@pytest.fixture
def sized_pack():  # type: ignore[no-untyped-def]
    set_catalog(catalog_with(SizedPack()))
    yield
    set_catalog(None)


def _training(task: str, backbone: Path, overrides: list[str] | None = None):  # type: ignore[no-untyped-def]
    model, _, _ = api.build_task(task, overrides=overrides, backbone=str(backbone))
    return model.config.training


def test_core_lowers_the_learning_rate_for_a_base_size_backbone(base_width: Path, tiny_backbone: Path) -> None:
    assert _training("text-classification", base_width).learning_rate == 2e-5
    assert _training("text-classification", tiny_backbone).learning_rate == 1e-4


def test_the_users_learning_rate_wins(base_width: Path, tmp_path: Path) -> None:
    assert _training("text-classification", base_width, ["training.learning_rate=5e-5"]).learning_rate == 5e-5
    config = tmp_path / "run.json"
    config.write_text('{"training": {"learning_rate": 4e-5}}', encoding="utf-8")
    model, _, _ = api.build_task("text-classification", config=config, backbone=str(base_width))
    assert model.config.training.learning_rate == 4e-5


def test_pack_base_variant(sized_pack, base_width: Path, tiny_backbone: Path) -> None:  # type: ignore[no-untyped-def]
    base = _training("sized.topic", base_width)
    assert (base.learning_rate, base.epochs) == (3e-5, 3)
    small = _training("sized.topic", tiny_backbone)
    assert (small.learning_rate, small.epochs) == (8e-5, 6)
    # a pack without a base variant: its MiniLM-tuned rate gives way to the core's base rate, other keys stay
    plain = _training("sized.plain", base_width)
    assert (plain.learning_rate, plain.epochs) == (2e-5, 6)
    assert _training("sized.plain", base_width, ["training.epochs=2"]).epochs == 2


def test_backbone_set_in_overrides_counts(base_width: Path) -> None:
    model, _, _ = api.build_task("text-classification", overrides=[f"training.backbone={base_width}"])
    assert model.config.training.learning_rate == 2e-5


def test_a_misspelt_base_variant_is_refused(sized_pack, base_width: Path) -> None:  # type: ignore[no-untyped-def]
    from verticals.errors import ConfigError

    with pytest.raises(ConfigError, match="learnng_rate"):
        _training("sized.typo", base_width)
