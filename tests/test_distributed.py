"""Real 2-process DDP training on CPU (gloo) under torchrun, compared with a single-process run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
import verticals

from .conftest import text_rows, write_csv

pytestmark = pytest.mark.distributed

# Dropout off, plain random batches and 96 training records (6 full global batches of 16), so the runs
# differ only in how DDP splits and reduces each global batch: same seed, same samples per step,
# gradients averaged over 2 x 8 instead of 16 (training.batch_size is the global batch under DDP).
SETTINGS = ["training.epochs=4", "training.batch_size=16", "training.learning_rate=0.002",
            "training.group_by_length=false", "training.precision=fp32", "training.head.dropout=0.0"]

DRIVER = textwrap.dedent("""
    import json, os, sys
    import torch.distributed as dist
    import verticals

    train, validation, output, report, *overrides = sys.argv[1:]
    predictor = verticals.train("text-classification", train, validation=validation, output=output,
                                overrides=overrides)
    rank = int(os.environ["RANK"])
    with open(f"{report}.{rank}", "w") as handle:
        json.dump({"world_size": dist.get_world_size() if dist.is_initialized() else 1,
                   "backend": dist.get_backend() if dist.is_initialized() else None,
                   "metrics": predictor.info.metrics, "validation_n": predictor.info.data["validation"]},
                  handle)
""")


@pytest.fixture
def no_dropout_backbone(tiny_backbone: Path, tmp_path: Path) -> Path:
    import shutil

    copy = Path(shutil.copytree(tiny_backbone, tmp_path / "tiny-no-dropout"))
    config = json.loads((copy / "config.json").read_text())
    config.update(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    (copy / "config.json").write_text(json.dumps(config))
    return copy


def test_two_process_ddp_matches_single_process(no_dropout_backbone, tmp_path):
    train = write_csv(tmp_path / "train.csv", text_rows(32, 0))
    validation = write_csv(tmp_path / "validation.csv", text_rows(8, 1))
    overrides = [*SETTINGS, f"training.backbone={no_dropout_backbone}"]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "VERTICALS_PLUGINS": ""}
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"]
    ddp = subprocess.run([*torchrun, str(driver), str(train), str(validation), str(tmp_path / "ddp"),
                          str(tmp_path / "report"), *overrides], capture_output=True, text=True, env=env,
                         timeout=300)
    assert ddp.returncode == 0, ddp.stderr[-3000:]
    single = verticals.train("text-classification", train, validation=validation, output=tmp_path / "single",
                             overrides=overrides)

    reports = [json.loads((tmp_path / f"report.{rank}").read_text()) for rank in (0, 1)]
    assert all(r["world_size"] == 2 and r["backend"] == "gloo" for r in reports)
    # Every rank scored the full validation split, not a shard, and found the same metrics.
    assert reports[0]["metrics"] == reports[1]["metrics"]
    assert reports[0]["validation_n"]["records"] == single.info.data["validation"]["records"] == 24
    # Only rank 0 wrote, atomically: one verified bundle, no temporary or checkpoint directories left.
    bundle = verticals.load(tmp_path / "ddp")
    assert bundle.info.metrics == reports[0]["metrics"]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith((".ddp", "ddp"))) == ["ddp"]

    for name, value in single.info.metrics["validation"].items():
        assert bundle.info.metrics["validation"][name] == pytest.approx(value, abs=0.02), name
    texts = [row["text"] for row in text_rows(10, 7)]
    ddp_probs = np.array([list(p.scores.values()) for p in bundle.predict(texts)])
    single_probs = np.array([list(p.scores.values()) for p in single.predict(texts)])
    assert np.abs(ddp_probs - single_probs).max() < 1e-4  # measured: 7e-8


def test_only_rank_zero_writes_and_reports(tiny_backbone, tmp_path, monkeypatch, capsys):
    """Under torchrun every rank runs `verticals train`; a rank other than 0 neither writes nor prints."""
    from verticals.cli import main

    train = write_csv(tmp_path / "train.csv", text_rows(6, 0))
    args = ["train", "text-classification", "--train", str(train), "--backbone", str(tiny_backbone),
            "--set", "training.epochs=1", "--set", "training.batch_size=8"]
    monkeypatch.setenv("RANK", "1")
    assert main([*args, "--output", str(tmp_path / "rank1")]) == 0
    assert capsys.readouterr().out == "" and not (tmp_path / "rank1").exists()
    monkeypatch.setenv("RANK", "0")
    assert main([*args, "--output", str(tmp_path / "rank0")]) == 0
    assert "wrote bundle" in capsys.readouterr().out and (tmp_path / "rank0" / "bundle.json").is_file()


def test_training_takes_the_thread_budget_its_launcher_gave(tiny_backbone, tmp_path, monkeypatch) -> None:
    """training.num_threads documents OMP_NUM_THREADS as its default (a Ray actor's CPUs, torchrun's 1 per
    process); training used every core regardless (failed before: 2 threads on 2 cores with OMP_NUM_THREADS=1)."""
    import torch
    from verticals import runtime

    cores = runtime.available_cores()
    before = torch.get_num_threads()
    try:
        monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        train = write_csv(tmp_path / "train.csv", text_rows(4, 0))
        verticals.train("text-classification", train, output=tmp_path / "b", backbone=str(tiny_backbone),
                        overrides=["training.epochs=1"])
        assert torch.get_num_threads() == 1
        training_threads = runtime.training_threads
        assert training_threads(3) == 3  # training.num_threads set by the user wins
        monkeypatch.setenv("OMP_NUM_THREADS", "100000")
        assert training_threads(None) == cores
        monkeypatch.delenv("OMP_NUM_THREADS")
        assert training_threads(None) == cores and training_threads(None, local_processes=cores) == 1
    finally:
        torch.set_num_threads(before)
