"""Bad input is a DataError naming file, line and field (CLI: one line, exit 2)."""

from pathlib import Path

import pytest
from recommendation_testdata import COLUMNS, interactions, write_catalogue, write_interactions
from verticals import ConfigError, DataError, build_task, load, train
from verticals.cli import main as cli
from verticals.testing import make_tiny_backbone


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny")


def _train(directory: Path, rows, tiny: Path, catalogue: Path | None = None, extra=()):  # type: ignore[no-untyped-def]
    catalogue = catalogue or write_catalogue(directory / "books.csv")
    path = write_interactions(directory / "train.csv", rows)
    return train("recommendation.scoring", path, output=directory / "bundle", backbone=str(tiny),
                 overrides=[*COLUMNS, f"data.items={catalogue}", "training.epochs=1", "training.batch_size=8",
                            *extra])


def test_item_missing_from_catalogue(tmp_path: Path, tiny: Path) -> None:
    rows = interactions()
    rows.insert(5, ("u0", "999", 5, 0))
    with pytest.raises(DataError) as err:
        _train(tmp_path, rows, tiny)
    assert err.value.line == 7 and err.value.field == "book_id" and "'999'" in str(err.value)
    assert "train.csv" in str(err.value)


def test_empty_catalogue_text(tmp_path: Path, tiny: Path) -> None:
    catalogue = write_catalogue(tmp_path / "books.csv", empty_text_for="3")
    with pytest.raises(DataError) as err:
        _train(tmp_path, interactions(), tiny, catalogue)
    assert err.value.line == 5 and err.value.field == "title" and "no text" in str(err.value)


def test_no_catalogue_configured(tmp_path: Path) -> None:
    path = write_interactions(tmp_path / "train.csv", interactions())
    task, _, _ = build_task("recommendation.scoring", overrides=COLUMNS)
    with pytest.raises(DataError, match="data.items"):
        task.prepare(task.read(path))


def test_no_positive_interactions(tmp_path: Path, tiny: Path) -> None:
    rows = [(u, i, 2, t) for u, i, _, t in interactions()]
    with pytest.raises(DataError, match="no positive interactions"):
        _train(tmp_path, rows, tiny)


def test_user_with_no_positives(tmp_path: Path, tiny: Path) -> None:
    rows = interactions() + [("grumpy", "1", 1, 500), ("grumpy", "2", 2, 501)]
    _train(tmp_path, rows, tiny, extra=["data.validation_fraction=0.05"])
    predictor = load(tmp_path / "bundle")
    with pytest.raises(DataError) as err:
        predictor.predict([{"user": "grumpy"}])
    assert "has no positive interactions" in str(err.value) and err.value.field == "user_id"
    with pytest.raises(DataError, match="is unknown"):
        predictor.predict(["nobody"])
    # the same user can still be served from an explicit history
    assert predictor.predict([{"user": "grumpy", "history": ["4", "8"]}])[0].items


def test_missing_item_column(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("user_id,rating\nu1,5\n", encoding="utf-8")
    task, _, _ = build_task("recommendation.scoring", overrides=COLUMNS)
    with pytest.raises(DataError) as err:
        task.read(path)
    assert err.value.line == 2 and "book_id" in str(err.value)


def test_unsupported_strategy(tmp_path: Path, tiny: Path) -> None:
    with pytest.raises(ConfigError, match="strategy"):
        _train(tmp_path, interactions(), tiny, extra=["training.strategy=head-only"])


def test_cli_bad_input_is_one_line(tmp_path: Path, tiny: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = interactions()
    rows.append(("u1", "404", 4, 999))
    train_path = write_interactions(tmp_path / "train.csv", rows)
    catalogue = write_catalogue(tmp_path / "books.csv")
    sets = [a for o in [*COLUMNS, f"data.items={catalogue}"] for a in ("--set", o)]
    code = cli(["train", "recommendation.scoring", "--train", str(train_path), "--output", str(tmp_path / "b"),
                "--backbone", str(tiny), *sets])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "'404'" in err and "book_id" in err
