"""The web console over real HTTP (no browser): sessions, CSRF, lock-out, pages, bounds.

The browser tests (tests/acceptance/test_console_browser.py) walk the same pages
in chromium; these check the rules one request at a time, on both backends.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from iwork_mc.apps import App
from iwork_mc.audit import AuditQuery
from iwork_mc.config import Settings
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.operators import Operator, hash_password

from databases import pg_schema_url
from servers import GatewayThread

PASSWORD = "correct horse battery staple"


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    """One gateway per backend for the module, with operator ``admin``; three failures in
    a row lock for 3 s.  Tests make their own apps and operators, and look only at those."""
    options = {
        "data_dir": tmp_path_factory.mktemp("console"),
        "console_max_failed_sign_ins": 3,
        "console_lockout_s": 3,
        "max_body_bytes": 4096,
    }
    if request.param == "sqlite":
        with GatewayThread(Settings(**options)) as gw:  # type: ignore[arg-type]
            add_operator(gw)
            yield gw
        return
    with pg_schema_url() as url, GatewayThread(Settings(**options, database_url=url)) as gw:  # type: ignore[arg-type]
        add_operator(gw)
        yield gw


def add_operator(gw: GatewayThread, name: str = "admin") -> None:
    assert gw.store is not None
    operator = Operator(
        name=name, password_hash=hash_password(PASSWORD), created_at_ms=int(time.time() * 1000)
    )
    gw.run(gw.store.insert_operator(operator))


@pytest.fixture
def browser(gateway: GatewayThread) -> Iterator[httpx.Client]:
    """An HTTP client that keeps cookies, like a browser, and does not follow redirects."""
    with httpx.Client(base_url=f"http://127.0.0.1:{gateway.port}", timeout=10) as client:
        yield client


def csrf_of(page: httpx.Response) -> str:
    match = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert match, page.text
    return match.group(1)


def sign_in(browser: httpx.Client, name: str = "admin", password: str = PASSWORD) -> httpx.Response:
    token = csrf_of(browser.get("/console/sign-in"))
    return browser.post(
        "/console/sign-in", data={"csrf_token": token, "name": name, "password": password}
    )


@pytest.fixture
def signed_in(browser: httpx.Client) -> str:
    """Sign ``browser`` in; the session's CSRF token."""
    assert 303 == sign_in(browser).status_code
    return csrf_of(browser.get("/console/apps"))


def add_message(gw: GatewayThread, app: App, msg_key: str, receiver: str) -> int:
    assert gw.store is not None
    event = MobileReceiverMessageEvent(
        msg_key=msg_key, event_time_millis=1_700_000_000_000, source="visitor",
        action="arrived", mobile_receiver=receiver, event_type="notice",
        json_data='{"name": "张三"}', sender=42,
    )  # fmt: skip
    new = NewMessage(
        app_key=app.app_key, event=event, fingerprint=event.fingerprint(),
        request_id="r", accepted_at_ms=int(time.time() * 1000), text="arrived: name: 张三",
    )  # fmt: skip
    return gw.run(gw.store.accept(new)).message_id


def test_pages_need_a_sign_in(browser: httpx.Client) -> None:
    """Every page but sign-in redirects to it; static assets need none."""
    for path in ("/console/", "/console/messages", "/console/apps", "/console/templates",
                 "/console/opt-outs", "/console/channels", "/console/messages/1"):  # fmt: skip
        answer = browser.get(path)
        assert (303, "/console/sign-in") == (answer.status_code, answer.headers["location"]), path
    assert 200 == browser.get("/console/static/htmx.min.js").status_code


def test_the_session_cookie_is_http_only_strict_and_scoped(browser: httpx.Client) -> None:
    """HttpOnly, SameSite=Strict, Path=/console; not Secure over plain http."""
    cookie = browser.get("/console/sign-in").headers["set-cookie"].lower()
    assert {"httponly", "samesite=strict", "path=/console"} <= {
        part.strip() for part in cookie.split(";")
    }
    assert "secure" not in cookie


def test_sign_in_then_pages_answer(browser: httpx.Client, signed_in: str) -> None:
    """A signed-in operator sees each page, with the security headers on it."""
    for path in ("/console/", "/console/messages", "/console/apps", "/console/templates",
                 "/console/templates/new", "/console/opt-outs", "/console/channels"):  # fmt: skip
        answer = browser.get(path)
        assert 200 == answer.status_code, path
        assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
        assert "no-store" == answer.headers["cache-control"]


def test_a_post_without_the_csrf_token_is_refused_and_changes_nothing(
    gateway: GatewayThread, browser: httpx.Client, signed_in: str
) -> None:
    """No token, or another session's token: 403, and no app is created."""
    assert gateway.store is not None
    missing = browser.post("/console/apps", data={"name": "sneaky"})
    wrong = browser.post("/console/apps", data={"name": "sneaky", "csrf_token": "x" * 43})
    header = browser.post("/console/apps", data={"name": "ok"}, headers={"X-CSRF-Token": signed_in})

    assert (403, 403) == (missing.status_code, wrong.status_code)
    assert "CSRF" in missing.text
    assert 200 == header.status_code  # htmx sends the token as a header
    names = [a.name for a in gateway.run(gateway.store.list_apps())]
    assert ("sneaky" not in names, "ok" in names) == (True, True)


def test_sign_in_without_the_csrf_token_is_refused(browser: httpx.Client) -> None:
    """Even the right password is refused without the sign-in page's token (login CSRF)."""
    answer = browser.post("/console/sign-in", data={"name": "admin", "password": PASSWORD})
    assert 403 == answer.status_code
    assert 303 == browser.get("/console/").status_code


def test_wrong_passwords_lock_the_operator_out_for_a_while(
    gateway: GatewayThread, browser: httpx.Client
) -> None:
    """Three failures in a row lock for 3 s: then even the right password is refused."""
    add_operator(gateway, "clumsy")
    unknown = sign_in(browser, name="nobody")
    failures = [sign_in(browser, name="clumsy", password="wrong password!") for _ in range(3)]
    locked = sign_in(browser, name="clumsy")

    assert [401, 401, 401, 401] == [a.status_code for a in [unknown, *failures]]
    # An unknown name and a wrong password read the same.
    assert "Wrong name or password." in unknown.text
    assert "Wrong name or password." in failures[0].text
    assert (401, True) == (locked.status_code, "locked" in locked.text)
    assert 303 == browser.get("/console/").status_code

    assert gateway.store is not None
    operator = gateway.run(gateway.store.get_operator("clumsy"))
    assert operator is not None
    time.sleep(max(0.0, operator.locked_until_ms / 1000 - time.time()) + 0.1)
    assert 303 == sign_in(browser, name="clumsy").status_code
    assert 200 == browser.get("/console/").status_code


def test_sign_out_ends_the_session(browser: httpx.Client, signed_in: str) -> None:
    answer = browser.post("/console/sign-out", data={"csrf_token": signed_in})
    assert 303 == answer.status_code
    assert 303 == browser.get("/console/").status_code


def test_search_masks_receivers_unless_asked(
    gateway: GatewayThread, browser: httpx.Client, signed_in: str
) -> None:
    """The list shows 138****8888; ``reveal=1`` the number; msg_key finds across apps."""
    app = gateway.create_app()
    add_message(gateway, app, "visit-42", "+8613888888888")
    add_message(gateway, app, "visit-43", "+8613999999999")

    masked = browser.get("/console/messages", params={"msg_key": "visit-42"})
    shown = browser.get("/console/messages", params={"msg_key": "visit-42", "reveal": "1"})
    by_receiver = browser.get("/console/messages", params={"receiver": "13999999999"})

    assert "138****8888" in masked.text and "+8613888888888" not in masked.text
    assert "visit-43" not in masked.text
    assert "+8613888888888" in shown.text
    assert "visit-43" in by_receiver.text and "visit-42" not in by_receiver.text


@pytest.mark.parametrize(
    ("params", "problem"),
    [
        ({"receiver": "not a number"}, "receiver:"),
        ({"status": "lost"}, "status: &#39;lost&#39; is not a status"),
        ({"from": "yesterday"}, "from: expected a date and time"),
        ({"before_id": "-3"}, "before_id: expected a positive whole number"),
    ],
)
def test_bad_search_input_is_explained(
    browser: httpx.Client, signed_in: str, params: dict[str, str], problem: str
) -> None:
    answer = browser.get("/console/messages", params=params)
    assert 400 == answer.status_code
    assert problem in answer.text


def test_an_app_secret_is_shown_once(
    gateway: GatewayThread, browser: httpx.Client, signed_in: str
) -> None:
    """Create and rotate show the secret in their answer; the list never does."""
    assert gateway.store is not None

    def stored() -> App:
        [app] = [a for a in gateway.run(gateway.store.list_apps()) if a.name == "Front desk"]
        return app

    created = browser.post("/console/apps", data={"name": "Front desk", "csrf_token": signed_in})
    app = stored()
    assert app.secret in created.text
    assert app.secret not in browser.get("/console/apps").text

    rotated = browser.post(f"/console/apps/{app.app_key}/rotate", data={"csrf_token": signed_in})
    after = stored()
    assert after.secret != app.secret
    assert after.secret in rotated.text
    assert app.secret not in rotated.text

    browser.post(f"/console/apps/{app.app_key}/disable", data={"csrf_token": signed_in})
    assert not stored().enabled
    unknown = browser.post("/console/apps/99999999/rotate", data={"csrf_token": signed_in})
    assert 404 == unknown.status_code


def test_the_preview_renders_as_the_accept_path_does(browser: httpx.Client, signed_in: str) -> None:
    """A good body shows its text and cost; a syntax error or a missing variable says why."""

    def preview(body: str, sample: str = '{"name": "张三"}') -> str:
        form = {"body": body, "sample": sample, "csrf_token": signed_in}
        answer = browser.post("/console/templates/preview", data=form)
        assert 200 == answer.status_code
        return answer.text

    assert "Hello 张三" in preview("Hello {{ name }}")
    assert "ucs2" in preview("Hello {{ name }}")
    assert "body:" in preview("Hello {{ name ")
    assert "room" in preview("Hello {{ room }}")
    assert "sample json_data" in preview("Hello", sample="[1]")


def test_a_template_is_created_then_edited(
    gateway: GatewayThread, browser: httpx.Client, signed_in: str
) -> None:
    assert gateway.store is not None
    form = {"csrf_token": signed_in, "name": "arrival", "action": "arrived",
            "body": "{{ name }} is here", "sample": "{}"}  # fmt: skip
    created = browser.post("/console/templates/new", data=form)
    assert (303, "/console/templates/arrival") == (created.status_code, created.headers["location"])

    reserved = browser.post("/console/templates/new", data={**form, "name": "new"})
    assert (422, True) == (reserved.status_code, "taken by the console" in reserved.text)

    bad = browser.post("/console/templates/arrival", data={**form, "body": "{% if %}"})
    assert 422 == bad.status_code
    edited = browser.post("/console/templates/arrival", data={**form, "body": "{{ name }} waits"})
    assert "Saved." in edited.text

    template = gateway.run(gateway.store.get_template("arrival"))
    assert template is not None
    assert ("{{ name }} waits", "arrived") == (template.body, template.action)


def test_opt_outs_are_added_and_removed(
    gateway: GatewayThread, browser: httpx.Client, signed_in: str
) -> None:
    """Any spelling is kept in E.164; the list masks it; a bad number or app is explained."""
    assert gateway.store is not None
    app = gateway.create_app()
    form = {"csrf_token": signed_in, "receiver": "139 1234 5678", "app_key": app.app_key}

    assert 303 == browser.post("/console/opt-outs/add", data=form).status_code
    assert gateway.run(gateway.store.is_opted_out(app.app_key, "+8613912345678"))
    page = browser.get("/console/opt-outs").text
    assert "139****5678" in page and "+8613912345678" not in page

    bad = browser.post("/console/opt-outs/add", data={**form, "receiver": "12"})
    no_app = browser.post("/console/opt-outs/add", data={**form, "app_key": "00000000"})
    odd = browser.post("/console/opt-outs/drop", data=form)
    assert (400, 400, 404) == (bad.status_code, no_app.status_code, odd.status_code)

    # The remove button names the opt-out by an opaque reference, not by the number.
    [ref] = re.findall(r'name="ref" value="([0-9a-f]{64})"', page)
    forged = browser.post(
        "/console/opt-outs/remove", data={"csrf_token": signed_in, "ref": "0" * 64}
    )
    assert 303 == forged.status_code
    assert gateway.run(gateway.store.is_opted_out(app.app_key, "+8613912345678"))
    removed = browser.post("/console/opt-outs/remove", data={"csrf_token": signed_in, "ref": ref})
    assert 303 == removed.status_code
    assert not gateway.run(gateway.store.is_opted_out(app.app_key, "+8613912345678"))


def test_a_form_over_the_body_limit_is_refused(browser: httpx.Client, signed_in: str) -> None:
    answer = browser.post(
        "/console/templates/preview", data={"csrf_token": signed_in, "body": "x" * 5000}
    )
    assert 413 == answer.status_code


def test_an_over_long_password_is_not_hashed(browser: httpx.Client) -> None:
    """A megabyte "password" is refused by the body limit, a long one by the length rule."""
    answer = sign_in(browser, password="p" * 2000)
    assert 401 == answer.status_code


def test_docs_and_redoc_load_nothing_from_elsewhere(browser: httpx.Client) -> None:
    """Swagger UI and ReDoc pages name only local assets, and the assets are served."""
    for page in ("/docs", "/redoc"):
        html = browser.get(page).text
        assert not re.search(r"(src|href)=[\"']?https?://", html), page
        for asset in re.findall(r"(?:src|href)=\"(/docs-assets/[^\"]+)\"", html):
            assert 200 == browser.get(asset).status_code, asset


def test_every_change_in_the_console_is_audited(
    gateway: GatewayThread, browser: httpx.Client
) -> None:
    """Sign-in, apps, secrets, templates, opt-outs and retries each leave one record by the
    operator, readable on the audit page, never with the secret."""
    assert gateway.store is not None
    store = gateway.store
    add_operator(gateway, "auditor")
    assert 303 == sign_in(browser, name="auditor").status_code
    token = csrf_of(browser.get("/console/apps"))
    browser.post("/console/apps", data={"name": "Audited", "csrf_token": token})
    [app] = [a for a in gateway.run(store.list_apps()) if a.name == "Audited"]
    browser.post(f"/console/apps/{app.app_key}/rotate", data={"csrf_token": token})
    browser.post(f"/console/apps/{app.app_key}/disable", data={"csrf_token": token})
    template = {"csrf_token": token, "name": "audited", "body": "hi", "sample": "{}"}
    browser.post("/console/templates/new", data=template)
    browser.post("/console/templates/audited", data={**template, "body": "hello"})
    browser.post(
        "/console/opt-outs/add",
        data={"csrf_token": token, "receiver": "13912340000", "app_key": app.app_key},
    )
    message_id = add_message(gateway, app, "audited-1", "+8613912340001")
    now = int(time.time() * 1000)
    [claimed] = [
        m
        for m in gateway.run(store.claim_due(worker_id="w", now_ms=now, lease_ms=60_000, limit=50))
        if m.id == message_id
    ]
    gateway.run(store.transition(claimed.id, to=MessageStatus.FAILED, now_ms=now, kind="failed"))
    browser.post(f"/console/messages/{message_id}/retry", data={"csrf_token": token})

    records = gateway.run(store.list_audit(AuditQuery(actor="operator:auditor")))
    assert [
        "message.retry", "opt_out.add", "template.update", "template.create", "app.disable",
        "app.rotate_secret", "app.create", "console.sign_in",
    ] == [str(r.action) for r in records]  # fmt: skip
    assert "message:" + app.app_key + "/audited-1" == records[0].target
    page = browser.get("/console/audit", params={"actor": "operator:auditor"})
    assert 200 == page.status_code
    assert "app.rotate_secret" in page.text and "139****0000" in page.text
    [rotated] = [a for a in gateway.run(store.list_apps()) if a.name == "Audited"]
    assert rotated.secret not in page.text and app.secret not in page.text
    assert 400 == browser.get("/console/audit", params={"action": "app.explode"}).status_code
