"""A reusable test suite every pack runs from a one-file test (needs pytest).

Usage in ``plugins/<domain>/tests/test_conformance.py``::

    from verticals.conformance import PackConformance

    class TestFinancePack(PackConformance):
        pack = "finance"

        def make_data(self, task, directory):
            ...write tiny train/validation files...
            return {"train": train_path, "validation": validation_path}

Each test trains every task of the pack on the tiny data with a tiny random backbone, then checks the
bundle round trip, the declared metrics, tamper detection, and that every input form (path, JSONL,
Parquet, pandas DataFrame, ``datasets.Dataset``, list of dicts) gives the same records, metrics and
predictions as the file.
"""

from __future__ import annotations

import importlib.metadata
import re
from pathlib import Path
from typing import Any

import pytest

from . import api
from .errors import BundleError
from .plugins.manager import get_catalog
from .testing import make_tiny_backbone

INPUT_FORMS = ("str", "Path", "jsonl", "parquet", "DataFrame", "Dataset", "records")
"""Every form ``train``, ``evaluate`` and ``predict`` take (texts are checked per task type)."""


def input_form(form: str, path: Path, rows: list[dict[str, Any]], directory: Path) -> Any:
    """``rows`` (the raw rows of the file ``path``) in ``form``; skips the test when the library a form
    needs (pandas, datasets, pyarrow) is not installed."""
    import json

    if form == "str":
        return str(path)
    if form == "Path":
        return path
    if form == "jsonl":
        target = directory / f"{path.stem}.as.jsonl"
        target.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        return target
    if form == "parquet":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        target = directory / f"{path.stem}.as.parquet"
        pq.write_table(pa.Table.from_pylist(rows), target)
        return target
    if form == "DataFrame":
        return pytest.importorskip("pandas").DataFrame(rows)
    if form == "Dataset":
        return pytest.importorskip("datasets").Dataset.from_list(rows)
    if form == "records":
        return [dict(r) for r in rows]
    raise ValueError(form)


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
        from .config import deep_merge, resolve_config, split_defaults

        for spec in get_catalog().packs.get(self.pack).tasks:
            task, _, _ = api.build_task(f"{self.pack}.{spec.name}")
            plain, base = split_defaults(spec.defaults)  # the base-size variant validates too
            resolve_config(deep_merge({"labels": list(spec.labels)}, deep_merge(plain, base)),
                           task=f"{self.pack}.{spec.name}")
            assert spec.primary_metric in spec.metrics
            assert set(spec.metrics) <= set(type(task).metric_names) | set(getattr(task, "extra_metric_names", ())), (
                f"{spec.name}: declared metrics {spec.metrics} not all produced by {type(task).__name__}"
            )

    def test_every_option_is_documented_and_finite(self) -> None:
        """`verticals config TASK` shows each option's ``Field(description=...)``: every option needs one,
        and float options must refuse NaN/inf (``allow_inf_nan=False``) so no bundle is trained on them."""
        from .plugins.options import describe_task

        for spec in get_catalog().packs.get(self.pack).tasks:
            full = f"{self.pack}.{spec.name}"
            described = describe_task(full)
            for section in described["options"].values():
                undocumented = [o["name"] for o in section if not o["description"]]
                assert not undocumented, f"{full}: options without a description: {undocumented}"
            task_cls = get_catalog().task_types.get(spec.task_type)
            for model in (task_cls.DataOptions, task_cls.Options):
                if any(info.annotation in (float, float | None) for info in model.model_fields.values()):
                    assert model.model_config.get("allow_inf_nan") is False, (
                        f"{full}: {model.__name__} accepts NaN/inf; set model_config allow_inf_nan=False")

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

    @pytest.fixture(scope="class")
    @classmethod
    def from_files(cls, trained: dict[str, Any]) -> dict[str, Any]:
        """Each task's evaluation and predictions of its validation file, computed once."""
        out = {}
        for full, result in trained.items():
            path = Path(result["data"]["validation"])
            out[full] = (result["predictor"].evaluate(path), result["predictor"].predict(path))
        return out

    @pytest.mark.parametrize("form", INPUT_FORMS)
    def test_data_in_any_form(self, trained: dict[str, Any], from_files: dict[str, Any], form: str,
                              tmp_path: Path) -> None:
        """evaluate/predict/read give for each form what they give for the file itself (never, e.g., one
        prediction per DataFrame column name)."""
        for full, result in trained.items():
            predictor = result["predictor"]
            for split in ("train", "validation"):
                path = Path(result["data"][split])
                rows = [raw.data for raw in predictor.task.read_raw(path)]
                data = input_form(form, path, rows, tmp_path)
                expected = [r.model_dump() for r in predictor.task.read(path)]
                got = predictor.task.read(data)
                assert [r.model_dump() for r in got] == expected, f"{full}: {form} gives other records"
            reference, expected_predictions = from_files[full]
            evaluation = predictor.evaluate(data)
            assert evaluation.n == reference.n and _close(evaluation.metrics, reference.metrics), full
            predictions = predictor.predict(data)
            assert len(predictions) == reference.n, f"{full}: {form}: {len(predictions)} predictions"
            assert _close([p.model_dump() for p in predictions], [p.model_dump() for p in expected_predictions])

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

        from .delivery.export import export_onnx
        from .errors import ConfigError
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
                # the same fields as the SDK's prediction (issue 29: predict.py dropped an intent's reason)
                assert set(g) == set(e), f"{full}: predict.py gives fields {sorted(g)}, the SDK {sorted(e)}"
                assert _close(g, e, 1e-4), f"{full}: {g} != {e}"

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

    def test_files_changed_after_verification_are_refused(self, trained: dict[str, Any], tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
        """Each of the task's own files (top level; the backbone's have their own test) changed after the
        bundle was verified and before the load reads it -- a bundle replaced or tampered with during the
        load -- is refused by the check of the bytes read (``read_verified``), or never reaches a prediction."""
        import shutil

        real_verify = api.verify
        for full, result in trained.items():
            records = api.load(result["bundle"]).task.read(result["data"]["validation"] or result["data"]["train"])
            expected = [p.model_dump() for p in result["predictor"].task.predict(records)]
            for name in [n for n in real_verify(result["bundle"])["files"] if "/" not in n]:
                copy = tmp_path / f"{full}-{name}"
                shutil.copytree(result["bundle"], copy)

                def verify_then_change(path: Any, *args: Any, _name: str = name, **kwargs: Any) -> Any:
                    manifest = real_verify(path, *args, **kwargs)
                    target = Path(path) / _name
                    raw = bytearray(target.read_bytes())
                    raw[len(raw) // 2] ^= 0x01
                    target.write_bytes(bytes(raw))
                    return manifest

                monkeypatch.setattr(api, "verify", verify_then_change)
                try:
                    loaded = api.load(copy)
                except BundleError as exc:
                    assert "does not match the manifest" in str(exc), f"{full}: {name} read unchecked: {exc}"
                    continue
                finally:
                    monkeypatch.setattr(api, "verify", real_verify)
                got = [p.model_dump() for p in loaded.task.predict(records)]
                assert _close(expected, got), f"{full}: {name} was read without its check against the manifest"


_NUMBER = re.compile(r"-?\d+\.\d+")


def _close(a: Any, b: Any, tol: float = 1e-3) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return abs(a - b) <= tol
    if isinstance(a, str) and isinstance(b, str) and a != b:
        # a reason quotes scores to 3 decimals: ONNX Runtime and PyTorch may round the same score either way
        x, y = _NUMBER.findall(a), _NUMBER.findall(b)
        return (_NUMBER.sub("#", a) == _NUMBER.sub("#", b) and len(x) == len(y)
                and all(abs(float(u) - float(v)) <= 1e-3 + tol for u, v in zip(x, y)))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tol) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tol) for x, y in zip(a, b))
    return bool(a == b)
