"""Distributions ready for an index: a LICENSE and complete metadata in every distribution, packs pinned to
a compatible core range, and (marker ``wheels``) the wheels built by ``scripts/build_dists.sh`` installed
into a fresh virtual environment and used from outside the repository: no editable install, no source
tree on the path."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import sysconfig
import tarfile
from pathlib import Path

import pytest
import verticals
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version

tomllib = pytest.importorskip("tomllib")

ROOT = Path(__file__).resolve().parents[1]
DISTS = [ROOT] + sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml"))
PACKS = sorted((ROOT / "plugins").glob("*/pyproject.toml")) + [ROOT / "examples" / "partner_pack" / "pyproject.toml"]
APACHE_SECTIONS = ["1. Definitions.", "2. Grant of Copyright License.", "3. Grant of Patent License.",
                   "4. Redistribution.", "5. Submission of Contributions.", "6. Trademarks.",
                   "7. Disclaimer of Warranty.", "8. Limitation of Liability.",
                   "9. Accepting Warranty or Additional Liability.", "END OF TERMS AND CONDITIONS",
                   "APPENDIX: How to apply the Apache License to your work."]


def _name(path: Path) -> str:
    return "verticals" if path in (ROOT, ROOT / "pyproject.toml") else path.parent.name if path.is_file() else path.name


def _project(pyproject: Path) -> dict:
    return tomllib.loads(pyproject.read_text(encoding="utf-8"))["project"]


@pytest.mark.parametrize("directory", DISTS, ids=_name)
def test_every_distribution_has_the_license_and_complete_metadata(directory: Path) -> None:
    project = _project(directory / "pyproject.toml")
    assert project.get("license") == "Apache-2.0" and project.get("license-files") == ["LICENSE"]
    text = (directory / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License\n" in text and "Version 2.0, January 2004" in text
    assert all(section in text for section in APACHE_SECTIONS), "not the full Apache-2.0 text"
    assert text == (ROOT / "LICENSE").read_text(encoding="utf-8")
    for key in ("description", "readme", "requires-python", "authors", "classifiers"):
        assert project.get(key), f"{directory / 'pyproject.toml'}: no {key}"
    assert (directory / project["readme"]).is_file()
    assert not [c for c in project["classifiers"] if c.startswith("License ::")], "PEP 639: the license field says it"


def _compatible(specifier: SpecifierSet) -> None:
    version = Version(verticals.__version__)
    next_minor = f"{version.major}.{version.minor + 1}.0"
    assert specifier.contains(verticals.__version__), f"{specifier} excludes this core ({verticals.__version__})"
    assert not specifier.contains(next_minor), f"{specifier} admits {next_minor}, whose hooks may differ"
    assert not specifier.contains("0.0.1"), f"{specifier} admits cores older than the one it was written for"


@pytest.mark.parametrize("pyproject", PACKS, ids=_name)
def test_packs_pin_a_compatible_core_range(pyproject: Path) -> None:
    core = [Requirement(r) for r in _project(pyproject)["dependencies"] if Requirement(r).name == "verticals"]
    assert len(core) == 1
    _compatible(core[0].specifier)


def test_scaffolded_pack_pins_a_compatible_core_range(tmp_path: Path) -> None:
    from verticals.authoring.scaffold import scaffold_pack

    scaffold_pack("pinned", tmp_path / "pack", labels=["a", "b"])
    core = [Requirement(r) for r in _project(tmp_path / "pack" / "pyproject.toml")["dependencies"]]
    assert [r.name for r in core] == ["verticals"]
    _compatible(core[0].specifier)


# ---- built, installed and used outside the repository ----------------------------------------------
def _ours(name: str) -> bool:
    """Files of this repository's distributions in a site-packages (installed, or editable finders)."""
    lowered = name.lower()
    return lowered.startswith(("verticals", "__editable__", "_verticals")) or lowered.endswith(".pth")


def _run(args: list, cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run([str(a) for a in args], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, f"{args[:3]} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done.stdout


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Build every distribution, then install the wheels into a new venv. Third-party dependencies (torch
    and friends, ~2 GB) are not reinstalled: a path file points the venv at a copy-free view of this
    environment's site-packages without anything of ours, and pip resolves our wheels' declared
    dependencies against it (``--no-index``: nothing is downloaded)."""
    root = tmp_path_factory.mktemp("wheels")
    dist = root / "dist"
    _run(["bash", ROOT / "scripts" / "build_dists.sh", dist], cwd=root, env=os.environ | {"PYTHON": sys.executable})
    venv = root / "venv"
    # --without-pip: pip (like setuptools, which torch requires >= 77) comes from the shared view below, so no
    # older copy bundled with the venv shadows it
    _run([sys.executable, "-m", "venv", "--without-pip", venv], cwd=root)
    python = venv / "bin" / "python"
    site = Path(_run([python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).strip())
    third_party = root / "third-party"
    third_party.mkdir()
    for entry in Path(sysconfig.get_paths()["purelib"]).iterdir():
        if not _ours(entry.name):
            (third_party / entry.name).symlink_to(entry)
    (site / "third_party_dependencies.pth").write_text(f"{third_party}\n", encoding="utf-8")
    names = ["verticals", "verticals-customer-service", "verticals-finance", "verticals-medical",
             "verticals-recommendation"]
    _run([python, "-m", "pip", "install", "--no-index", "--find-links", dist, "--disable-pip-version-check",
          "-q", *names], cwd=root)
    work = root / "work"  # outside the repository: nothing of it is importable from here
    work.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VERTICALS_PLUGINS")}
    env |= {"HF_HUB_OFFLINE": "1", "PATH": f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"}
    return {"dist": dist, "venv": venv, "python": python, "site": site, "work": work, "env": env}  # type: ignore[dict-item]


@pytest.mark.wheels
def test_sdists_carry_license_and_their_tests(installed: dict) -> None:
    sdists = sorted(installed["dist"].glob("*.tar.gz"))
    assert len(sdists) == len(DISTS) and len(list(installed["dist"].glob("*.whl"))) == len(DISTS)
    for sdist in sdists:
        with tarfile.open(sdist) as archive:
            members = {m.split("/", 1)[1] for m in archive.getnames() if "/" in m}
        assert "LICENSE" in members, sdist.name
        source = ROOT if sdist.name.startswith("verticals-0") else ROOT / "plugins" / sdist.name.split("-")[0][
            len("verticals_"):]
        wanted = {p.relative_to(source).as_posix() for p in (source / "tests").rglob("*.py")
                  if "__pycache__" not in p.parts}
        assert wanted and wanted <= members, f"{sdist.name} lacks {sorted(wanted - members)}"


@pytest.mark.wheels
def test_wheels_install_into_a_fresh_venv_and_train_predict_and_list_packs(installed: dict) -> None:
    python, work, env, site = installed["python"], installed["work"], installed["env"], installed["site"]
    files = json.loads(_run([python, "-c", "import json, verticals, verticals_finance, verticals_medical; "
                                           "print(json.dumps([verticals.__file__, verticals_finance.__file__, "
                                           "verticals_medical.__file__]))"], cwd=work, env=env))
    for file in files:
        assert Path(file).is_relative_to(site) and not Path(file).is_relative_to(ROOT), file
    listed = json.loads(_run(["verticals", "packs", "--json"], cwd=work, env=env))
    assert sorted(p["name"] for p in listed["packs"]) == ["customer_service", "finance", "medical", "recommendation"]

    _run([python, "-c", "from verticals.testing import make_tiny_backbone; make_tiny_backbone('tiny')"], cwd=work,
         env=env)
    rows = [{"text": f"{w} question {i}", "label": label} for i in range(8)
            for label, w in (("billing", "invoice"), ("shipping", "parcel"))]
    with open(work / "train.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows(rows)
    _run(["verticals", "train", "text-classification", "--train", "train.csv", "--output", "bundle",
          "--backbone", "tiny", "--set", "training.epochs=1", "--json"], cwd=work, env=env)
    predictions = json.loads(_run(["verticals", "predict", "bundle", "where is my parcel", "--json"], cwd=work,
                                  env=env))
    assert predictions[0]["label"] in {"billing", "shipping"}

    fraud = [{"amount": 900 + i if i % 4 == 0 else 40 + i, "v1": 2.0 if i % 4 == 0 else -0.5,
              "is_fraud": int(i % 4 == 0)} for i in range(48)]
    with open(work / "fraud.csv", "w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["amount", "v1", "is_fraud"])
        writer.writeheader()
        writer.writerows(fraud)
    _run(["verticals", "train", "finance.fraud", "--train", "fraud.csv", "--output", "fraud-bundle",
          "--set", "data.label_column=is_fraud", "--set", 'data.numeric_columns=["amount","v1"]',
          "--set", "task.ensemble=1", "--set", "training.epochs=3"], cwd=work, env=env)
    out = _run(["verticals", "predict", "fraud-bundle", "--field", "amount=950", "--field", "v1=2.1", "--json"],
               cwd=work, env=env)
    assert set(json.loads(out)[0]) == {"label", "score", "threshold"}


@pytest.mark.wheels
@pytest.mark.slow  # each pack's whole suite: ~1-4 min per pack on 2 cores
@pytest.mark.parametrize("pack", sorted(p.parent.name for p in (ROOT / "plugins").glob("*/pyproject.toml")))
def test_pack_sdists_pass_their_own_tests(installed: dict, pack: str, tmp_path: Path) -> None:
    """Unpacked outside the repository, each pack's sdist runs its own tests against the installed wheels."""
    (sdist,) = installed["dist"].glob(f"verticals_{pack}-*.tar.gz")
    with tarfile.open(sdist) as archive:
        archive.extractall(tmp_path, filter="data")
    (source,) = tmp_path.iterdir()
    out = _run([installed["python"], "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=source,
               env=installed["env"])
    assert " passed" in out and "failed" not in out
