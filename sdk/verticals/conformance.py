"""A reusable test suite every pack runs from a one-file test (needs pytest).

Usage in ``plugins/<domain>/tests/test_conformance.py``::

    from verticals.conformance import PackConformance

    class TestFinancePack(PackConformance):
        pack = "finance"

        def make_data(self, task, directory):
            ...write tiny train/validation files...
            return {"train": train_path, "validation": validation_path}

Each test trains every task of the pack on the tiny data with a tiny random backbone, then checks the
bundle round trip, the declared metrics and tamper detection.
"""

from __future__ import annotations

import importlib.metadata
from pathlib import Path
from typing import Any

import pytest

from . import api
from ._plugins import get_catalog
from .errors import BundleError
from .testing import make_tiny_backbone


class PackConformance:
    pack: str = ""
    overrides: tuple[str, ...] = ("training.epochs=1", "training.batch_size=8")

    def make_data(self, task: str, directory: Path) -> dict[str, Any]:
        """Write tiny data for ``task`` (full name) under ``directory``; return train/validation(/test) paths
        and optionally extra 'overrides' (a list of KEY=VALUE)."""
        raise NotImplementedError

    # ---- fixtures ------------------------------------------------------------------------------
    @pytest.fixture(scope="class")
    @classmethod
    def tiny_backbone(cls, tmp_path_factory: pytest.TempPathFactory) -> Path:
        return make_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert")

    @pytest.fixture(scope="class")
    @classmethod
    def trained(cls, tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Any]:
        """Train each task of the pack once per test class."""
        results = {}
        for spec in get_catalog().packs.get(cls.pack).tasks:
            full = f"{cls.pack}.{spec.name}"
            directory = tmp_path_factory.mktemp(full.replace(".", "_"))
            data = cls().make_data(full, directory)
            overrides = list(cls.overrides) + list(data.get("overrides", []))
            predictor = api.train(full, data["train"], validation=data.get("validation"), output=directory / "bundle",
                                  overrides=overrides, backbone=str(tiny_backbone))
            results[full] = {"predictor": predictor, "data": data, "bundle": directory / "bundle"}
        return results

    # ---- tests ---------------------------------------------------------------------------------
    def test_registered_through_entry_point(self) -> None:
        names = {ep.name for ep in importlib.metadata.entry_points(group="verticals")}
        assert self.pack in names, f"pack '{self.pack}' has no entry point in the 'verticals' group"
        assert self.pack in get_catalog().packs

    def test_defaults_validate(self) -> None:
        for spec in get_catalog().packs.get(self.pack).tasks:
            task, _, _ = api.build_task(f"{self.pack}.{spec.name}")
            assert spec.primary_metric in spec.metrics
            assert set(spec.metrics) <= set(type(task).metric_names) | set(getattr(task, "extra_metric_names", ())), (
                f"{spec.name}: declared metrics {spec.metrics} not all produced by {type(task).__name__}"
            )

    def test_bundle_round_trip(self, trained: dict[str, Any]) -> None:
        for full, result in trained.items():
            loaded = api.load(result["bundle"])
            assert loaded.info.task == full
            assert loaded.info.pack == self.pack
            records = loaded.task.read(result["data"]["validation"] or result["data"]["train"])
            before = [p.model_dump() for p in result["predictor"].task.predict(records)]
            after = [p.model_dump() for p in loaded.task.predict(records)]
            assert _close(before, after), f"{full}: predictions differ after the bundle round trip"

    def test_auto_engine_predicts_the_same(self, trained: dict[str, Any]) -> None:
        """``serve`` loads bundles with engine='auto' (ONNX Runtime for transformer tasks where installed):
        a pack's own forward pass must give the same predictions on it."""
        for full, result in trained.items():
            reference, auto = api.load(result["bundle"], engine="torch"), api.load(result["bundle"], engine="auto")
            records = auto.task.read(result["data"]["validation"] or result["data"]["train"])
            before = [p.model_dump() for p in reference.task.predict(records)]
            after = [p.model_dump() for p in auto.task.predict(records)]
            assert _close(before, after), f"{full}: predictions differ on engine '{auto.engine}'"

    def test_declared_metrics_reported(self, trained: dict[str, Any]) -> None:
        for full, result in trained.items():
            spec, _ = get_catalog().task(full)
            evaluation = api.load(result["bundle"]).evaluate(result["data"]["validation"])
            missing = set(spec.metrics) - set(evaluation.metrics)
            assert not missing, f"{full}: evaluate() lacks declared metrics {sorted(missing)}"

    def test_prediction_models_are_public(self) -> None:
        """Each task's prediction model is importable by name from the pack's package (or from verticals), so
        integrators can type ``verticals.load(path, prediction=...)``."""
        import importlib

        import verticals

        module = next(ep.value.split(":")[0].split(".")[0]
                      for ep in importlib.metadata.entry_points(group="verticals") if ep.name == self.pack)
        public = set(getattr(importlib.import_module(module), "__all__", ())) | set(verticals.__all__)
        for spec in get_catalog().packs.get(self.pack).tasks:
            prediction = get_catalog().task_types.get(spec.task_type).Prediction
            assert prediction.__name__ in public, (
                f"{spec.task_type}: prediction model {prediction.__name__} is not in {module}.__all__")

    def test_export_reproduces_or_refuses(self, trained: dict[str, Any], tmp_path: Path) -> None:
        """``verticals export`` writes everything a prediction needs, and the export's own ``predict.py``
        (without Verticals) gives the SDK's predictions; or the task type refuses, saying why."""
        pytest.importorskip("onnxruntime")
        import json

        from .errors import ConfigError
        from .export import export_onnx
        from .testing import run_export_reference

        for full, result in trained.items():
            out = tmp_path / full
            try:
                export_onnx(result["bundle"], out)
            except ConfigError as exc:
                assert "cannot be exported" in str(exc) and full in str(exc), str(exc)
                assert not out.exists()
                continue
            loaded = api.load(result["bundle"])
            loaded.task.precision_ = "fp32"  # ONNX runs fp32
            records = loaded.task.read(result["data"]["validation"] or result["data"]["train"])
            expected = [p.model_dump() for p in loaded.task.predict(records)]
            got = run_export_reference(out, [json.loads(r.model_dump_json(exclude_none=True)) for r in records])
            for g, e in zip(got, expected, strict=True):
                common = {k: g[k] for k in g if k in e}
                assert common and _close(common, {k: e[k] for k in common}, 1e-4), f"{full}: {g} != {e}"

    def test_tampered_bundle_refused(self, trained: dict[str, Any], tmp_path: Path) -> None:
        import shutil

        for full, result in trained.items():
            copy = tmp_path / full
            shutil.copytree(result["bundle"], copy)
            target = copy / "bundle.json"
            raw = bytearray(target.read_bytes())
            raw[10] = ord(" ") if raw[10] != ord(" ") else ord("\t")
            target.write_bytes(bytes(raw))
            with pytest.raises(BundleError):
                api.load(copy)


def _close(a: Any, b: Any, tol: float = 1e-3) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return bool(a == b)
