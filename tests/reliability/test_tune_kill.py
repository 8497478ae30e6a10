"""`verticals tune` under kills and concurrency (issue 28, part 1): a study killed -9 during a trial resumes
with no finished trial lost or run twice and the killed trial marked failed; two workers on one storage
share one study with unique trial numbers and different parameters."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from ..conftest import text_rows, write_csv

pytest.importorskip("optuna", reason="workshop extra not installed (pip install 'verticals[workshop]')")
pytestmark = pytest.mark.reliability

# Holds the process inside trial HANG_TRIAL (after its heartbeat started) until the test kills it.
DRIVER = r'''
import os, sys, time
hang = os.environ.get("HANG_TRIAL")
if hang:
    import verticals.workshop.tune as tune_module
    train_task = tune_module.train_task
    def train_or_hang(*args, **kwargs):
        if os.path.basename(os.path.dirname(str(kwargs["output"]))).startswith(f"trial-{hang}-"):
            time.sleep(600)
        return train_task(*args, **kwargs)
    tune_module.train_task = train_or_hang
meet = os.environ.get("MEET")
if meet:
    # workers sharing a study: each holds its first trial until every worker has one, so that all run
    # trials however far apart they start (a late one would find the study finished)
    import verticals.workshop.tune as tune_module
    train_first = tune_module.train_task
    def train_after_meeting(*args, **kwargs):
        open(os.path.join(meet, str(os.getpid())), "w").close()
        deadline = time.monotonic() + 240
        while len(os.listdir(meet)) < int(os.environ["MEET_COUNT"]) and time.monotonic() < deadline:
            time.sleep(0.1)
        tune_module.train_task = train_first
        return train_first(*args, **kwargs)
    tune_module.train_task = train_after_meeting
from verticals.cli import main
sys.exit(main(sys.argv[1:]))
'''
SETS = ["training.epochs=1", "training.batch_size=8", "training.max_length=16", "training.num_threads=1"]


@pytest.fixture
def setup(tmp_path: Path, tiny_backbone: Path) -> dict[str, Path]:
    config = tmp_path / "config.json"
    # a small space keeps trials alike in cost; a 1 s heartbeat makes a killed trial stale after 2 s
    config.write_text(json.dumps({"tune": {"heartbeat_seconds": 1, "space": {
        "training.epochs": None, "training.batch_size": None, "training.strategy": None}}}))
    return {"train": write_csv(tmp_path / "train.csv", text_rows(6, 0)),
            "validation": write_csv(tmp_path / "validation.csv", text_rows(2, 1)),
            "config": config, "backbone": tiny_backbone, "driver": _driver(tmp_path)}


def _driver(tmp_path: Path) -> Path:
    path = tmp_path / "driver.py"
    path.write_text(DRIVER)
    return path


def start(setup: dict[str, Path], output: Path, trials: int, *extra: str, hang: int | None = None,
          meet: tuple[Path, int] | None = None) -> subprocess.Popen:
    args = ["tune", "text-classification", "--train", str(setup["train"]), "--validation", str(setup["validation"]),
            "--output", str(output), "--trials", str(trials), "--backbone", str(setup["backbone"]),
            "--config", str(setup["config"]), "--quiet", *[x for s in SETS for x in ("--set", s)], *extra]
    env = {**os.environ, "VERTICALS_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    if hang is not None:
        env["HANG_TRIAL"] = str(hang)
    if meet is not None:
        env["MEET"], env["MEET_COUNT"] = str(meet[0]), str(meet[1])
    return subprocess.Popen([sys.executable, str(setup["driver"]), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def trials_in(db: Path) -> list[tuple[int, str]]:
    if not db.exists():
        return []
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=30) as con:
        try:
            return [(n, s) for n, s in con.execute("SELECT number, state FROM trials ORDER BY number")]
        except sqlite3.OperationalError:  # tables not created yet
            return []


def finished(bundle: Path) -> dict[int, dict]:
    record = json.loads((bundle / "bundle.json").read_text())["tune"]
    return {t["number"]: t for t in record["trials"]}


def test_killed_study_resumes_without_losing_or_repeating_trials(tmp_path, setup):
    out, db = tmp_path / "out", tmp_path / "out.tune" / "study.db"
    proc = start(setup, out, 2, hang=1)
    deadline = time.monotonic() + 120
    # killed once trial 1 runs and has made its scratch folder (the state is committed a moment before)
    while trials_in(db) != [(0, "COMPLETE"), (1, "RUNNING")] or not list((tmp_path / "out.tune").glob("trial-1-*")):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, trials_in(db)
        time.sleep(0.2)
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        before = con.execute("SELECT value FROM trial_values WHERE trial_id = (SELECT trial_id FROM trials "
                             "WHERE number = 0)").fetchone()[0]
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert len(list((tmp_path / "out.tune").glob("trial-1-*"))) == 1  # the killed trial's scratch folder
    time.sleep(2.5)  # past the heartbeat grace period: trial 1 is now stale
    rerun = start(setup, out, 2)
    stdout, stderr = rerun.communicate(timeout=300)
    assert rerun.returncode == 0, stderr
    trials = finished(out)
    assert [(n, t["state"]) for n, t in sorted(trials.items())] == [(0, "COMPLETE"), (1, "FAIL"), (2, "COMPLETE")]
    assert trials[0]["value"] == before  # the finished trial is kept as it was, not run again
    assert not list((tmp_path / "out.tune").glob("trial-*"))  # the killed trial's folder was cleaned up
    assert [n for n, _ in trials_in(db)] == [0, 1, 2]


@pytest.mark.distributed
def test_two_workers_share_one_study(tmp_path, setup):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    # the default heartbeat (30 s): on a loaded machine a 1 s one lets a worker take the other's live trial
    # for a killed one
    config = json.loads(setup["config"].read_text())
    del config["tune"]["heartbeat_seconds"]
    setup["config"].write_text(json.dumps(config))
    meeting = tmp_path / "meeting"
    meeting.mkdir()
    workers = [start(setup, tmp_path / f"out-{i}", 4, "--storage", url, "--study", "shared", meet=(meeting, 2))
               for i in range(2)]
    for worker in workers:
        _, stderr = worker.communicate(timeout=300)
        assert worker.returncode == 0, stderr
    with sqlite3.connect(tmp_path / "shared.db") as con:
        rows = con.execute("SELECT t.number, t.state, a.value_json FROM trials t JOIN trial_user_attributes a "
                           "ON a.trial_id = t.trial_id AND a.key = 'worker' ORDER BY t.number").fetchall()
        params = con.execute("SELECT trial_id, param_name, param_value FROM trial_params").fetchall()
    numbers = [number for number, _, _ in rows]
    assert numbers == list(range(len(numbers)))  # unique, no gaps
    # the stop rule counts the whole study: 4 finished, plus at most one the other worker had in flight
    assert 4 <= sum(state == "COMPLETE" for _, state, _ in rows) <= 5
    assert len({worker for _, _, worker in rows}) == 2  # both ran trials
    by_trial: dict[int, tuple] = {}
    for trial_id, name, value in sorted(params):
        by_trial[trial_id] = (*by_trial.get(trial_id, ()), (name, value))
    assert len(set(by_trial.values())) == len(by_trial)  # no two trials drew the same parameters
    for i in range(2):
        assert json.loads((tmp_path / f"out-{i}" / "bundle.json").read_text())["tune"]["study"] == "shared"
