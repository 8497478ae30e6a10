"""The page of ``verticals serve`` at ``/``: served with its headers, and driven in a real headless Chromium
(Debian's ``chromium`` + ``chromium-driver``, through selenium) against a real ``verticals serve``: a query
returns a label, a correction lands in the feedback database."""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")

import verticals  # noqa: E402
from verticals.errors import DataError  # noqa: E402
from verticals.testing import only_plugins  # noqa: E402

CHROMIUM, CHROMEDRIVER = Path("/usr/bin/chromium"), Path("/usr/bin/chromedriver")
KEY = "page-test-key"
WORDS = {"pos": ["great", "good", "love", "excellent"], "neg": ["bad", "awful", "hate", "poor"]}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory: pytest.TempPathFactory, tiny_backbone: Path) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("page")
    backbone = str(tiny_backbone)
    text = root / "tc.jsonl"
    text.write_text("".join(json.dumps({"text": f"{WORDS[lab][i % 4]} {WORDS[lab][(i + 1) % 4]} film", "label": lab})
                            + "\n" for i in range(24) for lab in WORDS), encoding="utf-8")
    tokens = root / "ner.jsonl"
    tokens.write_text("".join(json.dumps(r) + "\n" for r in [
        {"tokens": ["John", "lives", "in", "Paris"], "tags": ["B-PER", "O", "O", "B-LOC"]},
        {"tokens": ["Mary", "visited", "Berlin"], "tags": ["B-PER", "O", "B-LOC"]}] * 10), encoding="utf-8")
    with only_plugins():
        verticals.train("text-classification", text, output=root / "sentiment", backbone=backbone,
                        overrides=["training.epochs=1"])
        verticals.train("token-classification", tokens, output=root / "ner", backbone=backbone,
                        overrides=["training.epochs=1"])
    return {"sentiment": root / "sentiment", "ner": root / "ner"}


# ---- the page's route, in process ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def client(bundles: dict[str, Path]):  # type: ignore[no-untyped-def]
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    with only_plugins():
        return TestClient(create_app([bundles["sentiment"], bundles["ner"]], engine="torch", api_key=KEY))


def test_page_and_assets_are_served_without_key_with_a_strict_policy(client) -> None:  # type: ignore[no-untyped-def]
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert '<meta name="viewport"' in page.text and 'src="page/page.js"' in page.text
    policy = page.headers["content-security-policy"]
    assert "script-src 'self'" in policy and "unsafe-inline" not in policy and "connect-src 'self'" in policy
    for name, kind in (("page.js", "text/javascript"), ("page.css", "text/css")):
        asset = client.get(f"/page/{name}")
        assert asset.status_code == 200 and asset.headers["content-type"].startswith(kind)
        assert "http://" not in asset.text and "https://" not in asset.text  # nothing from a CDN
    assert client.get("/v1/models").status_code == 401  # the data behind the page still needs the key


def test_model_info_tells_the_page_its_input(client) -> None:  # type: ignore[no-untyped-def]
    models = {m["name"]: m for m in client.get("/v1/models", headers={"X-API-Key": KEY}).json()}
    assert models["sentiment"]["text_input"] is True and list(models["sentiment"]["example"]) == ["text"]
    assert models["sentiment"]["feedback_labels"] == ["neg", "pos"]
    assert models["ner"]["text_input"] is True and "B-LOC" in models["ner"]["feedback_labels"]


def test_no_page_flag_leaves_the_root_unserved(bundles: dict[str, Path]) -> None:
    from fastapi.testclient import TestClient
    from verticals.delivery.serve import create_app

    with only_plugins():
        bare = TestClient(create_app([bundles["sentiment"]], engine="torch", page=False))
    assert bare.get("/").status_code == 404 and bare.get("/page/page.js").status_code == 404
    assert bare.get("/health").status_code == 200


def test_missing_page_files_fail_at_start_with_the_fix(bundles: dict[str, Path], monkeypatch) -> None:  # type: ignore[no-untyped-def]
    from verticals.delivery import page
    from verticals.delivery.serve import create_app
    from verticals.errors import ConfigError

    def lost(name: str) -> bytes:
        raise FileNotFoundError(2, "No such file or directory", name)

    monkeypatch.setattr(page, "_read", lost)
    with only_plugins(), pytest.raises(ConfigError, match="page=False"):
        create_app([bundles["sentiment"]], engine="torch")


def test_page_files_are_declared_package_data() -> None:
    """A wheel carries the page only if pyproject's package-data names its files."""
    import fnmatch

    tomllib = pytest.importorskip("tomllib")
    root = Path(__file__).resolve().parents[1]
    patterns = tomllib.loads((root / "pyproject.toml").read_text(encoding="utf-8"))["tool"]["setuptools"][
        "package-data"]["verticals"]
    static = root / "sdk" / "verticals" / "delivery" / "static"
    files = [p.relative_to(static.parents[1]).as_posix() for p in static.iterdir()]
    assert {"delivery/static/index.html", "delivery/static/page.js", "delivery/static/page.css"} <= set(files)
    assert all(any(fnmatch.fnmatch(f, pattern) for pattern in patterns) for f in files), (files, patterns)


def test_page_input_is_a_form_when_a_text_is_not_a_record() -> None:
    from verticals.delivery.page import page_input

    class Tabular:  # a task whose records need declared columns, like finance.fraud
        def example_record(self) -> dict[str, object]:
            return {"amount": 12.5, "merchant": "corner shop"}

        def record_from_text(self, text: str) -> dict[str, str]:
            return {"text": text}

        def as_record(self, item: object) -> object:
            raise DataError("missing declared column 'amount'", field="amount")

    class UserAndCount(Tabular):  # a text is a valid record (a user id), but the example has two fields
        def example_record(self) -> dict[str, object]:
            return {"user": "u0", "k": 10}

        def as_record(self, item: object) -> object:
            return item

    assert page_input(Tabular()) == ({"amount": 12.5, "merchant": "corner shop"}, False)
    assert page_input(UserAndCount()) == ({"user": "u0", "k": 10}, False)


# ---- the page in a real browser against a real server ----------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_server(bundles: list[Path], *args: str) -> tuple[subprocess.Popen, str]:
    port = free_port()
    env = {**os.environ, "VERTICALS_PLUGINS": "", "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen([sys.executable, "-m", "verticals", "serve", *map(str, bundles), "--port", str(port),
                                "--workers", "1", *args], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"verticals serve exited: {process.stderr.read().decode()[-2000:]}")  # type: ignore
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return process, url
        except httpx.HTTPError:
            time.sleep(0.1)
    process.kill()
    raise AssertionError("verticals serve did not answer /health within 60 s")


def stop(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(15)
    except subprocess.TimeoutExpired:
        process.kill()


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("no browser: /usr/bin/chromium or /usr/bin/chromedriver is absent "
                    "(apt-get install -y chromium chromium-driver)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", f"--user-data-dir={tmp_path_factory.mktemp('chr')}",
                 "--window-size=390,1000"):  # a phone's width: the page must work there
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def served(bundles: dict[str, Path], tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    db = tmp_path_factory.mktemp("feedback") / "feedback.db"
    # --engine torch: the page does not depend on it, and it spares the ONNX export at start-up
    process, url = start_server([bundles["sentiment"], bundles["ner"]], "--api-key", KEY, "--feedback-db", str(db),
                                "--engine", "torch")
    yield url, db
    stop(process)


def feedback_rows(db: Path) -> list[dict[str, object]]:
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as con:
        rows = con.execute("SELECT model, prediction_id, input, label, tags FROM feedback ORDER BY id").fetchall()
    return [{"model": m, "prediction_id": p, "input": json.loads(i) if i else None, "label": lab,
             "tags": json.loads(t) if t else None} for m, p, i, lab, t in rows]


def open_page(driver, url: str, model: str, key: str | None = None):  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import WebDriverWait

    driver.get("about:blank")  # a fresh document, even when only the #model part of the URL changes
    driver.get(f"{url}/#model={model}")
    driver.execute_script("sessionStorage.clear()")
    driver.refresh()
    wait = WebDriverWait(driver, 20)
    if key is not None:  # the page asks for the key, then keeps it for the tab's session
        wait.until(lambda d: "API key" in d.find_element(By.ID, "status").text)
        assert driver.switch_to.active_element.get_attribute("id") == "api-key"
        driver.switch_to.active_element.send_keys(key, Keys.ENTER)
    wait.until(lambda d: d.find_element(By.ID, "model-section").is_displayed())
    return wait


def answered(wait, result) -> str:  # type: ignore[no-untyped-def]
    """The note under a correction once the server has answered it."""
    from selenium.webdriver.common.by import By

    note = result.find_element(By.CSS_SELECTOR, ".fix .note")
    wait.until(lambda d: note.text not in ("", "Sending…", "Fill in the correction first."))
    return str(note.text)


def test_browser_query_shows_a_label_and_a_correction_is_stored(browser, served) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, db = served
    wait = open_page(browser, url, "sentiment", key=KEY)
    query = browser.find_element(By.ID, "query")
    hostile = '<img src=x id=injected onerror="document.title=1">'
    query.send_keys("great good film", Keys.SHIFT, Keys.ENTER)  # Shift+Enter: a new line (released after the call)
    query.send_keys(hostile, Keys.ENTER)  # Enter sends both lines
    wait.until(lambda d: len(d.find_elements(By.CSS_SELECTOR, "#results .result .label")) == 2)
    first, second = browser.find_elements(By.CSS_SELECTOR, "#results .result")
    predicted = first.find_element(By.CSS_SELECTOR, ".label").text
    assert predicted in ("pos", "neg")
    assert second.find_element(By.CSS_SELECTOR, ".query").text == hostile  # shown as text, never as markup
    assert not browser.find_elements(By.ID, "injected")
    # keyboard only: Enter on the "wrong?" button opens the form with the label select focused
    first.find_element(By.CSS_SELECTOR, "button.linkish").send_keys(Keys.ENTER)
    chooser = browser.switch_to.active_element
    assert chooser.tag_name == "select"
    # nothing is preselected: Enter on "Send correction" before a choice stores nothing (before: the first
    # other label was preselected and sent)
    assert Select(chooser).first_selected_option.get_attribute("value") == ""
    first.find_element(By.CSS_SELECTOR, ".fix button[type=submit]").send_keys(Keys.ENTER)
    wait.until(lambda d: "Fill in the correction first" in first.find_element(By.CSS_SELECTOR, ".fix").text)
    assert feedback_rows(db) == []
    right = "neg" if predicted == "pos" else "pos"
    Select(chooser).select_by_value(right)
    first.find_element(By.CSS_SELECTOR, ".fix button[type=submit]").send_keys(Keys.ENTER)
    assert "correction saved" in answered(wait, first)
    rows = feedback_rows(db)
    assert len(rows) == 1 and rows[0]["model"] == "sentiment" and rows[0]["label"] == right
    assert rows[0]["input"] == {"text": "great good film"}
    assert isinstance(rows[0]["prediction_id"], str) and len(rows[0]["prediction_id"]) == 32  # type: ignore


def test_browser_entity_correction_is_stored_as_tags(browser, served) -> None:  # type: ignore[no-untyped-def]
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    url, db = served
    before = len(feedback_rows(db))
    wait = open_page(browser, url, "ner", key=KEY)
    browser.find_element(By.ID, "query").send_keys("John lives in Paris", Keys.ENTER)
    wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .result .ner-text"))
    result = browser.find_element(By.CSS_SELECTOR, "#results .result")
    assert result.find_element(By.CSS_SELECTOR, ".ner-text").text.replace("\n", " ").startswith("John")
    result.find_element(By.CSS_SELECTOR, "button.linkish").click()
    for found in result.find_elements(By.CSS_SELECTOR, ".entities select"):  # whatever the tiny model found: drop it
        Select(found).select_by_value("")
    result.find_element(By.CSS_SELECTOR, ".add input").send_keys("Paris")
    Select(result.find_element(By.CSS_SELECTOR, ".add select")).select_by_value("LOC")
    result.find_element(By.CSS_SELECTOR, ".add input").send_keys(Keys.ENTER)  # Enter adds the entity
    result.find_element(By.CSS_SELECTOR, ".fix button[type=submit]").click()
    assert "correction saved" in answered(wait, result)
    rows = feedback_rows(db)[before:]
    assert len(rows) == 1 and rows[0]["model"] == "ner" and rows[0]["label"] is None
    assert rows[0]["tags"] == ["O", "O", "O", "B-LOC"]


def test_browser_says_when_the_server_keeps_no_feedback(browser, bundles) -> None:  # type: ignore[no-untyped-def]
    import uvicorn
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select
    from verticals.delivery.serve import create_app

    # in process (the CLI path is tested above): a server without --feedback-db and without a key
    with only_plugins():
        app = create_app([bundles["sentiment"]], engine="torch")
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    url = f"http://127.0.0.1:{server.config.port}"
    try:
        wait = open_page(browser, url, "sentiment")
        browser.find_element(By.ID, "query").send_keys("awful bad film", Keys.ENTER)
        wait.until(lambda d: d.find_elements(By.CSS_SELECTOR, "#results .result .label"))
        result = browser.find_element(By.CSS_SELECTOR, "#results .result")
        result.find_element(By.CSS_SELECTOR, "button.linkish").click()
        Select(result.find_element(By.CSS_SELECTOR, ".fix select")).select_by_value("pos")
        result.find_element(By.CSS_SELECTOR, ".fix button[type=submit]").click()
        note = answered(wait, result)
        assert "Not saved" in note and "does not collect corrections" in note and "--feedback-db" in note
    finally:
        server.should_exit = True
        thread.join(10)
