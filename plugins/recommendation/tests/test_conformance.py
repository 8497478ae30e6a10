from pathlib import Path
from typing import Any

from recommendation_testdata import write_split
from verticals.conformance import PackConformance


class TestRecommendationPack(PackConformance):
    pack = "recommendation"

    def make_data(self, task: str, directory: Path) -> dict[str, Any]:
        return write_split(directory)
