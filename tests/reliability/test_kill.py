"""kill -9 at several points of training and bundle writing, then `--resume` or a fresh run: both succeed,
no half bundle is ever loadable, leftovers are cleaned; two trainings to one output: one proceeds, the
other exits 2 at once (issue 15, items 5 and 11).

The killed run is a subprocess; a small driver kills it at an exact point (``KILL_AT``) by patching the
function that runs there, so each case hits its moment every time."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import verticals
from verticals.bundles.bundle import digest
from verticals.cli import main
from verticals.errors import BundleError
from verticals.testing import only_plugins

from ..conftest import text_rows, write_csv

pytestmark = pytest.mark.reliability

DRIVER = r'''
import os, signal, sys, time

def die(*_args, **_kwargs):
    os.kill(os.getpid(), signal.SIGKILL)

point = os.environ["KILL_AT"]
if point == "checkpoint-save":  # the 2nd checkpoint has weights and optimizer, not yet trainer_state.json
    from transformers import Trainer
    save_rng = Trainer._save_rng_state
    def rng_then_maybe_die(self, output_dir):
        if self.state.epoch and self.state.epoch > 1:
            die()
        return save_rng(self, output_dir)
    Trainer._save_rng_state = rng_then_maybe_die
elif point == "after-checkpoint":  # wait, with one complete checkpoint, for the test's kill -9
    from transformers import Trainer
    save = Trainer._save_checkpoint
    def save_then_wait(self, *args, **kwargs):
        save(self, *args, **kwargs)
        time.sleep(600)
    Trainer._save_checkpoint = save_then_wait
elif point == "bundle-write":  # model files and bundle.json are in the temporary folder, no manifest yet
    import verticals.bundles.bundle
    verticals.bundles.bundle.write_manifest = die
elif point == "swap":  # the old bundle was renamed away, the new one not yet renamed into place
    import verticals.bundles.bundle
    replace = os.replace
    def replace_then_maybe_die(src, dst):
        replace(src, dst)
        if ".old-" in os.path.basename(str(dst)):
            die()
    verticals.bundles.bundle.os = type(sys)("os_patched")
    verticals.bundles.bundle.os.__dict__.update(os.__dict__)
    verticals.bundles.bundle.os.replace = replace_then_maybe_die
elif point == "hold-claim":  # the run that takes the output's lock holds it until the test says RELEASE
    from contextlib import contextmanager
    import verticals.api
    claim = verticals.api.claim
    @contextmanager
    def claim_and_hold(path, what="writing to"):
        with claim(path, what):
            deadline = time.monotonic() + 300
            while what == "training into" and not os.path.exists(os.environ["RELEASE"]):
                if time.monotonic() > deadline:
                    sys.exit("RELEASE never came")
                time.sleep(0.05)
            yield
    verticals.api.claim = claim_and_hold
from verticals.cli import main
sys.exit(main(sys.argv[1:]))
'''


@pytest.fixture
def data(tmp_path: Path) -> dict[str, Path]:
    return {"train": write_csv(tmp_path / "train.csv", text_rows(10, 0)),
            "validation": write_csv(tmp_path / "validation.csv", text_rows(2, 1))}


def train_args(data: dict[str, Path], backbone: Path, output: Path, *extra: str) -> list[str]:
    sets = ["training.batch_size=8", "training.learning_rate=0.001", "training.num_threads=1", "training.epochs=2"]
    return ["train", "text-classification", "--train", str(data["train"]), "--validation", str(data["validation"]),
            "--output", str(output), "--backbone", str(backbone), *[x for s in sets for x in ("--set", s)], *extra]


def start(args: list[str], kill_at: str, tmp_path: Path) -> subprocess.Popen[str]:
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    env = {**os.environ, "VERTICALS_PLUGINS": "", "HF_HUB_OFFLINE": "1", "KILL_AT": kill_at}
    return subprocess.Popen([sys.executable, str(driver), *args], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def killed(process: subprocess.Popen[str]) -> None:
    _, err = process.communicate(timeout=300)
    assert process.returncode == -signal.SIGKILL, f"expected kill -9, got {process.returncode}: {err[-2000:]}"


def not_loadable(output: Path) -> None:
    with pytest.raises(BundleError):
        verticals.load(output)
    for half in output.parent.glob(f".{output.name}.tmp-*"):
        with pytest.raises(BundleError):
            verticals.load(half)


def cli(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    capsys.readouterr()
    with only_plugins():
        code = main(args)
    assert code == 0, capsys.readouterr().err[-3000:]


def clean(output: Path) -> None:
    """One verified bundle; no temporary, old, lock or checkpoint folder left beside it."""
    verticals.load(output)
    assert sorted(p.name for p in output.parent.iterdir() if output.name in p.name) == [output.name]


@pytest.mark.parametrize("then", ["resume", "fresh"])
def test_kill_while_saving_a_checkpoint(then, tmp_path, tiny_backbone, data, capsys):
    out = tmp_path / "model"
    killed(start(train_args(data, tiny_backbone, out), "checkpoint-save", tmp_path))
    not_loadable(out)
    steps = sorted(p.name for p in (tmp_path / "model.checkpoints").glob("checkpoint-*"))
    assert len(steps) == 2 and not (tmp_path / "model.checkpoints" / steps[-1] / "trainer_state.json").exists()
    cli(train_args(data, tiny_backbone, out, *(["--resume"] if then == "resume" else [])), capsys)
    clean(out)


def test_kill_during_training_after_a_checkpoint(tmp_path, tiny_backbone, data, capsys):
    out = tmp_path / "model"
    process = start(train_args(data, tiny_backbone, out), "after-checkpoint", tmp_path)
    deadline = time.monotonic() + 300
    while not list((tmp_path / "model.checkpoints").glob("checkpoint-*/trainer_state.json")):
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()[1][-2000:]
        time.sleep(0.2)
    process.send_signal(signal.SIGKILL)
    killed(process)
    not_loadable(out)
    cli(train_args(data, tiny_backbone, out, "--resume"), capsys)
    clean(out)
    cli(train_args(data, tiny_backbone, out, "--overwrite"), capsys)  # and a fresh run over it
    clean(out)


def test_kill_while_writing_the_bundle(tmp_path, tiny_backbone, data, capsys):
    out = tmp_path / "model"
    killed(start(train_args(data, tiny_backbone, out), "bundle-write", tmp_path))
    halves = list(tmp_path.glob(".model.tmp-*"))
    assert len(halves) == 1 and (halves[0] / "bundle.json").exists()
    not_loadable(out)
    cli(train_args(data, tiny_backbone, out), capsys)
    clean(out)


def test_kill_while_replacing_a_bundle_loses_neither(tmp_path, tiny_backbone, data, capsys):
    out = tmp_path / "model"
    cli(train_args(data, tiny_backbone, out), capsys)
    before = digest(out)
    killed(start(train_args(data, tiny_backbone, out, "--overwrite", "--set", "training.seed=7"), "swap", tmp_path))
    assert not out.exists() and len(list(tmp_path.glob(".model.old-*"))) == 1
    # The next run on that path puts the previous bundle back before anything else: nothing is lost.
    capsys.readouterr()
    with only_plugins():
        assert main(train_args(data, tiny_backbone, out)) == 2
    assert "already exists" in capsys.readouterr().err
    assert digest(out) == before and verticals.load(out)
    assert not list(tmp_path.glob(".model.*"))  # the new half was removed (its checkpoints wait for the next run)


def test_two_trainings_to_one_output(tmp_path, tiny_backbone, data):
    """Started together, with --overwrite: exactly one trains; the other exits 2 before reading any data.
    The one holding the lock waits (driver point hold-claim) until the other has exited: however far apart
    the two start on a loaded machine, the first cannot finish before the second tries."""
    out, release = tmp_path / "model", tmp_path / "release"
    env = {**os.environ, "VERTICALS_PLUGINS": "", "HF_HUB_OFFLINE": "1", "KILL_AT": "hold-claim",
           "RELEASE": str(release)}
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    args = [sys.executable, str(driver), *train_args(data, tiny_backbone, out, "--overwrite")]
    began = time.monotonic()
    processes = [subprocess.Popen(args, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                 for _ in range(2)]
    ended: dict[int, float] = {}
    deadline = began + 600
    while len(ended) < 2 and time.monotonic() < deadline:
        for i, p in enumerate(processes):
            if i not in ended and p.poll() is not None:
                ended[i] = time.monotonic() - began
                release.touch()
        time.sleep(0.05)
    errors = [p.communicate(timeout=60)[1] for p in processes]
    codes = [p.returncode for p in processes]
    assert sorted(codes) == [0, 2], errors
    loser, winner = (0, 1) if codes[0] == 2 else (1, 0)
    assert "another Verticals process is training into" in errors[loser], errors[loser]
    assert ended[loser] < ended[winner]  # it did not train first and fail after
    clean(out)


def test_two_threads_writing_one_output_are_refused_like_two_processes(tmp_path):
    """Found reviewing CI stop 47: the lock was re-entrant per process, so a second thread (an integration
    training from two request handlers) shared the first's output and checkpoints; re-entry is per thread."""
    import threading

    from verticals.bundles.outputs import claim
    from verticals.errors import ConfigError

    out = tmp_path / "model"
    holding, done = threading.Event(), threading.Event()

    def first() -> None:
        with claim(out, "training into"):
            with claim(out, "training into"):  # its own nested claim (train, then the bundle write) re-enters
                holding.set()
                done.wait(30)

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert holding.wait(30)
        with pytest.raises(ConfigError, match="another Verticals process is training into"):
            with claim(out, "training into"):
                pass
    finally:
        done.set()
        thread.join(30)
    with claim(out, "training into"):  # released: free again
        pass
    assert not list(tmp_path.glob(".model.lock"))


FILE_DRIVER = r'''
import os, signal, sys
from verticals.bundles.bundle import atomic_file
path = sys.argv[1]
with atomic_file(path, kind="card") as handle:
    handle.write("first\n")
replace = os.replace
def replace_then_die(src, dst):
    replace(src, dst)
    if str(dst) == path:
        os.kill(os.getpid(), signal.SIGKILL)
os.replace = replace_then_die
with atomic_file(path, kind="card", overwrite=True) as handle:
    handle.write("second\n")
'''


def test_kill_right_after_a_file_output_is_renamed_into_place(tmp_path):
    """Found reviewing CI stop 47: the file was renamed into place before its marker was rewritten, so a kill
    in between left the new file beside the old file's marker, and every later --overwrite refused it as
    changed by someone else. The marker now vouches for both while the rename is under way."""
    from verticals.bundles.bundle import atomic_file

    card = tmp_path / "card.md"
    process = subprocess.run([sys.executable, "-c", FILE_DRIVER, str(card)], capture_output=True, text=True,
                             timeout=120)
    assert process.returncode == -signal.SIGKILL, process.stderr
    assert card.read_text() == "second\n"
    with atomic_file(card, kind="card", overwrite=True) as handle:
        handle.write("third\n")
    assert card.read_text() == "third\n"
    card.write_text("edited by hand\n")  # and a file changed since is still refused
    with pytest.raises(verticals.errors.ConfigError, match="changed after Verticals wrote it"):
        with atomic_file(card, kind="card", overwrite=True) as handle:
            handle.write("fourth\n")


def test_a_killed_marker_write_leaves_nothing_for_good(tmp_path):
    """Second read: the marker's temporary file was named by pid, a pattern no later run removes."""
    from verticals.bundles.bundle import atomic_file

    card = tmp_path / "card.md"
    left = tmp_path / "..card.md.verticals-output.json.tmp-0123abcd"  # what a kill inside write_file_marker leaves
    left.write_text("{")
    mine = tmp_path / "..card.md.verticals-output.json.tmp-notes"  # not that naming: not ours, kept
    mine.write_text("keep")
    with atomic_file(card, kind="card") as handle:
        handle.write("first\n")
    assert not left.exists() and mine.read_text() == "keep"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([".card.md.verticals-output.json", "card.md",
                                                                  mine.name])
