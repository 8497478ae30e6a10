"""Batch scoring on a local Ray cluster started by the test (skipped when ray[data] is not installed)."""

from __future__ import annotations

import json

import pytest
import verticals
from verticals.errors import DataError

from .conftest import FAST, text_rows, write_csv

ray = pytest.importorskip("ray")
pytest.importorskip("ray.data")
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.distributed


@pytest.fixture(scope="module")
def local_cluster():
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        yield
    finally:
        ray.shutdown()


def test_ray_scores_like_the_local_predictor(local_cluster, tiny_backbone, tmp_path):
    from verticals.scale.ray_scoring import score_file

    train = write_csv(tmp_path / "train.csv", text_rows(6, 0))
    bundle = tmp_path / "bundle"
    verticals.train("text-classification", train, output=bundle, backbone=str(tiny_backbone), overrides=FAST)
    rows = [{"id": i, "text": row["text"]} for i, row in enumerate(text_rows(20, 5))]
    source = tmp_path / "in.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")

    out = tmp_path / "scored"
    assert score_file(bundle, source, out, workers=2, batch_size=16, keep_columns=["id"], blocks=4) == len(rows)
    got = sorted(pq.read_table(out).to_pylist(), key=lambda r: r["id"])
    expected = verticals.load(bundle).predict([r["text"] for r in rows])
    assert [g["id"] for g in got] == [r["id"] for r in rows]
    assert [g["label"] for g in got] == [p.label for p in expected]
    for g, p in zip(got, expected):
        assert g["score"] == pytest.approx(p.score, abs=1e-5)
        assert json.loads(g["scores"]) == pytest.approx(p.scores, abs=1e-5)
    assert not list(tmp_path.glob(".scored.tmp-*"))



def test_bad_record_fails_the_job_with_a_data_error(local_cluster, tiny_backbone, tmp_path):
    from verticals.scale.ray_scoring import score_file

    train = write_csv(tmp_path / "train.csv", text_rows(6, 0))
    bundle = tmp_path / "bundle"
    verticals.train("text-classification", train, output=bundle, backbone=str(tiny_backbone), overrides=FAST)
    source = tmp_path / "in.jsonl"
    source.write_text('{"text": "fine"}\n{"body": "no text field"}\n', encoding="utf-8")
    with pytest.raises(DataError, match="missing column 'text'"):
        score_file(bundle, source, tmp_path / "scored", workers=1)
    assert not (tmp_path / "scored").exists()


def test_in_memory_data_is_scored_like_a_file(local_cluster, tiny_backbone, tmp_path):
    """score_dataset takes what Predictor.predict takes: a pandas DataFrame, a datasets.Dataset, a list of dicts."""
    from verticals.scale.ray_scoring import score_dataset

    pd = pytest.importorskip("pandas")
    train = write_csv(tmp_path / "train.csv", text_rows(6, 0))
    bundle = tmp_path / "bundle"
    predictor = verticals.train("text-classification", train, output=bundle, backbone=str(tiny_backbone),
                                overrides=FAST)
    rows = [{"id": i, "text": row["text"]} for i, row in enumerate(text_rows(4, 5))]
    expected = [p.label for p in predictor.predict(rows)]
    for data in (pd.DataFrame(rows), rows):
        got = score_dataset(data, bundle, workers=1, batch_size=8, keep_columns=["id"]).to_pandas()
        assert [label for _, label in sorted(zip(got["id"], got["label"]))] == expected
    with pytest.raises(TypeError, match="got dict"):
        score_dataset({"text": ["a"]}, bundle)


def test_missing_ray_is_a_config_error(monkeypatch):
    import builtins

    from verticals.errors import ConfigError
    from verticals.scale.ray_scoring import _ray

    real_import = builtins.__import__

    def no_ray(name, *args, **kwargs):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    with pytest.raises(ConfigError, match=r"verticals\[ray\]"):
        _ray()
