"""``verticals new-pack``: a scaffolded pack (and examples/partner_pack) is discovered and trains.

Instead of pip-installing into the shared environment, each test makes the pack discoverable the way an
install would: its ``src`` on ``sys.path`` plus a ``*.dist-info/entry_points.txt`` that
``importlib.metadata`` reads.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import verticals
from verticals import ConfigError
from verticals.authoring.scaffold import scaffold_pack
from verticals.cli import main
from verticals.testing import make_tiny_backbone, only_plugins

PARTNER = Path(__file__).resolve().parents[1] / "examples" / "partner_pack"


def _discoverable(pack_dir: Path, name: str, site: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    dist = site / f"verticals_{name}-0.1.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text(f"Metadata-Version: 2.1\nName: verticals-{name}\nVersion: 0.1.0\n")
    (dist / "entry_points.txt").write_text(f"[verticals]\n{name} = verticals_{name}.plugin\n")
    monkeypatch.syspath_prepend(str(pack_dir / "src"))
    monkeypatch.syspath_prepend(str(site))
    for module in [m for m in sys.modules if m.startswith(f"verticals_{name}")]:
        monkeypatch.delitem(sys.modules, module)


@pytest.fixture(scope="module")
def tiny_backbone(tmp_path_factory: pytest.TempPathFactory) -> str:
    return str(make_tiny_backbone(tmp_path_factory.mktemp("bb") / "tiny"))


def test_scaffold_is_discovered_and_trains(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_backbone: str,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    with only_plugins():
        assert main(["new-pack", "legal_docs", "--output", str(tmp_path / "pack"), "--task", "clause",
                     "--labels", "liability,termination", "--labels", "payment"]) == 0
    pack = tmp_path / "pack"
    pyproject = (pack / "pyproject.toml").read_text()
    assert 'name = "verticals-legal-docs"' in pyproject
    assert '[project.entry-points.verticals]\nlegal_docs = "verticals_legal_docs.plugin"' in pyproject
    assert (pack / "tests" / "test_conformance.py").read_text().count("PackConformance") == 2
    compile((pack / "src" / "verticals_legal_docs" / "plugin.py").read_text(), "plugin.py", "exec")

    _discoverable(pack, "legal_docs", tmp_path / "site", monkeypatch)
    with only_plugins("legal_docs"):
        capsys.readouterr()
        assert main(["packs", "--json"]) == 0
        listed = json.loads(capsys.readouterr().out)["packs"]
        assert [p["name"] for p in listed] == ["legal_docs"]
        task = listed[0]["tasks"][0]
        assert task["name"] == "legal_docs.clause" and task["labels"] == ["liability", "termination", "payment"]
        predictor = verticals.train("legal_docs.clause", pack / "data" / "train.jsonl",
                                    validation=pack / "data" / "validation.jsonl", output=tmp_path / "bundle",
                                    backbone=tiny_backbone, overrides=["training.epochs=1"])
        assert predictor.info.pack == "legal_docs" and predictor.info.pack_version == "0.1.0"
        assert predictor.info.config["training"]["warmup_ratio"] == 0.1  # the pack's defaults applied
        assert set(predictor.info.metrics["validation"]) >= {"accuracy", "macro_f1"}
        assert verticals.load(tmp_path / "bundle").predict(["a payment clause"])[0].label in predictor.labels


def test_token_scaffold_declares_bio_labels(tmp_path: Path) -> None:
    with only_plugins():
        scaffold_pack("geo", tmp_path / "geo", task="places", task_type="token-classification", labels=["City"])
    plugin = (tmp_path / "geo" / "src" / "verticals_geo" / "plugin.py").read_text()
    assert 'labels=["O", "B-City", "I-City"]' in plugin and 'primary_metric="f1"' in plugin
    first = json.loads((tmp_path / "geo" / "data" / "train.jsonl").read_text().splitlines()[0])
    assert len(first["tokens"]) == len(first["tags"])


@pytest.mark.parametrize("name, labels, message", [
    ("Bad-Name", ["a", "b"], "lowercase"),
    ("ok", ["only_one"], "at least 2"),
])
def test_scaffold_refuses_bad_input(tmp_path: Path, name: str, labels: list[str], message: str) -> None:
    with only_plugins(), pytest.raises(ConfigError, match=message):
        scaffold_pack(name, tmp_path / "p", labels=labels)


def test_scaffold_refuses_non_empty_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "notes.txt").write_text("keep")
    with only_plugins():
        assert main(["new-pack", "x", "--output", str(tmp_path / "p"), "--labels", "a,b"]) == 2
    assert "not empty" in capsys.readouterr().err
    assert [p.name for p in (tmp_path / "p").iterdir()] == ["notes.txt"]


def test_partner_pack_trains_on_its_data(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, tiny_backbone: str) -> None:
    _discoverable(PARTNER, "insurance", tmp_path / "site", monkeypatch)
    with only_plugins("insurance"):
        spec, pack = verticals.get_catalog().task("insurance.claim_triage")
        assert pack == "insurance" and len(spec.labels) == 4
        predictor = verticals.train("insurance.claim_triage", PARTNER / "data" / "train.jsonl",
                                    validation=PARTNER / "data" / "validation.jsonl",
                                    test=PARTNER / "data" / "test.jsonl",
                                    output=tmp_path / "bundle", backbone=tiny_backbone,
                                    overrides=["training.epochs=1"])
        assert predictor.info.data["train"]["records"] == 40 and predictor.info.data["test"]["records"] == 12
        assert predictor.labels == spec.labels
        prediction = predictor.predict_one("Someone stole my car from the street")
        assert prediction.label in spec.labels
