"""`verticals tune` (issue 28, part 1): the study recorded in the bundle, the search space (core, pack, config,
--set), the pruning hook on the trainer's callbacks, the per-trial seeded sampler, bad storage/study/config."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest
import verticals
from verticals.cli import main
from verticals.plugins.specs import TaskSpec

from .conftest import text_rows, write_csv

optuna = pytest.importorskip("optuna", reason="workshop extra not installed (pip install 'verticals[workshop]')")

from verticals.plugins.search_space import CORE_SPACE, layered_space, read_tune_config  # noqa: E402
from verticals.workshop.tune import per_trial_sampler, pruning_callback, tune  # noqa: E402

FAST = ["training.epochs=1", "training.batch_size=8", "training.max_length=16", "training.num_threads=1"]
SMALL_SPACE = {"tune": {"space": {name: None for name in CORE_SPACE if name != "training.learning_rate"}}}


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    return {"train": write_csv(tmp_path / "train.csv", text_rows(8, 0)),
            "validation": write_csv(tmp_path / "validation.csv", text_rows(3, 1))}


def test_tune_trains_the_best_trial_into_a_bundle_that_records_the_study(tmp_path, data, tiny_backbone):
    mine = tmp_path / "out.tune" / "trial-0-mine"  # looks like a trial folder, but Verticals did not make it
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("keep")
    predictor = tune("text-classification", data["train"], validation=data["validation"], output=tmp_path / "out",
                     trials=2, backbone=str(tiny_backbone), overrides=FAST,
                     config={"tune": {"space": {"training.strategy": {"type": "categorical",
                                                                      "choices": ["full", "head-only"]}}}})
    info = json.loads((tmp_path / "out" / "bundle.json").read_text())
    record = info["tune"]
    assert [t["number"] for t in record["trials"]] == [0, 1]
    assert all(t["state"] == "COMPLETE" and t["value"] is not None for t in record["trials"])
    best = max(record["trials"], key=lambda t: t["value"])
    assert record["best_value"] == best["value"] and record["params"] == best["params"]
    # --set fixes an option: epochs is not searched; the chosen parameters are what the bundle was trained with
    assert "training.epochs" not in record["params"] and info["config"]["training"]["epochs"] == 1
    assert info["config"]["training"]["learning_rate"] == pytest.approx(record["params"]["training.learning_rate"])
    assert info["config"]["training"]["strategy"] == record["params"]["training.strategy"]
    assert record["study"] == "out" and record["storage"].endswith("out.tune/study.db")
    assert record["trials"][0]["intermediate"]  # the per-epoch validation values reached the study
    # the final bundle is a normal bundle and the trial folders are gone
    assert verticals.load(tmp_path / "out").predict(["refund for my invoice"])[0].label
    assert [p.name for p in (tmp_path / "out.tune").glob("trial-*")] == ["trial-0-mine"]
    assert (mine / "notes.txt").read_text() == "keep" and (tmp_path / "out.tune" / "study.db").is_file()
    assert predictor.info.model_extra["tune"]["best_trial"] == record["best_trial"]
    # `report` shows the optimisation history of a tuned bundle
    pytest.importorskip("matplotlib", reason="report extra not installed")
    from verticals.delivery.report import write_report

    result = write_report(tmp_path / "out", data["validation"], tmp_path / "report")
    assert "tune_history.png" in result.files
    assert "Optimisation history" in (tmp_path / "report" / "index.html").read_text()


def test_history_points_put_pruned_trials_at_their_last_epoch():
    from verticals.workshop.tune_history import trial_points

    record = {"trials": [{"number": 0, "state": "COMPLETE", "value": 0.8, "intermediate": {"1": 0.7, "2": 0.8}},
                         {"number": 1, "state": "PRUNED", "value": None, "intermediate": {"1": 0.5, "2": 0.4}},
                         {"number": 2, "state": "FAIL", "value": None, "intermediate": {}}]}
    assert trial_points(record) == [(0, 0.8, "COMPLETE"), (1, 0.4, "PRUNED")]


def test_pruning_callback_reports_each_epoch_and_stops_the_trial(tmp_path, data, tiny_backbone):
    class Trial:
        reported: list[tuple[float, int]] = []

        def report(self, value, step):
            self.reported.append((value, step))

        def should_prune(self):
            return len(self.reported) >= 2

    trial = Trial()
    with pytest.raises(optuna.TrialPruned, match="epoch 2"):
        verticals.train("text-classification", data["train"], validation=data["validation"],
                        output=tmp_path / "b", backbone=str(tiny_backbone),
                        overrides=[*FAST, "training.epochs=3", "training.early_stopping_patience=null"],
                        callbacks=[pruning_callback(trial, "accuracy")])
    assert [step for _, step in trial.reported] == [1, 2]
    assert not (tmp_path / "b").exists()


def test_each_trial_is_sampled_with_its_own_seed():
    """Two workers with the same seed draw different start-up parameters; a trial's draw is reproducible."""
    def draws(sampler, n):
        study = optuna.create_study(sampler=sampler)
        for _ in range(n):
            trial = study.ask()
            study.tell(trial, trial.suggest_float("x", 0, 1))
        return [t.params["x"] for t in study.trials]

    a, b = draws(per_trial_sampler(7, 4), 3), draws(per_trial_sampler(7, 4), 3)
    assert a == b and len(set(a)) == 3
    assert draws(per_trial_sampler(8, 4), 1)[0] == a[1]  # seed 7 + trial 1 == seed 8 + trial 0


def test_search_space_layers_core_pack_and_config():
    class Transformer:
        supports_trainer_callbacks = True

    spec = TaskSpec(name="t", task_type="x", metrics=["accuracy"], primary_metric="accuracy",
                    tune={"task.pseudo_unknown_mix": {"type": "float", "low": 0.5, "high": 0.9},
                          "training.strategy": None})
    config = read_tune_config({"space": {"training.batch_size": {"type": "categorical", "choices": [4, 8]}}})
    space = layered_space(spec, Transformer, config)
    assert "training.strategy" not in space and space["task.pseudo_unknown_mix"].high == 0.9
    assert space["training.batch_size"].choices == [4, 8] and space["training.learning_rate"].log
    # a task with its own training loop starts from what its pack declares only
    assert list(layered_space(spec, object)) == ["task.pseudo_unknown_mix"]


def test_config_shows_the_search_space(capsys):
    assert main(["config", "text-classification"]) == 0
    out = capsys.readouterr().out
    assert "[tune]" in out and "training.learning_rate : log-uniform [1e-05, 0.0003]" in out


def _tune_cli(data, tiny_backbone, out, *extra):
    return main(["tune", "text-classification", "--train", str(data["train"]), "--validation",
                 str(data["validation"]), "--output", str(out), "--trials", "1", "--backbone", str(tiny_backbone),
                 *[x for s in FAST for x in ("--set", s)], "--quiet", *extra])


def _one_line_error(capsys, fragment):
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("verticals: error:") and fragment in err[0], err


def test_storage_that_is_not_a_database_is_refused_untouched(tmp_path, data, tiny_backbone, capsys):
    text = tmp_path / "notes.txt"
    text.write_text("not a database\n")
    assert _tune_cli(data, tiny_backbone, tmp_path / "o", "--storage", f"sqlite:///{text}") == 2
    _one_line_error(capsys, "is not a SQLite database")
    assert text.read_text() == "not a database\n"
    assert _tune_cli(data, tiny_backbone, tmp_path / "o", "--storage", "just some words") == 2
    _one_line_error(capsys, "is not a database URL")
    assert _tune_cli(data, tiny_backbone, tmp_path / "o", "--storage", "nosuchdb://host/x") == 2
    _one_line_error(capsys, "cannot be opened as an Optuna study database")
    other = tmp_path / "app.db"
    with sqlite3.connect(other) as con:
        con.execute("CREATE TABLE customers (id INTEGER)")
    before = other.read_bytes()
    assert _tune_cli(data, tiny_backbone, tmp_path / "o", "--storage", f"sqlite:///{other}") == 2
    _one_line_error(capsys, "database of another application")
    assert other.read_bytes() == before and not (tmp_path / "o").exists()


def test_study_of_another_task_is_refused(tmp_path, data, tiny_backbone, capsys):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    study = optuna.create_study(storage=url, study_name="shared", direction="maximize")
    study.set_user_attr("verticals_task", "token-classification")
    assert _tune_cli(data, tiny_backbone, tmp_path / "o", "--storage", url, "--study", "shared") == 2
    _one_line_error(capsys, "was created for task token-classification, not text-classification")
    assert not study.trials


@pytest.mark.parametrize(("tune_section", "fragment"), [
    ({"spce": {}}, "unknown option tune.spce; did you mean tune.space?"),
    ({"space": {"training.learning_rate": {"type": "float", "low": 1e-5, "high": 5}}},
     "tune.space training.learning_rate=5"),
    ({"space": {"training.learning_rate": {"type": "float", "low": 0.1, "high": 0.01}}}, "must be below high"),
    ({"space": {"learning_rate": {"type": "float", "low": 0.01, "high": 0.1}}}, "is not an option path"),
])
def test_bad_tune_section_is_one_line(tmp_path, data, tiny_backbone, capsys, tune_section, fragment):
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"tune": tune_section}))
    assert _tune_cli(data, tiny_backbone, tmp_path / "o", "--config", str(config)) == 2
    _one_line_error(capsys, fragment)
    assert not (tmp_path / "o.tune").exists()


def test_worker_waits_for_another_to_finish_creating_the_study_tables(tmp_path):
    """CI stop 47: a second worker read the tables while the first was still creating them (only `studies`
    so far) and refused the file as another application's; the check must wait for the creator's lock."""
    import fcntl
    import threading

    from optuna.storages import RDBStorage
    from verticals.workshop.tune import open_storage

    scratch = tmp_path / "scratch.db"
    RDBStorage(f"sqlite:///{scratch}")
    with sqlite3.connect(scratch) as con:
        studies_ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'studies'").fetchone()[0]
    shared = tmp_path / "shared.db"
    with sqlite3.connect(shared) as con:  # where the first worker is, half-way through creating its tables
        con.execute(studies_ddl)
    outcome: dict[str, object] = {}

    def second_worker() -> None:
        try:
            outcome["storage"] = open_storage(f"sqlite:///{shared}", tmp_path / "unused.db", heartbeat=30)[0]
        except Exception as exc:  # noqa: BLE001 - the assertion below shows it
            outcome["error"] = exc

    with open(shared, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)  # the first worker's initialisation lock
        worker = threading.Thread(target=second_worker)
        worker.start()
        worker.join(timeout=1.5)
        RDBStorage(f"sqlite:///{shared}")  # the first worker finishes its tables
        fcntl.flock(handle, fcntl.LOCK_UN)
    worker.join(timeout=60)
    assert "error" not in outcome, outcome.get("error")
    assert outcome["storage"].get_all_studies() == []


def test_study_file_left_half_created_by_a_killed_worker_is_completed(tmp_path):
    """A worker killed -9 while Optuna created its tables leaves some of them: the next run completes them
    instead of calling the file another application's; a table of anything else still refuses it."""
    from optuna.storages import RDBStorage
    from verticals.errors import ConfigError
    from verticals.workshop.tune import open_storage

    scratch = tmp_path / "scratch.db"
    RDBStorage(f"sqlite:///{scratch}")
    with sqlite3.connect(scratch) as con:
        studies_ddl = con.execute("SELECT sql FROM sqlite_master WHERE name = 'studies'").fetchone()[0]
    half = tmp_path / "half.db"
    with sqlite3.connect(half) as con:
        con.execute(studies_ddl)
    storage, _ = open_storage(f"sqlite:///{half}", tmp_path / "unused.db", heartbeat=30)
    assert storage.get_all_studies() == []
    mixed = tmp_path / "mixed.db"
    with sqlite3.connect(mixed) as con:
        con.execute(studies_ddl)
        con.execute("CREATE TABLE customers (id INTEGER)")
    before = mixed.read_bytes()
    with pytest.raises(ConfigError, match="database of another application"):
        open_storage(f"sqlite:///{mixed}", tmp_path / "unused.db", heartbeat=30)
    assert mixed.read_bytes() == before
    namesake = tmp_path / "clinic.db"  # another application's table that shares Optuna's name, not its columns
    with sqlite3.connect(namesake) as con:
        con.execute("CREATE TABLE studies (id INTEGER, patient TEXT)")
    before = namesake.read_bytes()
    with pytest.raises(ConfigError, match="database of another application"):
        open_storage(f"sqlite:///{namesake}", tmp_path / "unused.db", heartbeat=30)
    assert namesake.read_bytes() == before
    with sqlite3.connect(namesake) as con:  # both names, neither Optuna's columns
        con.execute("CREATE TABLE trials (id INTEGER, arm TEXT)")
    before = namesake.read_bytes()
    with pytest.raises(ConfigError, match="database of another application"):
        open_storage(f"sqlite:///{namesake}", tmp_path / "unused.db", heartbeat=30)
    assert namesake.read_bytes() == before


class _Interleaved:
    """A study whose chosen read first lets another worker write (``other``), then answers as it was."""

    def __init__(self, study, attribute: str, other) -> None:
        self._study, self._attribute, self._other = study, attribute, other

    def __getattr__(self, name):
        value = getattr(self._study, name)
        if name != self._attribute:
            return value
        if callable(value):
            def read_then_other(*args, **kwargs):
                answer = value(*args, **kwargs)
                self._other()
                return answer
            return read_then_other
        self._other()
        return value  # read before the other worker wrote


def test_a_worker_does_not_refuse_the_study_another_just_claimed(monkeypatch):
    """Review of CI stop 47: worker A sets the owner, then starts trial 0; worker B read the owner (none yet)
    and then the trials (one) and refused the study as not made by verticals tune."""
    import verticals.workshop.tune as tune_module

    storage = optuna.storages.InMemoryStorage()
    real = optuna.create_study(storage=storage, study_name="s", direction="maximize")

    def worker_a_claims_and_starts() -> None:
        real.set_user_attr("verticals_task", "text-classification")
        real.set_user_attr("verticals_metric", "accuracy")
        real.ask()

    monkeypatch.setattr(optuna, "create_study", lambda **kwargs: _Interleaved(real, "user_attrs",
                                                                              worker_a_claims_and_starts))
    study = tune_module._open_study(storage, "memory", "s", "text-classification", "accuracy", "maximize",
                                    None, None)
    assert study.user_attrs["verticals_task"] == "text-classification"


def test_sweep_keeps_the_folder_of_a_trial_started_meanwhile(tmp_path):
    """Review of CI stop 47: a worker read the running trials, another started trial N and made its folder,
    then the first listed the folders and removed N's as finished."""
    from verticals.workshop.tune import TRIAL_MARK, _sweep

    real = optuna.create_study(study_name="s", direction="maximize")
    finished = real.ask()
    real.tell(finished, 1.0)
    old = tmp_path / f"trial-{finished.number}-aaaa"
    old.mkdir()
    (old / TRIAL_MARK).write_text(json.dumps({"study": "s", "trial": finished.number}))
    started: list[Path] = []

    def other_worker_starts_a_trial() -> None:
        trial = real.ask()
        folder = tmp_path / f"trial-{trial.number}-bbbb"
        folder.mkdir()
        (folder / TRIAL_MARK).write_text(json.dumps({"study": "s", "trial": trial.number}))
        started.append(folder)

    _sweep(tmp_path, _Interleaved(real, "get_trials", other_worker_starts_a_trial))
    assert not old.exists()  # finished: its folder is swept
    assert started and started[0].is_dir()  # running: kept
