import pytest
from verticals.testing import only_plugins

pytest.importorskip("verticals_insurance")


@pytest.fixture(autouse=True, scope="module")
def _only_this_pack():
    with only_plugins("insurance"):  # tests never load whatever else happens to be installed
        yield
