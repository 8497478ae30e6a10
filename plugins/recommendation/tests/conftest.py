import sys
from pathlib import Path

import pytest
from verticals.testing import only_plugins

pytest.importorskip("verticals_recommendation")
# Test modules import the data writers in recommendation_testdata.py (importlib mode has no rootdir imports).
sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture(autouse=True, scope="module")
def _only_this_pack():
    with only_plugins("recommendation"):  # tests never load whatever else happens to be installed
        yield
