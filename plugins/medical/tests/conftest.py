import pytest
from verticals.testing import make_tiny_backbone, only_plugins

pytest.importorskip("verticals_medical")


@pytest.fixture(autouse=True, scope="module")
def _only_this_pack():
    with only_plugins("medical"):  # tests never load whatever else happens to be installed
        yield


@pytest.fixture(scope="session")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory):
    return make_tiny_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert")
