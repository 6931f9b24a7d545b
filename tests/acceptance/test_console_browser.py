"""The console and the API docs in a real headless browser (Debian's chromium + chromedriver).

``iwork-mc run`` serves on 127.0.0.1 with the sandbox channel; the seed message
is delivered and a magic number makes another fail.  Chromium is started with
everything that reaches out switched off, and each page checks that every
resource it loaded came from the server itself.

Screenshots go to the test's directory, or to ``$IWORK_MC_SCREENSHOTS`` (the
docs' images are made with ``IWORK_MC_SCREENSHOTS=docs/images``).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support import expected_conditions as ec
from selenium.webdriver.support.ui import WebDriverWait

from iwork_mc.client import Client

from processes import CLI, Server, cli, start, wait_for_status
from topcalls import SEED_FIELDS

CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "correct horse battery staple"
FAILING = "+8613800000001"  # the sandbox's permanent_failure number (docs/howto/sandbox.md)

if not (shutil.which(CHROMEDRIVER) and shutil.which(CHROMIUM)):
    if os.environ.get("CI"):
        pytest.fail("chromium and chromium-driver are missing: .ci/run installs them")
    pytest.skip("needs Debian's chromium and chromium-driver", allow_module_level=True)


@dataclass
class Site:
    server: Server
    data_dir: Path
    app_key: str
    shots: Path

    def url(self, path: str) -> str:
        return f"{self.server.base_url}{path}"


def create_operator(data_dir: Path, name: str) -> None:
    subprocess.run(
        [*CLI, "--data-dir", str(data_dir), "operators", "create", name, "--password-stdin"],
        input=PASSWORD + "\n", text=True, capture_output=True, timeout=60, check=True,
    )  # fmt: skip


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """``iwork-mc run`` with two operators, the seed message delivered and one message failed."""
    root = tmp_path_factory.mktemp("console")
    data_dir = root / "var"
    cli(data_dir, "db", "upgrade")
    create_operator(data_dir, "admin")
    create_operator(data_dir, "clumsy")
    app = json.loads(cli(data_dir, "apps", "create", "Visitor desk", "--json").stdout)
    server = start(data_dir, "run", env={"IWORK_MC_CONSOLE_LOCKOUT_S": "600"})
    try:
        server.wait_ready()
        with Client(server.url, app["app_key"], app["secret"]) as client:
            seed = {k: v for k, v in SEED_FIELDS.items() if k != "event_time_millis"}
            client.send_mobile(**seed)
            client.send_mobile(**{**seed, "msg_key": "will-fail", "mobile_receiver": FAILING})
        wait_for_status(data_dir, app["app_key"], SEED_FIELDS["msg_key"], "delivered")
        wait_for_status(data_dir, app["app_key"], "will-fail", "failed")
        shots = Path(os.environ.get("IWORK_MC_SCREENSHOTS") or root / "shots")
        shots.mkdir(parents=True, exist_ok=True)
        yield Site(server, data_dir, app["app_key"], shots)
    finally:
        server.kill(signal.SIGKILL)


@pytest.fixture
def browser() -> Iterator[WebDriver]:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    for flag in (
        "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--disable-sync", "--no-first-run",
        "--disable-dev-shm-usage", "--window-size=1280,900", "--lang=en-US",
    ):  # fmt: skip
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: WebDriver, css: str, text: str = "", timeout: float = 10) -> None:
    """Wait until the element ``css`` exists (and contains ``text``)."""
    condition = (
        ec.text_to_be_present_in_element((By.CSS_SELECTOR, css), text)
        if text
        else ec.presence_of_element_located((By.CSS_SELECTOR, css))
    )
    try:
        WebDriverWait(driver, timeout).until(condition)
    except TimeoutException:
        raise AssertionError(f"no {css!r} with {text!r} on {driver.current_url}:\n"
                             f"{driver.find_element(By.TAG_NAME, 'body').text}") from None  # fmt: skip


def requests_elsewhere(driver: WebDriver, site: Site) -> dict[str, str | None]:
    """Requests the browser began for another origin since the last call, from its
    DevTools log: ``{url: why it was blocked}`` (``None``: it was not blocked)."""
    started: dict[str, str] = {}
    blocked: dict[str, str] = {}
    for entry in driver.get_log("performance"):  # type: ignore[no-untyped-call]
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            started[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked[params["requestId"]] = params["blockedReason"]
    local = (site.server.base_url + "/", "data:", "blob:")
    return {
        url: blocked.get(request_id)
        for request_id, url in started.items()
        if not url.startswith(local)
    }


def assert_all_local(driver: WebDriver, site: Site) -> None:
    """Nothing was requested from elsewhere (so nothing would be, with a network)."""
    assert {} == requests_elsewhere(driver, site)


def sign_in(driver: WebDriver, site: Site, name: str, password: str) -> None:
    driver.get(site.url("/console/sign-in"))
    driver.find_element(By.NAME, "name").send_keys(name)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form button[type=submit]").click()


def shot(driver: WebDriver, site: Site, name: str) -> None:
    driver.save_screenshot(str(site.shots / f"console-{name}.png"))


def search_and_open(driver: WebDriver, site: Site, msg_key: str) -> None:
    driver.get(site.url("/console/messages"))
    driver.find_element(By.NAME, "msg_key").send_keys(msg_key)
    driver.find_element(By.CSS_SELECTOR, "form.search button").click()
    wait_for(driver, "table.list tbody", msg_key)
    driver.find_element(By.LINK_TEXT, msg_key).click()
    wait_for(driver, "#msg-key", msg_key)


def test_an_operator_finds_retries_and_edits(browser: WebDriver, site: Site) -> None:
    """Sign in, find the seed by msg_key, read its timeline, retry a failure, edit a template."""
    driver = browser
    sign_in(driver, site, "admin", PASSWORD)
    wait_for(driver, "main h1", "Overview")
    assert_all_local(driver, site)
    assert driver.find_elements(By.CSS_SELECTOR, "svg.chart rect.accepted")
    shot(driver, site, "overview")

    search_and_open(driver, site, SEED_FIELDS["msg_key"])
    wait_for(driver, "#status", "delivered")
    kinds = [
        e.text for e in driver.find_elements(By.CSS_SELECTOR, ".timeline tbody td:nth-child(2)")
    ]
    assert ["accepted", "claimed", "delivered"] == kinds
    assert "138****8888" in driver.find_element(By.CSS_SELECTOR, "dl.fields").text
    assert not driver.find_elements(By.ID, "retry")  # delivered: nothing to retry
    shot(driver, site, "message")

    search_and_open(driver, site, "will-fail")
    wait_for(driver, "#status", "failed")
    driver.find_element(By.ID, "retry").click()
    wait_for(driver, ".notice", "Queued again.")
    wait_for(driver, ".timeline", "requeued")
    assert "console:admin" in driver.find_element(By.CSS_SELECTOR, ".timeline").text
    # The worker sends it again; the magic number fails it again.
    wait_for_status(site.data_dir, site.app_key, "will-fail", "failed")
    driver.get(site.url("/console/messages?status=failed"))
    wait_for(driver, "table.list tbody", "will-fail")
    assert "138****0001" in driver.find_element(By.CSS_SELECTOR, "table.list").text
    shot(driver, site, "messages")

    driver.get(site.url("/console/templates/new"))
    driver.find_element(By.NAME, "name").send_keys("arrival")
    driver.find_element(By.NAME, "action").send_keys("iwork-action")
    driver.find_element(By.NAME, "body").send_keys("{{ name }} has arrived")
    wait_for(driver, "#preview", "张三 has arrived")
    driver.find_element(By.ID, "save").click()
    wait_for(driver, "main h1", "Template arrival")

    body = driver.find_element(By.NAME, "body")
    body.clear()
    body.send_keys("Welcome, {{ name }}! Room {{ room }}")
    wait_for(driver, "#preview", "room")  # the sample has no room: the preview says so
    sample = driver.find_element(By.NAME, "sample")
    sample.clear()
    sample.send_keys('{"name": "张三", "room": "A-301"}')
    wait_for(driver, "#preview", "Welcome, 张三! Room A-301")
    shot(driver, site, "template")
    driver.find_element(By.ID, "save").click()
    wait_for(driver, ".notice", "Saved.")
    assert_all_local(driver, site)

    driver.get(site.url("/console/apps"))
    driver.find_element(By.NAME, "name").send_keys("Meeting rooms")
    driver.find_element(By.CSS_SELECTOR, "form.inline-form button").click()
    wait_for(driver, "#new-secret")
    assert 32 == len(driver.find_element(By.ID, "new-secret").text)
    shot(driver, site, "apps")

    driver.get(site.url("/console/channels"))
    wait_for(driver, "main", "sandbox")
    driver.get(site.url("/console/audit"))
    wait_for(driver, "table.audit", "message.retry")
    for action in ("console.sign_in", "template.update", "app.create"):
        assert action in driver.find_element(By.CSS_SELECTOR, "table.audit").text
    shot(driver, site, "audit")
    driver.get(site.url("/console/"))
    wait_for(driver, "main h1", "Overview")
    shot(driver, site, "overview")

    templates = json.loads(cli(site.data_dir, "templates", "list", "--json").stdout)
    assert ["Welcome, {{ name }}! Room {{ room }}"] == [
        t["body"] for t in templates if t["name"] == "arrival"
    ]


def test_wrong_passwords_lock_out_and_a_forged_form_is_refused(
    browser: WebDriver, site: Site
) -> None:
    """Five wrong passwords lock the account: the right one is then refused too."""
    driver = browser
    for _ in range(5):
        sign_in(driver, site, "clumsy", "not the password")
        wait_for(driver, ".error", "Wrong name or password.")
    sign_in(driver, site, "clumsy", PASSWORD)
    wait_for(driver, ".error", "locked")
    shot(driver, site, "locked")

    sign_in(driver, site, "admin", PASSWORD)
    wait_for(driver, "main h1", "Overview")
    driver.get(site.url("/console/apps"))
    driver.execute_script(
        "document.querySelector('form.inline-form [name=csrf_token]').value = 'forged'"
    )
    driver.find_element(By.NAME, "name").send_keys("Forged")
    driver.find_element(By.CSS_SELECTOR, "form.inline-form button").click()
    wait_for(driver, "body", "CSRF check failed")
    apps = json.loads(cli(site.data_dir, "apps", "list", "--json").stdout)
    assert "Forged" not in [a["name"] for a in apps]


@pytest.mark.parametrize(("path", "css", "text"), [
    ("/docs", ".swagger-ui .info .title", "iwork-mc REST API"),
    ("/redoc", "h1", "iwork-mc REST API"),
])  # fmt: skip
def test_api_docs_render_offline(
    browser: WebDriver, site: Site, path: str, css: str, text: str
) -> None:
    """Swagger UI and ReDoc render the schema with assets served by iwork-mc alone."""
    browser.get(site.url(path))
    wait_for(browser, css, text, timeout=20)
    # ReDoc's sidebar asks its vendor's CDN for a logo: the page's CSP stops it in the browser.
    assert {} == {
        url: why for url, why in requests_elsewhere(browser, site).items() if why != "csp"
    }
    assert "/v1/messages" in browser.find_element(By.TAG_NAME, "body").text
    browser.save_screenshot(str(site.shots / f"api-docs-{path.strip('/')}.png"))
