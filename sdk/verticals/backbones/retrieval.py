"""A FAISS inner-product index over normalised embeddings, with JSON metadata per entry.

Stored as ``<name>.faiss`` (faiss' own format) + ``<name>.json`` (metadata), never pickle, so it can sit
inside a bundle and be covered by its manifest.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import BundleError, NotFittedError


class VectorIndex:
    """Exact cosine search (``IndexFlatIP`` on unit vectors); results come with their metadata."""

    def __init__(self, dim: int) -> None:
        import faiss

        self.dim = dim
        self.index = faiss.IndexFlatIP(dim)
        self.metadata: list[dict[str, Any]] = []
        self._query = np.zeros((1, dim), dtype=np.float32)  # reused by search_one: no per-call allocation

    def __len__(self) -> int:
        return int(self.index.ntotal)

    def add(self, vectors: np.ndarray, metadata: Sequence[dict[str, Any]]) -> VectorIndex:
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.ndim != 2 or vectors.shape[1] != self.dim:
            raise ValueError(f"expected vectors of shape [n, {self.dim}], got {vectors.shape}")
        if len(vectors) != len(metadata):
            raise ValueError(f"{len(vectors)} vectors but {len(metadata)} metadata entries")
        self.index.add(vectors)
        self.metadata.extend(dict(m) for m in metadata)
        return self

    def search(self, queries: np.ndarray, k: int) -> list[list[tuple[float, dict[str, Any]]]]:
        """For each query, up to ``k`` (similarity, metadata) pairs, best first."""
        if len(self) == 0:
            raise NotFittedError("the vector index is empty")
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        scores, ids = self.index.search(queries, min(k, len(self)))
        return [
            [(float(s), self.metadata[i]) for s, i in zip(row_s, row_i) if i >= 0]
            for row_s, row_i in zip(scores, ids)
        ]

    def search_one(self, query: np.ndarray, k: int) -> list[tuple[float, dict[str, Any]]]:
        self._query[0] = query
        return self.search(self._query, k)[0]

    def save(self, directory: Path, name: str = "index") -> None:
        import faiss

        faiss.write_index(self.index, str(directory / f"{name}.faiss"))
        (directory / f"{name}.json").write_text(
            json.dumps({"dim": self.dim, "metadata": self.metadata}, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    @classmethod
    def load(cls, directory: Path, name: str = "index") -> VectorIndex:
        """The index saved in the bundle ``directory``, from the bytes checked against its manifest."""
        import faiss

        from ..bundles.bundle import read_verified

        meta_bytes, index_bytes = read_verified(directory, f"{name}.json"), read_verified(directory, f"{name}.faiss")
        try:
            meta = json.loads(meta_bytes)
            index = cls(int(meta["dim"]))
            index.index = faiss.deserialize_index(np.frombuffer(index_bytes, dtype=np.uint8))
        except (OSError, KeyError, ValueError, RuntimeError) as exc:
            raise BundleError(f"{directory}: cannot read vector index '{name}' ({exc})") from None
        index.metadata = list(meta["metadata"])
        if len(index.metadata) != len(index):
            raise BundleError(f"{directory}: index '{name}' has {len(index)} vectors but "
                              f"{len(index.metadata)} metadata entries")
        return index
