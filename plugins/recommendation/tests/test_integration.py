"""With the real all-MiniLM-L6-v2: a cold item is placed by its text next to the items a user liked."""

from pathlib import Path

import pytest
from recommendation_testdata import GENRES, write_split
from verticals import train
from verticals_recommendation import Recommender


@pytest.mark.integration
def test_cold_item_of_the_liked_genre_ranks_first(tmp_path: Path) -> None:
    data = write_split(tmp_path)
    predictor = train("recommendation.scoring", data["train"], validation=data["validation"],
                      output=tmp_path / "bundle", overrides=[*data["overrides"], "training.batch_size=8"])
    rec = Recommender(predictor)
    cold = ["28", "29", "30", "31"]  # one never-rated item per genre, in GENRES order
    for user in ("u0", "u1", "u2", "u3"):  # user uN likes GENRES[N % 4]
        scores = rec.score(user, cold)
        assert max(scores, key=scores.get) == cold[int(user[1:]) % len(GENRES)], (user, scores)
    assert predictor.info.metrics["validation"]["hr@10"] > 0.5
