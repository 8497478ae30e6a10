"""The training console, per-epoch history, callbacks and experiment tracking (issue 16 items 4 and 5)."""

from __future__ import annotations

import ast
import json
import logging
import re
import sys
from pathlib import Path

import pytest
import verticals
from verticals.bundles.bundle import BundleInfo
from verticals.errors import ConfigError

from .conftest import FAST, run_cli

ROOT = Path(__file__).resolve().parents[1]
# A constant learning rate of 5e-5 (no warmup) is what every epoch line must show, not 0.0001 or 0.0.
CONSTANT_LR = ["training.epochs=2", "training.batch_size=8", "training.learning_rate=5e-5",
               "training.scheduler=constant_with_warmup", "training.warmup_ratio=0"]


def _epoch_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "verticals" and "epoch " in r.getMessage()
            and "best epoch" not in r.getMessage()]


def test_floats_keep_their_digits() -> None:
    from verticals.console import fmt

    assert fmt(5e-5) == "5e-05" and fmt(1e-7) == "1e-07" and fmt(0.123456789) == "0.123457"
    assert fmt(0.0001234) == "0.0001234" and fmt(3) == "3"


def test_one_line_per_epoch_with_exact_lr_metrics_and_best(tmp_path, tiny_backbone, text_data, caplog, capfd):
    caplog.set_level(logging.INFO, logger="verticals")
    predictor = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                                output=tmp_path / "b", overrides=CONSTANT_LR, backbone=str(tiny_backbone))
    lines = _epoch_lines(caplog)
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"], lines
    for line in lines:
        assert "lr=5e-05" in line and "loss=" in line and re.search(r"  \d+s", line)
        assert "validation: accuracy=" in line and "macro_f1=" in line and "weighted_f1=" in line
    assert "left" in lines[0] and sum("* best" in line for line in lines) >= 1
    out, err = capfd.readouterr()
    assert "{'loss'" not in out + err and "total_flos" not in out + err and "{'eval_" not in out + err
    # the best epoch's metrics are exactly the final summary's: same rows, same scoring
    history = predictor.info.history
    assert [h["epoch"] for h in history] == [1, 2]
    best = [h for h in history if h["best"]]
    assert len(best) == 1 and best[0]["metrics_on"] == "validation"
    assert best[0]["metrics"] == pytest.approx(predictor.info.metrics["validation"], abs=1e-6)


def test_history_is_stored_shown_by_inspect_and_optional_for_old_bundles(tmp_path, tiny_backbone, text_data):
    predictor = verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                                output=tmp_path / "b", overrides=CONSTANT_LR, backbone=str(tiny_backbone))
    stored = json.loads((tmp_path / "b" / "bundle.json").read_text())["history"]
    assert len(stored) == 2
    for entry in stored:
        assert set(entry) >= {"epoch", "train_loss", "validation_loss", "metrics", "learning_rate", "elapsed_s",
                              "best"}
        assert entry["learning_rate"] == pytest.approx(5e-5) and entry["train_loss"] > 0
    result = run_cli("inspect", str(tmp_path / "b"))
    assert result.returncode == 0, result.stderr
    assert "history  epoch 1" in result.stdout and "epoch 2" in result.stdout and "lr 5e-05" in result.stdout
    as_json = json.loads(run_cli("inspect", str(tmp_path / "b"), "--json").stdout)
    assert as_json["history"] == stored
    old = {k: v for k, v in predictor.info.model_dump().items() if k != "history"}
    assert BundleInfo.model_validate(old).history == []


def test_cli_console_quiet_and_log_level(tmp_path, tiny_backbone, text_data):
    args = ["train", "text-classification", "--train", str(text_data["train"]), "--validation",
            str(text_data["validation"]), "--backbone", str(tiny_backbone), *sum((["--set", s] for s in FAST), [])]
    loud = run_cli(*args, "--output", str(tmp_path / "loud"))
    assert loud.returncode == 0, loud.stderr
    assert "epoch 1/2" in loud.stderr and "epoch 2/2" in loud.stderr and "best epoch" in loud.stderr
    assert "{'loss'" not in loud.stderr and "total_flos" not in loud.stderr
    assert loud.stdout.startswith("wrote bundle")
    quiet = run_cli(*args, "--output", str(tmp_path / "quiet"), "--quiet")
    assert quiet.returncode == 0, quiet.stderr
    assert "epoch" not in quiet.stderr and quiet.stdout.startswith("wrote bundle")
    warn = run_cli(*args, "--output", str(tmp_path / "warn"), "--log-level", "warning")
    assert warn.returncode == 0 and "epoch" not in warn.stderr


def test_progress_bars_only_for_a_watched_terminal(monkeypatch, caplog):
    from verticals.console import progress_enabled

    caplog.set_level(logging.INFO, logger="verticals")

    class Tty:
        def isatty(self) -> bool:
            return True

        def write(self, text: str) -> int:
            return len(text)

        def flush(self) -> None:
            pass

    monkeypatch.delenv("TQDM_DISABLE", raising=False)
    monkeypatch.setattr(sys, "stderr", Tty())
    assert progress_enabled()
    monkeypatch.setenv("TQDM_DISABLE", "1")
    assert not progress_enabled()
    monkeypatch.delenv("TQDM_DISABLE")
    logging.getLogger("verticals").setLevel(logging.WARNING)  # --quiet
    try:
        assert not progress_enabled()
    finally:
        logging.getLogger("verticals").setLevel(logging.NOTSET)
    monkeypatch.setattr(sys, "stderr", type("Pipe", (Tty,), {"isatty": lambda self: False})())
    assert not progress_enabled()


def test_python_callbacks_reach_the_trainer(tmp_path, tiny_backbone, text_data):
    from transformers import TrainerCallback

    class Recorder(TrainerCallback):
        def __init__(self) -> None:
            self.epochs: list[float] = []
            self.evaluations: list[dict] = []

        def on_epoch_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            self.epochs.append(state.epoch)

        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # type: ignore[no-untyped-def]
            self.evaluations.append(dict(metrics or {}))

    recorder = Recorder()
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                    output=tmp_path / "b", overrides=FAST, backbone=str(tiny_backbone), callbacks=[recorder])
    assert recorder.epochs == [1.0, 2.0]
    assert len(recorder.evaluations) == 2 and "eval_accuracy" in recorder.evaluations[0]


def test_callbacks_must_be_trainer_callbacks(tmp_path, tiny_backbone, text_data):
    with pytest.raises(ConfigError, match="TrainerCallback"):
        verticals.train("text-classification", text_data["train"], output=tmp_path / "b", overrides=FAST,
                        backbone=str(tiny_backbone), callbacks=[print])
    assert not (tmp_path / "b").exists()


def test_report_to_tensorboard_writes_event_files(tmp_path, tiny_backbone, text_data):
    pytest.importorskip("tensorboardX", reason="tracking extra not installed (pip install 'verticals[tracking]')")
    runs = tmp_path / "tb"
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                    output=tmp_path / "b", backbone=str(tiny_backbone),
                    overrides=[*FAST, "training.report_to=tensorboard", f"training.logging_dir={runs}"])
    events = list(runs.rglob("events.out.tfevents.*"))
    assert events and all(e.stat().st_size > 0 for e in events)
    assert not (tmp_path / "b" / "runs").exists()  # nothing outside the manifest lands in the bundle


def test_report_to_mlflow_logs_to_a_local_file_store(tmp_path, tiny_backbone, text_data, monkeypatch):
    mlflow = pytest.importorskip("mlflow", reason="tracking extra not installed (pip install 'verticals[tracking]')")
    store = tmp_path / "mlruns"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store.as_uri())
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "verticals-test")
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 keeps ./mlruns stores behind this opt-in
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                    output=tmp_path / "b", backbone=str(tiny_backbone),
                    overrides=[*FAST, "training.report_to=[\"mlflow\"]"])
    client = mlflow.tracking.MlflowClient(tracking_uri=store.as_uri())
    experiment = client.get_experiment_by_name("verticals-test")
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    history = client.get_metric_history(runs[0].info.run_id, "eval_accuracy")
    assert len(history) == 2 and all(0.0 <= m.value <= 1.0 for m in history)
    assert runs[0].data.params["learning_rate"] == "0.001"


def test_report_to_unknown_integration_is_a_config_error(tmp_path, tiny_backbone, text_data):
    with pytest.raises(ConfigError, match="training.report_to.*'tensorbored'.*tensorboard"):
        verticals.train("text-classification", text_data["train"], output=tmp_path / "b", backbone=str(tiny_backbone),
                        overrides=[*FAST, "training.report_to=tensorbored"])


def test_report_draws_the_learning_curve(tmp_path, tiny_backbone, text_data):
    pytest.importorskip("matplotlib")
    verticals.train("text-classification", text_data["train"], validation=text_data["validation"],
                    output=tmp_path / "b", overrides=FAST, backbone=str(tiny_backbone))
    result = run_cli("report", str(tmp_path / "b"), "--data", str(text_data["validation"]),
                     "--output", str(tmp_path / "report"))
    assert result.returncode == 0, result.stderr
    png = tmp_path / "report" / "learning_curve.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert 'src="learning_curve.png"' in (tmp_path / "report" / "index.html").read_text()


def test_no_bare_print_in_the_library():
    """Library code reports through the 'verticals' logger; only the CLI prints."""
    offenders = []
    for path in [*ROOT.glob("sdk/verticals/**/*.py"), *ROOT.glob("plugins/*/src/**/*.py")]:
        # the cli/ package prints results; onnx_reference.py is the standalone predict.py of an export (no
        # Verticals at all), whose output is its result.
        if path.parent.name == "cli" or path.name == "onnx_reference.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print":
                offenders.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert not offenders, offenders
