"""``verticals tune``: hyperparameter search with Optuna.

Each trial fine-tunes the task with parameters drawn by a seeded TPE sampler and is scored on the validation
split by the task's primary metric; a median pruner stops trials whose per-epoch validation value falls
behind (reported from the trainer's callbacks). The study lives in an Optuna RDB storage -- by default a
SQLite file beside the output -- so a killed run resumes where it stopped and several processes (or machines,
with a PostgreSQL/MySQL URL) share one study. The best trial's parameters are then trained into a normal
bundle whose ``bundle.json`` records the study under ``tune``.
"""

from __future__ import annotations

import fcntl
import gc
import json
import logging
import os
import shutil
import socket
import sqlite3
import time
import uuid
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Literal

from ..api import build_task, train_task
from ..bundles.bundle import check_output
from ..config import deep_merge, parse_set, read_config_file
from ..errors import ConfigError, VerticalsError
from ..plugins.search_space import flatten, layered_space, nest, read_tune_config
from ..predictor import Predictor

logger = logging.getLogger("verticals")

TRIAL_MARK = ".verticals-tune-trial.json"
"""Written into each trial's scratch folder: only folders holding it are ever removed by a later run."""
SQLITE_HEADER = b"SQLite format 3\x00"
FINISHED = ("COMPLETE", "PRUNED")


def require_optuna() -> Any:
    """The optuna module, or a ConfigError saying how to install it."""
    try:
        import optuna
    except ImportError:
        raise ConfigError("verticals tune needs Optuna: pip install 'verticals[workshop]'") from None
    return optuna


def open_storage(url: str | None, default_file: Path, heartbeat: int) -> tuple[Any, str]:
    """An Optuna RDB storage for ``url`` (default: the SQLite file ``default_file``) and the URL to show
    (password hidden). Anything that is not a database Optuna can use is a ConfigError, before any write."""
    from optuna.storages import RDBStorage
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, IntegrityError, SQLAlchemyError

    if url is None:
        default_file.parent.mkdir(parents=True, exist_ok=True)
        url = f"sqlite:///{default_file.resolve()}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise ConfigError(f"--storage {url!r} is not a database URL; expected sqlite:///PATH (a file), or "
                          f"postgresql://USER@HOST/DB or mysql+pymysql://USER@HOST/DB for workers on several "
                          f"machines") from None
    shown = parsed.render_as_string(hide_password=True)
    engine_kwargs: dict[str, Any] = {}
    sqlite_path: Path | None = None
    if parsed.get_backend_name() == "sqlite":
        if not parsed.database or parsed.database == ":memory:":
            raise ConfigError(f"--storage {shown}: an in-memory database cannot be resumed or shared; give a file, "
                              f"sqlite:///PATH")
        sqlite_path = Path(parsed.database)
        _check_sqlite_file(sqlite_path, shown)
        # several local workers write the same file: wait for the lock instead of failing at once
        engine_kwargs = {"connect_args": {"timeout": 120}}
    for attempt in range(3):
        try:
            with _initialising(sqlite_path):
                if sqlite_path is not None:
                    # under the lock: a worker still creating Optuna's tables has shown only some of them
                    _refuse_foreign_tables(sqlite_path, shown)
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")  # heartbeat arguments are "experimental" in Optuna
                    return RDBStorage(url, engine_kwargs=engine_kwargs, heartbeat_interval=heartbeat,
                                      grace_period=2 * heartbeat), shown
        except IntegrityError:
            # two workers creating Optuna's tables in one new server database at once: the loser retries
            if attempt == 2:
                raise
            time.sleep(1 + attempt)
        except (SQLAlchemyError, ImportError, ValueError, RuntimeError) as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ConfigError(f"--storage {shown}: cannot be opened as an Optuna study database ({reason})") from None
    raise AssertionError("unreachable")


@contextmanager
def _initialising(sqlite_path: Path | None) -> Iterator[None]:
    """Serialise Optuna's table creation between local workers starting on one new SQLite file (they would
    race on it): an flock on the database file itself, independent of SQLite's own fcntl locks."""
    if sqlite_path is None:
        yield
        return
    with open(sqlite_path, "rb") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _check_sqlite_file(path: Path, shown: str) -> None:
    """Refuse a path that is not a file, or a file that is not SQLite; create a new file in WAL mode
    (concurrent workers, durable commits). Its tables are checked later, under the initialisation lock."""
    if path.exists():
        if not path.is_file():
            raise ConfigError(f"--storage {shown}: {path} is not a file")
        with open(path, "rb") as handle:
            head = handle.read(len(SQLITE_HEADER))
        if head and head != SQLITE_HEADER:
            raise ConfigError(f"--storage {shown}: {path} is not a SQLite database; give a new file name (it is "
                              f"created) or an existing study database")
        return
    if not path.parent.is_dir():
        raise ConfigError(f"--storage {shown}: folder {path.parent} does not exist")
    try:
        with sqlite3.connect(path) as con:
            con.execute("PRAGMA journal_mode=WAL")
    except sqlite3.Error as exc:
        raise ConfigError(f"--storage {shown}: cannot create {path} ({exc})") from None


def _refuse_foreign_tables(path: Path, shown: str) -> None:
    """Refuse a SQLite database holding tables but not Optuna's (Optuna would add its tables to it). Called
    under ``_initialising``: a worker creating the tables commits them one at a time. Some of Optuna's tables,
    column for column, and nothing else is what a worker killed while creating them leaves: Optuna completes
    them (another application's table that merely shares a name, such as ``studies``, is still refused)."""
    try:
        with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as con:
            names = [row[0] for row in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
            tables = {name: {column[0] for column in con.execute("SELECT name FROM pragma_table_info(?)", (name,))}
                      for name in names}
    except sqlite3.DatabaseError as exc:
        raise ConfigError(f"--storage {shown}: {path} cannot be read as SQLite ({exc})") from None
    if not tables:
        return
    if {"studies", "trials"} <= set(tables):
        # a study database, of this Optuna or another version (the core columns have not changed since 2019;
        # an older schema is then Optuna's to upgrade or refuse)
        if {"study_id", "study_name"} <= tables["studies"] and \
                {"trial_id", "number", "study_id", "state"} <= tables["trials"]:
            return
    elif all(_optuna_columns().get(name) == columns for name, columns in tables.items()):
        return
    raise ConfigError(f"--storage {shown}: {path} is a database of another application (tables: "
                      f"{', '.join(sorted(tables)[:5])}); Optuna would add its tables to it; give a new file name")


def _optuna_columns() -> dict[str, set[str]]:
    """Each table this Optuna creates, with its columns (its models' metadata, a private module: if it moves,
    none, and a partly created study is refused like another application's), and its migrations' stamp."""
    try:
        from optuna.storages._rdb import models
    except ImportError:
        return {}
    columns = {name: {column.name for column in table.columns}
               for name, table in models.BaseModel.metadata.tables.items()}
    return columns | {"alembic_version": {"version_num"}}


def per_trial_sampler(seed: int, startup_trials: int) -> Any:
    """TPE, reseeded for each trial with ``seed + trial number``: workers sharing a study (all with the same
    seed) never draw the same random start-up parameters, and a resumed study draws what an uninterrupted
    one would have for the same history. TPE keeps no state between trials other than its random generator
    (the history is read from the storage), so a fresh sampler per trial changes nothing else."""
    import optuna

    class PerTrialTPESampler(optuna.samplers.BaseSampler):
        def __init__(self) -> None:
            self._current: tuple[int, Any] | None = None

        def _tpe(self, trial: Any) -> Any:
            if self._current is None or self._current[0] != trial.number:
                self._current = (trial.number, optuna.samplers.TPESampler(
                    seed=seed + trial.number, n_startup_trials=startup_trials))
            return self._current[1]

        def infer_relative_search_space(self, study, trial):  # type: ignore[no-untyped-def]
            return self._tpe(trial).infer_relative_search_space(study, trial)

        def sample_relative(self, study, trial, search_space):  # type: ignore[no-untyped-def]
            return self._tpe(trial).sample_relative(study, trial, search_space)

        def sample_independent(self, study, trial, param_name, param_distribution):  # type: ignore[no-untyped-def]
            return self._tpe(trial).sample_independent(study, trial, param_name, param_distribution)

        def before_trial(self, study, trial):  # type: ignore[no-untyped-def]
            self._tpe(trial).before_trial(study, trial)

        def after_trial(self, study, trial, state, values):  # type: ignore[no-untyped-def]
            self._tpe(trial).after_trial(study, trial, state, values)

    return PerTrialTPESampler()


def pruning_callback(trial: Any, metric: str) -> Any:
    """A TrainerCallback reporting each epoch's validation ``metric`` to the trial and raising
    ``optuna.TrialPruned`` out of training when the pruner says so (the trial folder is then discarded)."""
    import optuna
    from transformers import TrainerCallback

    class _Prune(TrainerCallback):
        def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # type: ignore[no-untyped-def]
            value = (metrics or {}).get(f"eval_{metric}")
            if value is None or not state.is_world_process_zero:
                return
            epoch = max(1, round(state.epoch or 0))
            trial.report(float(value), epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {epoch}: validation {metric} {value:.4f}")

    return _Prune()


def _open_study(storage: Any, shown: str, name: str, task: str, metric: str,
                direction: Literal["maximize", "minimize"], sampler: Any,
                pruner: Any) -> Any:
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction=direction, sampler=sampler,
                                pruner=pruner, load_if_exists=True)
    # the trials before the owner: a worker sets the owner before its first trial, so a study read the other
    # way round can show another worker's new trial and not yet its owner
    has_trials = bool(study.get_trials(deepcopy=False))
    owner = study.user_attrs.get("verticals_task")
    if owner is None and has_trials:
        raise ConfigError(f"study '{name}' in {shown} was not made by verticals tune (it has trials but no task); "
                          f"choose another --study")
    if owner is not None and owner != task:
        raise ConfigError(f"study '{name}' in {shown} was created for task {owner}, not {task}; choose another "
                          f"--study (or --storage) for {task}")
    if study.direction.name.lower() != direction:
        raise ConfigError(f"study '{name}' in {shown} is set to {study.direction.name.lower()}, but {task}'s "
                          f"{metric} is to {direction}; choose another --study")
    if owner is None:
        study.set_user_attr("verticals_task", task)
        study.set_user_attr("verticals_metric", metric)
    return study


def _sweep(work: Path, study: Any) -> None:
    """Remove the scratch folders of trials that are no longer running (a killed worker leaves its own)."""
    from optuna.trial import TrialState

    # the folders before the running trials: a trial is RUNNING before its folder exists, so a folder listed
    # first whose trial is not running afterwards has finished (the other order can catch a new trial's folder)
    entries = sorted(work.glob("trial-*"))
    running = {t.number for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))}
    for entry in entries:
        try:
            mark = json.loads((entry / TRIAL_MARK).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue  # not a folder this module made: left alone
        if not entry.is_symlink() and mark.get("study") == study.study_name and mark.get("trial") not in running:
            shutil.rmtree(entry, ignore_errors=True)


def _record(study: Any, shown: str, metric: str, space: dict[str, Any], settings: Any) -> dict[str, Any]:
    """What bundle.json keeps of the study: every trial (number, state, value, params, per-epoch values)."""
    best = study.best_trial
    trials = []
    for t in study.get_trials(deepcopy=False):
        duration = (t.datetime_complete - t.datetime_start).total_seconds() \
            if t.datetime_complete and t.datetime_start else None
        trials.append({"number": t.number, "state": t.state.name, "value": t.value, "params": dict(t.params),
                       "worker": t.user_attrs.get("worker"),
                       "intermediate": {str(k): v for k, v in sorted(t.intermediate_values.items())},
                       "duration_s": round(duration, 1) if duration is not None else None})
    return {"study": study.study_name, "storage": shown, "metric": f"validation {metric}",
            "direction": study.direction.name.lower(), "best_trial": best.number, "best_value": best.value,
            "params": dict(best.params), "space": {name: p.model_dump() for name, p in space.items()},
            "sampler": f"TPE, seed {settings.seed} + trial number, {settings.startup_trials} random start-up trials",
            "pruner": (f"median, after {settings.pruner_startup_trials} trials, from epoch "
                       f"{settings.prune_from_epoch}") if settings.pruning else None,
            "trials": trials}


def tune(task: str, train: Any, *, output: str | Path, trials: int, validation: Any = None, test: Any = None,
         timeout: float | None = None, storage: str | None = None, study: str | None = None,
         config: str | Path | dict[str, Any] | None = None, overrides: Sequence[str] | dict[str, Any] | None = None,
         backbone: str | None = None, overwrite: bool = False) -> Predictor[Any]:
    """Search ``task``'s hyperparameters until the study holds ``trials`` finished (complete or pruned)
    trials -- counted over every run and worker of the study -- or ``timeout`` seconds passed, then train the
    best trial's parameters into a bundle at ``output``; ``bundle.json`` records the study under ``tune``.

    ``storage`` is an Optuna RDB URL (default: ``sqlite:///OUTPUT.tune/study.db``); ``study`` its name
    (default: the output folder's name). ``config`` may hold a ``tune:`` section (see
    :class:`~verticals.plugins.search_space.TuneConfig`); options fixed by ``overrides`` are not searched."""
    optuna = require_optuna()
    from optuna.study import MaxTrialsCallback
    from optuna.trial import TrialState

    if not isinstance(trials, int) or trials < 1:
        raise ConfigError(f"--trials must be a whole number >= 1, got {trials!r}")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout must be a number of seconds > 0, got {timeout!r}")
    output = Path(output)
    check_output(output, overwrite)  # fail now, not after hours of trials
    base = read_config_file(config) if isinstance(config, (str, Path)) else deep_merge({}, config or {})
    settings = read_tune_config(base.pop("tune", None))
    fixed: dict[str, Any] = {}
    if isinstance(overrides, dict):
        fixed = deep_merge({}, overrides)
    else:
        for assignment in overrides or []:
            fixed = deep_merge(fixed, parse_set(assignment))
    model, spec, pack = build_task(task, base, fixed, backbone)  # the configuration is valid before any trial
    space = layered_space(spec, type(model), settings)
    for name in sorted(set(space) & set(flatten(fixed))):
        logger.info("tune: %s is fixed by --set, so it is not searched", name)
        space.pop(name)
    if not space:
        raise ConfigError(f"nothing to search for {task}: the search space is empty; declare parameters in a "
                          f"tune.space section of --config (`verticals config {task}` shows the default space)")
    for name, param in space.items():  # every value the space can reach is a valid option
        for value in param.values():
            try:
                build_task(task, base, deep_merge(fixed, nest({name: value})), backbone)
            except ConfigError as exc:
                raise ConfigError(f"tune.space {name}={value!r} is not a valid setting: {exc}") from None
    metric = model.primary_metric
    direction: Literal["maximize", "minimize"] = "maximize" if model.greater_is_better else "minimize"
    work = Path(f"{output}.tune")
    store, shown = open_storage(storage, work / "study.db", settings.heartbeat_seconds)
    pruner = optuna.pruners.MedianPruner(n_startup_trials=settings.pruner_startup_trials,
                                         n_warmup_steps=settings.prune_from_epoch) \
        if settings.pruning else optuna.pruners.NopPruner()
    name = study or output.name
    the_study = _open_study(store, shown, name, task, metric, direction,
                            per_trial_sampler(settings.seed, settings.startup_trials), pruner)
    prune = settings.pruning and model.supports_trainer_callbacks

    def objective(trial: Any) -> float:
        params = {key: _suggest(trial, key, param) for key, param in space.items()}
        trial.set_user_attr("worker", f"{socket.gethostname()}:{os.getpid()}")  # who ran it, when workers share
        _sweep(work, the_study)
        # numbers are unique within a study only; the suffix keeps studies sharing an output apart
        folder = work / f"trial-{trial.number}-{uuid.uuid4().hex[:8]}"
        folder.mkdir(parents=True)  # a new folder: ours to remove
        (folder / TRIAL_MARK).write_text(json.dumps({"study": name, "trial": trial.number}), encoding="utf-8")
        try:
            trial_model, _, _ = build_task(task, base, deep_merge(fixed, nest(params)), backbone)
            predictor = train_task(trial_model, spec, pack, task, train, output=folder / "bundle",
                                   validation=validation,
                                   callbacks=[pruning_callback(trial, metric)] if prune else [])
            value = float(predictor.info.metrics["validation"][metric])
        except optuna.TrialPruned as pruned:
            logger.info("tune: trial %d: %s, with %s", trial.number, pruned, _short(params))
            raise
        finally:
            shutil.rmtree(folder, ignore_errors=True)
            gc.collect()
        logger.info("tune: trial %d: validation %s %.4f with %s", trial.number, metric, value, _short(params))
        return value

    done = len(the_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED)))
    if done < trials:
        logger.info("tune: study '%s' in %s: %d of %d trials finished; running the rest", name, shown, done, trials)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            # VerticalsErrors (bad data, ...) end the search at once; Optuna marks that trial FAIL first
            the_study.optimize(objective, n_trials=trials - done, timeout=timeout, catch=(),
                               callbacks=[MaxTrialsCallback(trials, states=(TrialState.COMPLETE, TrialState.PRUNED))],
                               gc_after_trial=True)
    if not the_study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)):
        raise VerticalsError(f"study '{name}' has no complete trial yet; run again with a longer --timeout")
    best = the_study.best_trial
    logger.info("tune: best trial %d: validation %s %.4f; training it into %s", best.number, metric, best.value,
                output)
    record = _record(the_study, shown, metric, space, settings)
    final, _, _ = build_task(task, base, deep_merge(fixed, nest(dict(best.params))), backbone)
    return train_task(final, spec, pack, task, train, output=output, validation=validation, test=test,
                      overwrite=overwrite, info_extra={"tune": record})


def _suggest(trial: Any, name: str, param: Any) -> Any:
    if param.type == "float":
        return trial.suggest_float(name, param.low, param.high, log=param.log)
    if param.type == "int":
        return trial.suggest_int(name, param.low, param.high, step=param.step)
    return trial.suggest_categorical(name, param.choices)


def _short(params: dict[str, Any]) -> str:
    return ", ".join(f"{key.rpartition('.')[2]}={value:.3g}" if isinstance(value, float)
                     else f"{key.rpartition('.')[2]}={value}" for key, value in params.items())
