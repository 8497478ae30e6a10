"""Batch scoring on Ray Data (``pip install 'verticals[ray]'``): the same predictor as ``verticals predict``,
run by a pool of Ray actors that each load the bundle once.

On one machine ``ray.init()`` starts a local cluster; pointing the same code at a real cluster is a matter
of ``ray.init(address="ray://HEAD:10001")`` (or ``RAY_ADDRESS=...`` in the environment, or submitting the
script with ``ray job submit``). The bundle path must then be readable by every worker (shared storage or
an object store URI that the workers mount).
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .. import errors
from ..bundles.bundle import atomic_directory
from ..data.records import is_path, plain
from ..errors import ConfigError, DataError, VerticalsError
from .streaming import flatten_prediction, stream_format


def _ray() -> Any:
    try:
        import ray
        import ray.data  # noqa: F401 - the Data library is an extra of ray
    except ImportError:
        raise ConfigError("Ray scoring needs Ray Data: pip install 'verticals[ray]'") from None
    return ray


class BundleScorer:
    """A ``map_batches`` callable class: Ray builds one per actor, so the bundle is loaded (and verified)
    once per worker, then every batch (a pandas DataFrame) is scored with it."""

    def __init__(self, bundle: str | Path, keep_columns: Sequence[str] = (), num_threads: int | None = None) -> None:
        import torch

        from ..api import load

        self.predictor = load(bundle)
        self.keep_columns = list(keep_columns)
        # One actor per CPU: more intra-op threads than the actor's CPUs would oversubscribe the node.
        torch.set_num_threads(num_threads or int(os.environ.get("OMP_NUM_THREADS", "0") or 0) or 1)

    def __call__(self, batch: Any) -> Any:
        import pandas as pd

        task = self.predictor.task
        rows = batch.to_dict("records")
        records = [task.as_record(_plain(row), i, source="<ray batch>") for i, row in enumerate(rows)]
        predictions = task.predict(records)
        out = []
        for row, prediction in zip(rows, predictions):
            kept = {}
            for column in self.keep_columns:
                if column not in row:
                    raise DataError(f"no column '{column}' to keep (found: {', '.join(map(str, row))})",
                                    field=column)
                kept[column] = row[column]
            out.append(kept | flatten_prediction(prediction.model_dump()))
        return pd.DataFrame(out)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Plain Python values (see :func:`verticals.data.records.plain`), without the fields a row lacks: Ray's tables
    have one schema for all rows, so a field absent from a JSON line arrives as null, and the error should
    say the column is missing."""
    values = ((key, plain(value)) for key, value in row.items())
    return {key: value for key, value in values if value is not None}


def as_dataset(data: Any, fmt: str = "auto", *, blocks: int | None = None) -> Any:
    """A Ray Dataset of ``data``: a Ray Dataset as it is, a file path (:func:`read_dataset`), a pandas
    DataFrame, a ``datasets.Dataset`` or a list of dicts."""
    ray = _ray()
    if hasattr(data, "map_batches"):
        return data
    if is_path(data):
        return read_dataset(data, fmt, blocks=blocks)
    split = {"override_num_blocks": blocks} if blocks else {}
    if hasattr(data, "to_dict") and hasattr(data, "iloc"):
        return ray.data.from_pandas(data, **split)
    if hasattr(data, "column_names") and hasattr(data, "features") and not isinstance(data, dict):
        return ray.data.from_huggingface(data, **split)
    if isinstance(data, (list, tuple)) and all(isinstance(item, dict) for item in data):
        return ray.data.from_items(list(data), **split)
    raise TypeError(f"expected a Ray Dataset, a file path, a pandas DataFrame, a datasets.Dataset or a list of "
                    f"records (dicts); got {type(data).__name__}")


def _verticals_cause(exc: BaseException) -> VerticalsError | None:
    """The DataError/ConfigError a worker raised, out of Ray's wrapping exceptions."""
    pending: list[Any] = [exc]
    seen: set[int] = set()
    while pending:
        current = pending.pop(0)
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, VerticalsError):
            return current
        pending += [getattr(current, "cause", None), current.__cause__, current.__context__]
    # Ray does not always ship the original exception object back, only its formatted traceback.
    found = re.search(r"verticals\.errors\.(\w+Error): (.+)", str(exc))
    cls = getattr(errors, found.group(1), None) if found else None
    if found and isinstance(cls, type) and issubclass(cls, VerticalsError):
        error = cls.__new__(cls)
        Exception.__init__(error, found.group(2).strip())
        error.path = error.line = error.field = None  # type: ignore[attr-defined]
        return error
    return None


def score_dataset(dataset: Any, bundle: str | Path, *, workers: int = 2, batch_size: int = 1024,
                  cpus_per_worker: float | None = None, gpus_per_worker: float = 0,
                  keep_columns: Sequence[str] = ()) -> Any:
    """A lazy Ray Dataset of predictions for ``dataset`` (one flat row per input row, nested values as JSON
    strings): ``workers`` actors each hold one loaded copy of the bundle. ``dataset`` is a Ray Dataset or
    anything :func:`as_dataset` takes (a path, a pandas DataFrame, a ``datasets.Dataset``, a list of dicts).

    ``cpus_per_worker`` defaults to an even share of the cluster's CPUs (at most 1) that leaves one CPU for
    the read and write tasks: actors holding every CPU would starve the readers and never get input.
    """
    ray = _ray()
    dataset = as_dataset(dataset)
    if cpus_per_worker is None:
        total = float(ray.cluster_resources().get("CPU", 1)) if ray.is_initialized() else 1.0
        cpus_per_worker = max(0.1, min(1.0, (total - 1) / workers))
    return dataset.map_batches(
        BundleScorer,
        fn_constructor_kwargs={"bundle": str(Path(bundle).resolve()), "keep_columns": list(keep_columns),
                               "num_threads": max(1, round(cpus_per_worker))},
        batch_size=batch_size,
        batch_format="pandas",
        concurrency=workers,
        num_cpus=cpus_per_worker,
        num_gpus=gpus_per_worker,
    )


def read_dataset(path: str | Path, fmt: str = "auto", *, blocks: int | None = None) -> Any:
    """A Ray Dataset over a CSV / TSV / JSONL / Parquet file or directory of such files (``blocks``:
    split the input into at least this many blocks, so small files still reach every worker)."""
    ray = _ray()
    kind = stream_format(path, fmt)
    location = str(path)
    split = {"override_num_blocks": blocks} if blocks else {}
    if kind == "csv":
        return ray.data.read_csv(location, **split)
    if kind == "tsv":
        import pyarrow.csv as pacsv

        return ray.data.read_csv(location, parse_options=pacsv.ParseOptions(delimiter="\t"), **split)
    if kind == "jsonl":
        return ray.data.read_json(location, lines=True, **split)
    if kind == "parquet":
        return ray.data.read_parquet(location, **split)
    raise DataError("Ray scoring reads csv, tsv, jsonl or parquet; give the format of a directory with fmt=",
                    path=path)


def score_file(bundle: str | Path, input: Any, output: str | Path, *, workers: int = 2,
               batch_size: int = 1024, keep_columns: Sequence[str] = (), fmt: str = "auto",
               blocks: int | None = None) -> int:
    """Score ``input`` with Ray into a new directory ``output`` of Parquet files; return the row count.

    Starts a local Ray cluster if none is connected (``ray.init()`` honours ``RAY_ADDRESS``).
    """
    ray = _ray()
    if not ray.is_initialized():
        ray.init(log_to_driver=False)
    dataset = as_dataset(input, fmt, blocks=blocks)
    predictions = score_dataset(dataset, bundle, workers=workers, batch_size=batch_size, keep_columns=keep_columns)
    # Ray streams blocks from readers through the actors into the writer; the directory appears only
    # when complete (written under a temporary name, then renamed).
    with atomic_directory(output, overwrite=False) as tmp:
        try:
            predictions.write_parquet(str(tmp))
        except Exception as exc:
            cause = _verticals_cause(exc)
            if cause is None:
                raise
            raise cause from None
        import pyarrow.parquet as pq

        return sum(pq.ParquetFile(f).metadata.num_rows for f in sorted(Path(tmp).glob("*.parquet")))
