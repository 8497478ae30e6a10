"""Item-kNN neighbours and the re-ranking head, checked against dense computations and by construction."""

import numpy as np
import pytest
from verticals.errors import BundleError
from verticals_recommendation import collaborative
from verticals_recommendation.collaborative import (
    FEATURES,
    Reranker,
    item_neighbours,
    knn_scores,
    load_neighbours,
    save_neighbours,
)


def _dense_neighbours(seen: dict[str, list[int]], n_items: int, k: int) -> np.ndarray:
    x = np.zeros((len(seen), n_items))
    for row, items in enumerate(seen.values()):
        x[row, items] = 1.0
    norms = np.maximum(np.sqrt(x.sum(axis=0)), 1.0)
    sim = (x / norms).T @ (x / norms)
    np.fill_diagonal(sim, 0.0)
    kept = np.zeros_like(sim)
    for j in range(n_items):  # the k most similar source items of each target item j
        top = np.argsort(-sim[:, j], kind="stable")[:k]
        kept[top, j] = sim[top, j]
    return kept


@pytest.mark.parametrize("block", [collaborative.DENSE_BLOCK, 7 * 40])  # one block, and 7-column blocks
def test_neighbours_match_dense_item_knn(block: int, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(collaborative, "DENSE_BLOCK", block)
    rng = np.random.default_rng(0)
    seen = {f"u{u}": sorted(rng.choice(40, size=int(rng.integers(2, 9)), replace=False).tolist()) for u in range(60)}
    got = item_neighbours(seen, 40, 5).toarray()
    want = _dense_neighbours(seen, 40, 5)
    # ties at the k-th place may keep another item of equal similarity: compare the kept values per column
    assert np.allclose(np.sort(got, axis=0), np.sort(want, axis=0), atol=1e-6)
    assert (got > 0).sum(axis=0).max() <= 5 and np.all(np.diag(got) == 0)


def test_knn_scores_sum_neighbour_similarities(tmp_path) -> None:  # type: ignore[no-untyped-def]
    seen = {"a": [0, 1], "b": [0, 1, 2], "c": [2, 3]}
    neighbours = item_neighbours(seen, 5, 3)
    dense = neighbours.toarray()
    knn, recent = knn_scores(neighbours, [[0, 2, 3]], recent=1)
    assert np.allclose(knn.toarray()[0], dense[[0, 2, 3]].sum(axis=0))
    assert np.allclose(recent.toarray()[0], dense[3])
    assert knn.toarray()[0, 4] == 0.0  # item 4 co-occurs with nothing
    save_neighbours(neighbours, tmp_path / "n.safetensors")
    assert np.array_equal(load_neighbours(tmp_path / "n.safetensors").toarray(), dense)
    (tmp_path / "bad.safetensors").write_bytes(b"not a tensor file")
    with pytest.raises(BundleError, match="unreadable item neighbours"):
        load_neighbours(tmp_path / "bad.safetensors")


def test_reranker_learns_the_informative_feature_and_scores_cold_items_by_similarity() -> None:
    rng = np.random.default_rng(1)
    n = 4000
    labels = (rng.random(n) < 0.1).astype(int)
    features = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    features[:, 2] += 2.0 * labels  # only the item-kNN feature tells positives apart...
    features[:, 0] += 0.5 * labels  # ...and, weakly, the similarity
    cold = rng.random(n) < 0.05
    reranker = Reranker.fit(features, labels, cold)
    assert reranker.warm[2] > 1.0 and abs(reranker.warm[1]) < 0.3 and abs(reranker.warm[3]) < 0.3
    assert reranker.cold > 0.0
    scores = reranker.score(features, cold)
    assert np.allclose(scores[cold], features[cold, 0] * reranker.cold + reranker.cold_bias, atol=1e-5)
    assert Reranker.from_json(reranker.to_json()) == reranker
    with pytest.raises(BundleError, match="features"):
        Reranker.from_json({**reranker.to_json(), "features": ["similarity"]})
