"""A distillation's teacher outputs, computed once per input set and kept on disk (safetensors).

A teacher forward over the training set, the unlabelled texts and any generated transfer set is the
expensive part of a distillation with a base-size teacher on CPU; a rerun, a ``--resume`` or another student
of the same teacher needs the same numbers. The cache holds the teacher's raw logits (temperature-independent:
the student's temperature is applied later, in the loss), one file per (teacher bundle digest, input digest):

* the teacher digest is the one ``verticals inspect --expect`` checks (sha256 of the bundle manifest), so a
  retrained or replaced teacher never reuses another teacher's outputs, it computes its own;
* the input digest hashes the token ids the teacher reads, in order (no labels: the same texts with other
  gold labels reuse the outputs, which do not depend on labels).

The same cache keeps the pooled hidden states of a teacher's layers for intermediate-layer distillation
(``kind="pooled-4+8+12"``: the teacher layers), in files named by the kind too, so logits and states of
one input set never take each other's place.

Both digests are also written inside the file and checked on reading, so a renamed or truncated file is
recomputed, never silently reused. Writes are atomic (temporary file, then rename). The folder is the SDK's
(``<output>.teacher-outputs``); only files named as this module names them are ever written there.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

logger = logging.getLogger("verticals")

FORMAT = "verticals-teacher-logits/1"
INPUT_KEYS = ("input_ids", "token_type_ids")


def inputs_digest(features: Sequence[dict[str, Any]]) -> str:
    """sha256 over the model inputs of every feature, in order (lengths included, so no two sets collide by
    concatenation)."""
    sha = hashlib.sha256()
    for feature in features:
        for key in INPUT_KEYS:
            if key in feature and feature[key] is not None:
                ids = np.asarray(feature[key], dtype=np.int64)
                sha.update(f"{key}:{ids.size};".encode())
                sha.update(ids.tobytes())
        sha.update(b"|")
    return sha.hexdigest()


class TeacherLogitsCache:
    """Caches one teacher's ``predict_logits`` (or, with another ``kind``, other per-input outputs such as
    pooled layer states) in ``directory``. ``teacher_digest`` names the teacher."""

    def __init__(self, directory: str | Path, teacher_digest: str, kind: str = "logits") -> None:
        self.directory = Path(directory)
        self.teacher_digest = teacher_digest
        self.kind = kind
        self.hits = 0
        self.misses = 0

    def of_kind(self, kind: str) -> TeacherLogitsCache:
        """A cache of the same teacher in the same folder for another kind of output."""
        return TeacherLogitsCache(self.directory, self.teacher_digest, kind)

    def path(self, digest_of_inputs: str) -> Path:
        middle = "" if self.kind == "logits" else f"{self.kind}-"  # logits files keep their original names
        return self.directory / f"{self.teacher_digest[:16]}-{middle}{digest_of_inputs[:16]}.safetensors"

    def logits(self, features: Sequence[dict[str, Any]],
               compute: Callable[[], list[np.ndarray]]) -> list[np.ndarray]:
        """The teacher's per-feature logits for ``features``: read from the cache when a file for this teacher
        and these inputs exists and says so inside, else computed with ``compute()`` and written."""
        key = inputs_digest(features)
        path = self.path(key)
        cached = self._read(path, key, len(features))
        if cached is not None:
            self.hits += 1
            logger.info("teacher outputs for %d inputs read from %s", len(features), path)
            return cached
        self.misses += 1
        logits = compute()
        self._write(path, key, logits)
        return logits

    def _read(self, path: Path, key: str, count: int) -> list[np.ndarray] | None:
        from safetensors import safe_open

        if not path.is_file():
            return None
        try:
            with safe_open(str(path), framework="np") as handle:
                meta = handle.metadata() or {}
                if (meta.get("format"), meta.get("teacher_digest"), meta.get("inputs_digest"),
                        meta.get("kind", "logits")) != (FORMAT, self.teacher_digest, key, self.kind):
                    logger.warning("%s belongs to another teacher or input set; recomputing", path)
                    return None
                rows, lengths = handle.get_tensor("logits"), handle.get_tensor("lengths")
                per_token = meta.get("per_token") == "1"
        except Exception as exc:  # noqa: BLE001 - a damaged file is recomputed; safetensors raises its own types
            logger.warning("%s cannot be read (%s); recomputing", path, exc)
            return None
        if len(lengths) != count or int(lengths.sum()) != len(rows):
            logger.warning("%s does not match the inputs; recomputing", path)
            return None
        parts = np.split(rows, np.cumsum(lengths)[:-1]) if count else []
        return [part if per_token else part[0] for part in parts]

    def _write(self, path: Path, key: str, logits: list[np.ndarray]) -> None:
        from safetensors.numpy import save_file

        arrays = [np.asarray(row, dtype=np.float32) for row in logits]
        per_token = bool(arrays) and arrays[0].ndim == 2
        if arrays and any(a.ndim != (2 if per_token else 1) for a in arrays):
            raise ConfigError("the teacher's logits mix per-text and per-token outputs; they cannot be cached")
        rows = [a if per_token else a[None, :] for a in arrays]
        width = rows[0].shape[1] if rows else 0
        tensors: dict[str, np.ndarray] = {"logits": np.concatenate(rows) if rows else np.zeros((0, width), np.float32),
                   "lengths": np.asarray([len(r) for r in rows], dtype=np.int64)}
        meta = {"format": FORMAT, "teacher_digest": self.teacher_digest, "inputs_digest": key,
                "per_token": "1" if per_token else "0", "kind": self.kind}
        self.directory.mkdir(parents=True, exist_ok=True)
        temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        if path.exists() and not _ours(path):  # a file we did not write: never replaced, the run goes on uncached
            logger.warning("%s exists and is not a Verticals teacher-output cache; not caching there", path)
            return
        try:
            save_file(tensors, str(temporary), metadata=meta)
            os.replace(temporary, path)
        except OSError as exc:  # a cache that cannot be written costs a recomputation next time, not the run
            temporary.unlink(missing_ok=True)
            logger.warning("teacher outputs not cached in %s (%s)", self.directory, exc)


def _ours(path: Path) -> bool:
    """Whether ``path`` is a cache file of this format (ours to replace when stale), whatever its teacher."""
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="np") as handle:
            return (handle.metadata() or {}).get("format") == FORMAT
    except Exception:  # noqa: BLE001 - unreadable as safetensors: not ours
        return False
