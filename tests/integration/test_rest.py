"""The /v1 REST API over real HTTP: signed calls, per-app isolation, every endpoint.

A real uvicorn server on 127.0.0.1 (``GatewayThread``) on each store backend;
the calls go through the SDK's :class:`RestClient`, or raw httpx where a test
breaks the signature on purpose.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from openapi_spec_validator import validate

from iwork_mc.apps import App
from iwork_mc.audit import AuditQuery
from iwork_mc.client import Client, RestAPIError, RestClient
from iwork_mc.config import Settings
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.policies import OptOut
from iwork_mc.templates import Template
from iwork_mc.top import signing

from servers import GatewayThread, gateway_on
from topcalls import SEED_FIELDS

NOW_MS = int(time.time() * 1000)


@pytest.fixture(
    scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)]
)
def gateway(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[GatewayThread]:
    """The whole gateway on a fresh database of each backend, apps read afresh every call."""
    with gateway_on(request.param, tmp_path_factory.mktemp("rest")) as gw:
        yield gw


@pytest.fixture
def root(gateway: GatewayThread) -> str:
    return f"http://127.0.0.1:{gateway.port}"


@pytest.fixture
def app(gateway: GatewayThread) -> App:
    return gateway.create_app()


@pytest.fixture
def other(gateway: GatewayThread) -> App:
    return gateway.create_app()


@pytest.fixture
def client_for(root: str) -> Iterator[Callable[[App], RestClient]]:
    clients: list[RestClient] = []

    def make(app: App, secret: str | None = None) -> RestClient:
        client = RestClient(root, app.app_key, secret or app.secret)
        clients.append(client)
        return client

    yield make
    for client in clients:
        client.close()


@pytest.fixture
def client(app: App, client_for: Callable[[App], RestClient]) -> RestClient:
    return client_for(app)


def add_message(
    gw: GatewayThread,
    app: App,
    *,
    msg_key: str | None = None,
    receiver: str = "+8613888888888",
    accepted_at_ms: int = NOW_MS,
    status: MessageStatus = MessageStatus.QUEUED,
) -> int:
    """Store a message of ``app`` (as the TOP route would) and move it to ``status``."""
    assert gw.store is not None
    event = MobileReceiverMessageEvent(
        msg_key=msg_key or f"k-{time.time_ns()}",
        event_time_millis=1_700_000_000_000,
        source="visitor",
        action="arrived",
        mobile_receiver=receiver,
        event_type="notice",
        json_data='{"name": "张三"}',
        sender=42,
    )
    result = gw.run(
        gw.store.accept(
            NewMessage(
                app_key=app.app_key,
                event=event,
                fingerprint=event.fingerprint(),
                request_id="req-1",
                accepted_at_ms=accepted_at_ms,
                text="arrived: name: 张三",
            )
        )
    )
    if status is not MessageStatus.QUEUED:
        move(gw, result.message_id, status)
    return result.message_id


def move(gw: GatewayThread, message_id: int, status: MessageStatus) -> None:
    """Claim the message as a worker would and give it ``status``.

    Other due messages claimed on the way are put back in the queue.
    """
    store = gw.store
    assert store is not None
    now = int(time.time() * 1000)
    claimed = gw.run(store.claim_due(worker_id="w", now_ms=now, lease_ms=60_000, limit=10_000))
    for message in claimed:
        if message.id != message_id:
            gw.run(
                store.transition(
                    message.id, to=MessageStatus.QUEUED, now_ms=now, kind="released", due_at_ms=now
                )
            )
    assert message_id in [message.id for message in claimed]
    steps = [MessageStatus.SUBMITTED] if status is MessageStatus.DELIVERED else []
    for i, step in enumerate([*steps, status]):
        worker = "w" if i == 0 else None  # the lease ends when the message leaves sending
        changed = gw.run(
            store.transition(
                message_id, to=step, now_ms=now, kind=str(step), error="boom", worker_id=worker
            )
        )
        assert changed


def error_of(excinfo: pytest.ExceptionInfo[RestAPIError]) -> tuple[int, str]:
    return excinfo.value.status_code, excinfo.value.code


# -- authentication ---------------------------------------------------------------


def test_a_signed_request_passes(client: RestClient) -> None:
    """A correctly signed call is answered; a new app has zero messages in every status."""
    counts = client.count_messages()
    assert {status.value: 0 for status in MessageStatus} == counts["counts"]
    assert 0 == counts["total"]


def signed_request(
    root: str,
    app_key: str,
    secret: str,
    *,
    method: str = "GET",
    path: str = "/v1/messages/counts",
    query: str = "",
    body: bytes = b"",
    timestamp_ms: int | None = None,
    sign_method: str = "hmac-sha256",
    sign_path: str | None = None,
    sign_body: bytes | None = None,
    drop: str | None = None,
) -> httpx.Response:
    """One call signed by hand (not by the SDK), each part overridable to break it."""
    timestamp = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    params = dict(httpx.QueryParams(query).multi_items())
    params.update(
        app_key=app_key,
        timestamp=timestamp,
        http_method=method,
        path=sign_path or path,
        body_sha256=hashlib.sha256(body if sign_body is None else sign_body).hexdigest(),
    )
    headers = {
        "X-App-Key": app_key,
        "X-Timestamp": timestamp,
        "X-Sign-Method": sign_method,
        "X-Sign": signing.sign(params, secret, "hmac-sha256"),
    }
    if drop is not None:
        del headers[drop]
    url = root + path + (f"?{query}" if query else "")
    return httpx.request(method, url, headers=headers, content=body, timeout=10)


def test_a_hand_signed_request_passes(root: str, app: App) -> None:
    """The scheme of docs/reference/rest.md, implemented independently of the SDK, works."""
    response = signed_request(root, app.app_key, app.secret, query="accepted_from=0")
    assert 200 == response.status_code, response.text


@pytest.mark.parametrize(
    ("case", "expected_code"),
    [
        ("bad sign", "invalid_signature"),
        ("wrong secret", "invalid_signature"),
        ("stale timestamp", "invalid_timestamp"),
        ("future timestamp", "invalid_timestamp"),
        ("timestamp not a number", "invalid_timestamp"),
        ("unknown app", "invalid_app_key"),
        ("disabled app", "app_disabled"),
        ("no X-App-Key", "missing_credentials"),
        ("no X-Timestamp", "missing_credentials"),
        ("no X-Sign-Method", "missing_credentials"),
        ("no X-Sign", "missing_credentials"),
        ("md5 sign method", "unsupported_sign_method"),
        ("other path", "invalid_signature"),
        ("other query", "invalid_signature"),
        ("other body", "invalid_signature"),
    ],
)
def test_every_authentication_failure_is_401(
    gateway: GatewayThread, root: str, app: App, case: str, expected_code: str
) -> None:
    """Each way of getting the credentials wrong answers 401 with a JSON error and its code."""
    key, secret = app.app_key, app.secret
    kwargs: dict[str, Any] = {}
    tolerance_ms = gateway.settings.timestamp_tolerance_s * 1000
    if case == "bad sign":
        secret = "0" * 32
    elif case == "wrong secret":
        secret = gateway.create_app().secret
    elif case == "stale timestamp":
        kwargs["timestamp_ms"] = int(time.time() * 1000) - tolerance_ms - 5_000
    elif case == "future timestamp":
        kwargs["timestamp_ms"] = int(time.time() * 1000) + tolerance_ms + 5_000
    elif case == "timestamp not a number":
        kwargs["timestamp_ms"] = "2024-01-01 00:00:00"
    elif case == "unknown app":
        key = "00000001"
    elif case == "disabled app":
        disabled = gateway.create_app(enabled=False)
        key, secret = disabled.app_key, disabled.secret
    elif case.startswith("no "):
        kwargs["drop"] = case.removeprefix("no ")
    elif case == "md5 sign method":
        kwargs["sign_method"] = "md5"
    elif case == "other path":
        kwargs["sign_path"] = "/v1/messages"
    elif case == "other query":
        kwargs["query"] = "accepted_from=0"
        kwargs["path"] = "/v1/messages/counts"
        response = signed_request(root, key, secret, **kwargs)
        assert 200 == response.status_code
        tampered = httpx.get(
            f"{root}/v1/messages/counts?accepted_from=1",
            headers=dict(response.request.headers),
            timeout=10,
        )
        assert 401 == tampered.status_code
        assert expected_code == tampered.json()["error"]["code"]
        return
    elif case == "other body":
        kwargs.update(
            method="PUT", path="/v1/callback", body=b'{"url": "https://a.example"}',
            sign_body=b'{"url": "https://b.example"}',
        )  # fmt: skip
    response = signed_request(root, key, secret, **kwargs)
    assert 401 == response.status_code
    assert "application/json" == response.headers["content-type"]
    error = response.json()["error"]
    assert expected_code == error["code"]
    assert error["message"]


@pytest.mark.parametrize(
    ("method", "path", "query", "body", "expected"),
    [
        ("GET", "/v1/messages", [("status", "failed"), ("status", "expired"), ("limit", "2")],
         b"", "E7DD866994656DE9DC8EB60D3A52E969EF0981C193F4EB2D2BCA11D28CC6FFEE"),
        ("PUT", "/v1/callback", [], b'{"url":"https://hooks.example/iwork"}',
         "F717520F5E271406AA319CAC4CA8AFBE826AF7F7A9BEDDE4F6A00838F4ACC122"),
    ],
)  # fmt: skip
def test_the_documented_examples_sign_as_documented(
    method: str, path: str, query: list[tuple[str, str]], body: bytes, expected: str
) -> None:
    """The worked examples of docs/reference/rest.md are what the SDK computes."""
    client = RestClient(
        "http://127.0.0.1:9", "12345678", "0123456789abcdef0123456789abcdef",
        clock=lambda: 1_700_000_000.0,
    )  # fmt: skip
    with client:
        headers = client.signed_headers(method, path, query, body)
    assert {
        "X-App-Key": "12345678",
        "X-Timestamp": "1700000000000",
        "X-Sign-Method": "hmac-sha256",
        "X-Sign": expected,
    } == headers


def test_a_body_over_the_limit_is_413(gateway: GatewayThread, root: str, app: App) -> None:
    """A signed body larger than max_body_bytes is refused before it is used."""
    body = json.dumps({"url": "https://a.example/" + "x" * gateway.settings.max_body_bytes})
    response = signed_request(
        root, app.app_key, app.secret, method="PUT", path="/v1/callback", body=body.encode()
    )
    assert 413 == response.status_code
    assert "body_too_large" == response.json()["error"]["code"]


def test_a_body_over_the_limit_is_refused_before_anything_reads_it(
    gateway: GatewayThread, root: str
) -> None:
    """Unsigned and not even JSON: the size is checked while the body arrives, first."""
    body = b"{" * (gateway.settings.max_body_bytes + 1)
    response = httpx.post(f"{root}/v1/templates", content=body, timeout=10)
    assert 413 == response.status_code
    assert "body_too_large" == response.json()["error"]["code"]


def test_a_rotated_secret_works_through_its_grace_period(
    gateway: GatewayThread, root: str, app: App
) -> None:
    """Both the new secret and the previous one (still in grace) sign valid calls."""
    assert gateway.store is not None
    new_secret = "f" * 32
    gateway.run(gateway.store.rotate_secret(app.app_key, new_secret, NOW_MS + 3_600_000))
    for secret in (new_secret, app.secret):
        assert 200 == signed_request(root, app.app_key, secret).status_code


# -- messages -----------------------------------------------------------------------


def test_an_app_reads_its_message_with_the_full_receiver_and_timeline(
    gateway: GatewayThread, client: RestClient, app: App
) -> None:
    """GET /v1/messages/{msg_key}: every field, the unmasked receiver, the timeline."""
    msg_key = f"visit/{time.time_ns()}?x=1 #2"  # every character a path could choke on
    add_message(gateway, app, msg_key=msg_key, status=MessageStatus.FAILED)
    message = client.get_message(msg_key)
    assert msg_key == message["msg_key"]
    assert "failed" == message["status"]
    assert "+8613888888888" == message["event"]["mobile_receiver"]
    assert NOW_MS == message["accepted_at_ms"]
    assert message["accepted_at"].endswith("Z")
    assert ["queued", "sending", "failed"] == [e["status"] for e in message["timeline"]]
    assert all(isinstance(entry["at_ms"], int) for entry in message["timeline"])


def test_an_app_cannot_read_or_retry_another_apps_message(
    gateway: GatewayThread, client_for: Callable[[App], RestClient], app: App, other: App
) -> None:
    """Another app's msg_key is answered exactly as a key that does not exist: 404."""
    msg_key = f"private-{time.time_ns()}"
    add_message(gateway, app, msg_key=msg_key, status=MessageStatus.FAILED)
    intruder = client_for(other)
    with pytest.raises(RestAPIError) as read:
        intruder.get_message(msg_key)
    assert (404, "message_not_found") == error_of(read)
    with pytest.raises(RestAPIError) as retry:
        intruder.retry_message(msg_key)
    assert (404, "message_not_found") == error_of(retry)
    assert [] == intruder.find_messages()["messages"]
    assert 0 == intruder.count_messages()["total"]
    assert "failed" == client_for(app).get_message(msg_key)["status"]


def test_find_filters_by_status_receiver_and_time_and_pages(
    gateway: GatewayThread, client: RestClient, app: App
) -> None:
    """Filters combine; pages follow next_before_id, newest first, until null."""
    base = 1_750_000_000_000
    ids = [
        add_message(gateway, app, accepted_at_ms=base + i * 1000, receiver=receiver)
        for i, receiver in enumerate(["+8613888888888", "+8613900000000"] * 3)
    ]
    failed = add_message(gateway, app, accepted_at_ms=base + 10_000, status=MessageStatus.FAILED)
    everything = client.find_messages(limit=500)
    assert [failed, *reversed(ids)] == [m["id"] for m in everything["messages"]]
    assert everything["next_before_id"] is None

    assert [failed] == [m["id"] for m in client.find_messages(status="failed")["messages"]]
    both = client.find_messages(status=["failed", "queued"], limit=500)["messages"]
    assert 7 == len(both)
    by_receiver = client.find_messages(receiver="139 0000 0000")["messages"]
    assert [ids[5], ids[3], ids[1]] == [m["id"] for m in by_receiver]
    window = client.find_messages(
        accepted_from="2025-06-15T15:06:41Z",  # base + 1 s, inclusive
        accepted_until=str(base + 4000),  # exclusive
    )["messages"]
    assert [ids[3], ids[2], ids[1]] == [m["id"] for m in window]

    seen: list[int] = []
    cursor = None
    while True:
        page = client.find_messages(limit=3, before_id=cursor)
        seen += [m["id"] for m in page["messages"]]
        cursor = page["next_before_id"]
        if cursor is None:
            break
    assert [failed, *reversed(ids)] == seen


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ({"limit": 501}, "limit"),
        ({"limit": 0}, "limit"),
        ({"limit": "many"}, "limit"),
        ({"before_id": 0}, "before_id"),
        ({"before_id": 2**63}, "before_id"),
        ({"before_id": -(2**63) - 1}, "before_id"),
        ({"status": "lost"}, "status"),
        ({"status": ["failed", "lost"]}, "status"),
        ({"accepted_from": "yesterday"}, "accepted_from"),
        ({"accepted_until": "2025-13-45"}, "accepted_until"),
        ({"receiver": "12"}, "receiver"),
    ],
)
def test_invalid_filters_are_422(client: RestClient, query: dict[str, Any], field: str) -> None:
    """A filter that cannot be understood is refused with 422, naming the parameter."""
    with pytest.raises(RestAPIError) as excinfo:
        client.find_messages(**query)
    assert 422 == excinfo.value.status_code
    assert field in excinfo.value.message


@pytest.mark.parametrize("query", [{"accepted_from": "yesterday"}, {"accepted_until": "soon"}])
def test_invalid_count_ranges_are_422(client: RestClient, query: dict[str, Any]) -> None:
    """Counts refuse an unreadable instant as the search does, naming the parameter."""
    with pytest.raises(RestAPIError) as excinfo:
        client.count_messages(**query)
    assert (422, "invalid_parameter") == error_of(excinfo)
    assert next(iter(query)) in excinfo.value.message


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("PUT", "/v1/callback", b'{"url": "https://a.example"'),
        ("PUT", "/v1/callback", b"https://a.example"),
        ("PUT", "/v1/callback", b'["https://a.example"]'),
        ("PUT", "/v1/callback", b"{}"),
        ("POST", "/v1/templates", b'{"name": "t", "body": "hi"'),
        ("POST", "/v1/templates", b'{"name": "t"}'),
        ("POST", "/v1/templates/render", b"{not json}"),
    ],
    ids=["truncated", "not-json", "array", "no-url", "template-truncated", "no-body", "render"],
)
def test_a_malformed_json_body_is_422(
    root: str, app: App, method: str, path: str, body: bytes
) -> None:
    """A signed body that is not JSON, or not the expected object, is a JSON 422 invalid_request."""
    response = signed_request(root, app.app_key, app.secret, method=method, path=path, body=body)
    assert 422 == response.status_code, response.text
    assert "application/json" == response.headers["content-type"]
    error = response.json()["error"]
    assert "invalid_request" == error["code"]
    assert error["message"]


@pytest.mark.parametrize(
    "call",
    [
        lambda client: client.get_message("a\x00b"),
        lambda client: client.retry_message("a\x00b"),
        lambda client: client.find_messages(receiver="138\x0088888888"),
        lambda client: client.create_template("nul", "hi \x00"),
        lambda client: client.create_template("nul", "hi", source="\x00"),
        lambda client: client.opt_out("13912345678", reason="\x00"),
        lambda client: client.set_callback_url("https://a.example/\x00"),
    ],
    ids=["path", "retry-path", "query", "template-body", "template-source", "reason", "url"],
)
def test_a_nul_anywhere_is_422_on_every_backend(
    client: RestClient, call: Callable[[RestClient], object]
) -> None:
    """A NUL in the path, a query value or a body string is bad input (422), not a store error."""
    with pytest.raises(RestAPIError) as excinfo:
        call(client)
    assert 422 == excinfo.value.status_code
    assert "NUL" in excinfo.value.message


def test_unknown_messages_are_404(client: RestClient) -> None:
    """Reading or retrying a msg_key the app never used is 404 message_not_found."""
    for call in (client.get_message, client.retry_message):
        with pytest.raises(RestAPIError) as excinfo:
            call(f"never-{time.time_ns()}")
        assert (404, "message_not_found") == error_of(excinfo)


def test_counts_cover_every_status_within_a_range(
    gateway: GatewayThread, client: RestClient, app: App
) -> None:
    """Counts list every status (zeros included) and honour accepted_from/accepted_until."""
    base = 1_760_000_000_000
    add_message(gateway, app, accepted_at_ms=base)
    add_message(gateway, app, accepted_at_ms=base + 1000)
    add_message(gateway, app, accepted_at_ms=base + 2000, status=MessageStatus.DELIVERED)
    counts = client.count_messages()
    assert {"queued": 2, "delivered": 1} == {k: v for k, v in counts["counts"].items() if v}
    assert set(counts["counts"]) == {status.value for status in MessageStatus}
    ranged = client.count_messages(accepted_from=base + 1000, accepted_until=base + 2000)
    assert 1 == ranged["total"]
    assert 1 == ranged["counts"]["queued"]
    assert base + 1000 == ranged["accepted_from_ms"]


def test_a_failed_message_is_retried_and_a_delivered_one_is_409(
    gateway: GatewayThread, client: RestClient, app: App
) -> None:
    """POST .../retry queues a failed message again; a delivered one cannot be retried."""
    failed = f"failed-{time.time_ns()}"
    delivered = f"delivered-{time.time_ns()}"
    add_message(gateway, app, msg_key=failed, status=MessageStatus.FAILED)
    add_message(gateway, app, msg_key=delivered, status=MessageStatus.DELIVERED)
    before = int(time.time() * 1000)
    retried = client.retry_message(failed)
    assert "queued" == retried["status"]
    assert "requeued" == retried["timeline"][-1]["kind"]
    assert retried["expires_at_ms"] >= before + 86_400_000 - 1000
    with pytest.raises(RestAPIError) as again:
        client.retry_message(failed)
    assert (409, "not_requeueable") == error_of(again)
    with pytest.raises(RestAPIError) as excinfo:
        client.retry_message(delivered)
    assert (409, "not_requeueable") == error_of(excinfo)
    assert "delivered" == client.get_message(delivered)["status"]


# -- templates ----------------------------------------------------------------------


def seed_event(**overrides: Any) -> dict[str, Any]:
    return {**SEED_FIELDS, **overrides}


def test_templates_crud(
    gateway: GatewayThread, client_for: Callable[[App], RestClient], app: App, other: App
) -> None:
    """Create, read, list, replace and delete; shared ones read-only; others' invisible."""
    assert gateway.store is not None
    tag = secrets.token_hex(4)
    shared = Template(name=f"shared-{tag}", body="hi {{ name }}", action=tag, created_at_ms=NOW_MS)
    theirs = Template(name=f"theirs-{tag}", body="x", app_key=other.app_key, action=tag)
    gateway.run(gateway.store.insert_template(shared))
    gateway.run(gateway.store.insert_template(theirs))
    client = client_for(app)

    created = client.create_template(
        f"visit-{tag}", "{{ name }} is here", source="visitor", action=tag, limits="hour=2"
    )
    assert {"name": f"visit-{tag}", "source": "visitor", "shared": False}.items() <= created.items()
    assert created["created_at_ms"] == created["updated_at_ms"]
    assert created == client.get_template(f"visit-{tag}")
    names = [t["name"] for t in client.list_templates()]
    assert f"visit-{tag}" in names
    assert shared.name in names
    assert theirs.name not in names

    replaced = client.replace_template(f"visit-{tag}", "{{ name }} arrived", urgent=True)
    assert ("{{ name }} arrived", True, "") == (
        replaced["body"],
        replaced["urgent"],
        replaced["source"],
    )
    assert created["created_at_ms"] == replaced["created_at_ms"]

    with pytest.raises(RestAPIError) as duplicate:
        client.create_template(f"visit-{tag}", "again")
    assert (409, "template_exists") == error_of(duplicate)
    with pytest.raises(RestAPIError) as read_only:
        client.replace_template(shared.name, "changed")
    assert (403, "read_only") == error_of(read_only)
    with pytest.raises(RestAPIError) as delete_shared:
        client.delete_template(shared.name)
    assert (403, "read_only") == error_of(delete_shared)
    for call in (
        lambda: client.get_template(theirs.name),
        lambda: client.replace_template(theirs.name, "mine now"),
        lambda: client.delete_template(theirs.name),
    ):
        with pytest.raises(RestAPIError) as hidden:
            call()
        assert (404, "template_not_found") == error_of(hidden)

    client.delete_template(f"visit-{tag}")
    with pytest.raises(RestAPIError) as gone:
        client.get_template(f"visit-{tag}")
    assert 404 == gone.value.status_code
    assert gateway.run(gateway.store.get_template(theirs.name)) is not None


def test_a_template_with_a_syntax_error_is_422_with_its_line(client: RestClient) -> None:
    """The body is compiled before it is stored; the error gives the line; nothing is stored."""
    name = f"broken-{secrets.token_hex(4)}"
    with pytest.raises(RestAPIError) as excinfo:
        client.create_template(name, "fine\n{{ name ")
    assert (422, "template_syntax_error") == error_of(excinfo)
    assert 2 == excinfo.value.body["line"]
    with pytest.raises(RestAPIError) as limits:
        client.create_template(name, "ok", limits="week=2")
    assert (422, "invalid_limits") == error_of(limits)
    with pytest.raises(RestAPIError) as bad_name:
        client.create_template("no spaces allowed", "ok")
    assert (422, "invalid_request") == error_of(bad_name)
    with pytest.raises(RestAPIError) as missing:
        client.get_template(name)
    assert 404 == missing.value.status_code


def test_render_dry_run(gateway: GatewayThread, client: RestClient) -> None:
    """The chosen template, the text, its encoding and segments; render errors are answers."""
    tag = secrets.token_hex(4)
    event = seed_event(action=tag)
    default = client.render_template(event)
    assert ("", True) == (default["template"], default["ok"])
    assert f"{tag}: name: 张三 http://www.aaa.com" == default["text"]
    assert ("ucs2", 1) == (default["encoding"], default["segments"])

    client.create_template(f"welcome-{tag}", "Welcome {{ name }}!", action=tag)
    chosen = client.render_template(json.dumps(event))
    assert (f"welcome-{tag}", "Welcome 张三!") == (chosen["template"], chosen["text"])

    ascii_text = client.render_template(event, body="Room {{ data.room }}" * 1)
    assert (False, None) == (ascii_text["ok"], ascii_text["text"])
    assert "room" in ascii_text["error"]
    long = client.render_template(seed_event(json_data='{"n": 1}'), body="x{{ n }}" * 100)
    assert ("gsm7", 200, 2) == (long["encoding"], long["units"], long["segments"])
    over = gateway.settings.max_segments + 1
    too_long = client.render_template(event, body="x" * 153 * over)
    assert (False, over) == (too_long["ok"], too_long["segments"])
    assert "segments" in too_long["error"]
    named = client.render_template(event, name=f"welcome-{tag}")
    assert "Welcome 张三!" == named["text"]

    with pytest.raises(RestAPIError) as syntax:
        client.render_template(event, body="{% if %}")
    assert (422, "template_syntax_error") == error_of(syntax)
    with pytest.raises(RestAPIError) as invalid:
        client.render_template(seed_event(mobile_receiver="12"))
    assert (422, "invalid_event") == error_of(invalid)
    assert "mobile_receiver" == invalid.value.body["field"]
    with pytest.raises(RestAPIError) as unknown:
        client.render_template(event, name="no-such-template")
    assert 404 == unknown.value.status_code


# -- opt-outs and callback URL ------------------------------------------------------


def test_opt_outs(
    gateway: GatewayThread, client_for: Callable[[App], RestClient], app: App, other: App
) -> None:
    """Receivers are kept in E.164; an app sees its own and the all-apps opt-outs only."""
    assert gateway.store is not None
    client = client_for(app)
    created = client.opt_out("139-1234-5678", reason="asked by phone")
    assert ("+8613912345678", "asked by phone", False) == (
        created["receiver"], created["reason"], created["all_apps"],
    )  # fmt: skip
    again = client.opt_out("+8613912345678", reason="twice")
    assert created == again
    assert gateway.run(gateway.store.is_opted_out(app.app_key, "+8613912345678"))
    assert not gateway.run(gateway.store.is_opted_out(other.app_key, "+8613912345678"))
    everyone = OptOut(app_key="*", receiver="+8613700000000", reason="law", created_at_ms=NOW_MS)
    gateway.run(gateway.store.add_opt_out(everyone))

    listed = {(o["receiver"], o["all_apps"]) for o in client.list_opt_outs()}
    assert {("+8613912345678", False), ("+8613700000000", True)} <= listed
    assert ("+8613912345678", False) not in {
        (o["receiver"], o["all_apps"]) for o in client_for(other).list_opt_outs()
    }

    with pytest.raises(RestAPIError) as not_theirs:
        client_for(other).opt_in("+8613912345678")
    assert (404, "opt_out_not_found") == error_of(not_theirs)
    client.opt_in("13912345678")
    assert not gateway.run(gateway.store.is_opted_out(app.app_key, "+8613912345678"))
    with pytest.raises(RestAPIError) as absent:
        client.opt_in("+8613912345678")
    assert 404 == absent.value.status_code
    with pytest.raises(RestAPIError) as invalid:
        client.opt_out("not-a-number")
    assert (422, "invalid_parameter") == error_of(invalid)


def test_callback_url(gateway: GatewayThread, client: RestClient, app: App) -> None:
    """PUT sets an http(s) URL on the app, DELETE clears it; other schemes are 422."""
    assert gateway.store is not None
    assert client.get_callback_url() is None
    assert "https://hooks.example/iwork" == client.set_callback_url("https://hooks.example/iwork")
    stored = gateway.run(gateway.store.get_app(app.app_key))
    assert stored is not None
    assert "https://hooks.example/iwork" == stored.callback_url
    assert "https://hooks.example/iwork" == client.get_callback_url()
    for bad in ("ftp://hooks.example/", "hooks.example", "http://"):
        with pytest.raises(RestAPIError) as excinfo:
            client.set_callback_url(bad)
        assert (422, "invalid_url") == error_of(excinfo)
    client.clear_callback_url()
    cleared = gateway.run(gateway.store.get_app(app.app_key))
    assert cleared is not None
    assert cleared.callback_url is None


@pytest.mark.parametrize(
    ("url", "why"),
    [
        # The gateway's own TOP endpoint, in several spellings.
        ("http://127.0.0.1:{port}/router/rest", "127.0.0.1 is a loopback address"),
        ("http://127.1:{port}/router/rest", "127.1 (127.0.0.1) is a loopback address"),
        ("http://0x7f000001:{port}/", "is a loopback address"),
        ("http://[::1]:{port}/", "::1 is a loopback address"),
        ("http://0.0.0.0:{port}/", "is the unspecified address"),
        ("http://localhost:{port}/", "localhost names this machine"),
        ("http://169.254.169.254/latest/meta-data/", "is a link-local address"),
        ("http://100.100.100.200/latest/meta-data/", "is a shared (carrier-grade NAT) address"),
        ("http://192.168.1.1/", "is a private address"),
        ("http://hooks.example/a\r\nX-Injected: 1", "must not contain '\\r'"),
    ],
)
def test_callback_url_refuses_internal_hosts(
    gateway: GatewayThread, client: RestClient, app: App, url: str, why: str
) -> None:
    """PUT /v1/callback answers 422 with the reason for an internal target and stores nothing."""
    assert gateway.store is not None
    with pytest.raises(RestAPIError) as excinfo:
        client.set_callback_url(url.format(port=gateway.port))
    assert (422, "invalid_url") == error_of(excinfo)
    assert why in excinfo.value.message
    stored = gateway.run(gateway.store.get_app(app.app_key))
    assert stored is not None and stored.callback_url is None


def test_callback_url_takes_allowed_internal_hosts(tmp_path: Path) -> None:
    """A gateway whose operator allows a network accepts a receiver there, and only there."""
    settings = Settings(
        data_dir=tmp_path, app_cache_ttl_s=0, callback_allow_hosts="127.0.0.1, hooks.corp.internal"
    )
    with GatewayThread(settings) as gw:
        app = gw.create_app()
        with RestClient(f"http://127.0.0.1:{gw.port}", app.app_key, app.secret) as client:
            for url in ("http://127.0.0.1:8081/iwork", "https://hooks.corp.internal/iwork"):
                assert url == client.set_callback_url(url)
            with pytest.raises(RestAPIError) as excinfo:
                client.set_callback_url("http://127.0.0.2:8081/iwork")
    assert (422, "invalid_url") == error_of(excinfo)


# -- the rest of the server -------------------------------------------------------------


def test_openapi_schema_is_served_and_valid(root: str) -> None:
    """/openapi.json is valid OpenAPI 3 and documents every route; /docs serves Swagger UI."""
    schema = httpx.get(f"{root}/openapi.json", timeout=10).json()
    validate(schema)
    assert {
        "/v1/messages",
        "/v1/messages/counts",
        "/v1/messages/{msg_key}",
        "/v1/messages/{msg_key}/retry",
        "/v1/templates",
        "/v1/templates/render",
        "/v1/templates/{name}",
        "/v1/opt-outs",
        "/v1/opt-outs/{receiver}",
        "/v1/callback",
        "/v1/channels",
    } == set(schema["paths"])
    get_message = schema["paths"]["/v1/messages/{msg_key}"]["get"]
    assert {"200", "401", "404", "422"} <= set(get_message["responses"])
    headers = {p["name"] for p in get_message["parameters"] if p["in"] == "header"}
    assert {"x-app-key", "x-timestamp", "x-sign-method", "x-sign"} == headers
    docs = httpx.get(f"{root}/docs", timeout=10)
    assert 200 == docs.status_code
    assert "swagger-ui" in docs.text


def test_other_routes_are_unchanged(root: str) -> None:
    """/healthz still answers, an unknown path is a JSON 404, and /router/rest stays TOP."""
    assert {"status": "ok"} == httpx.get(f"{root}/healthz", timeout=10).json()
    missing = httpx.get(f"{root}/v2/nothing", timeout=10)
    assert 404 == missing.status_code
    assert "not_found" == missing.json()["error"]["code"]
    top = httpx.get(f"{root}/router/rest", timeout=10)
    assert 200 == top.status_code
    assert "error_response" in top.text


def test_channels_are_listed_signed_without_a_breaker_when_no_worker_runs_here(
    root: str, client: RestClient
) -> None:
    """A gateway alone (``serve``) lists its channels; breakers live in worker processes."""
    assert [
        {"name": "sandbox", "kind": "sandbox", "breaker": None, "opening": None}
    ] == client.list_channels()
    assert 401 == httpx.get(f"{root}/v1/channels", timeout=10).status_code


def test_a_message_sent_through_top_is_read_through_rest(
    gateway: GatewayThread, client: RestClient, app: App
) -> None:
    """End to end: the SDK's TOP call stores a message; /v1 reads it with its timeline."""
    with Client(gateway.url, app.app_key, app.secret) as top:
        sent = top.send_mobile(
            mobile_receiver="13888888888", json_data={"name": "张三"},
            source="iwork", action="iwork-action", sender=10000,
        )  # fmt: skip
    message = client.get_message(sent.msg_key)
    assert (sent.request_id, "+8613888888888") == (
        message["request_id"], message["event"]["mobile_receiver"],
    )  # fmt: skip
    assert "accepted" == message["timeline"][0]["kind"]


# -- the audit trail ------------------------------------------------------------------


def test_changes_by_an_app_are_audited(
    gateway: GatewayThread, client: RestClient, app: App
) -> None:
    """Callback, opt-outs, templates and retries through /v1 are recorded as the app."""
    assert gateway.store is not None
    client.set_callback_url("https://hooks.example/iwork?token=t0ps3cret")
    client.opt_out("13912345678")
    client.opt_in("13912345678")
    name = f"audited-{app.app_key}"
    client.create_template(name, "{{ name }} 到了", source="visitor")
    client.delete_template(name)
    failed = f"failed-{time.time_ns()}"
    add_message(gateway, app, msg_key=failed, status=MessageStatus.FAILED)
    client.retry_message(failed)
    client.clear_callback_url()

    records = gateway.run(gateway.store.list_audit(AuditQuery(actor=f"app:{app.app_key}")))
    assert [
        ("app.callback_clear", f"app:{app.app_key}"),
        ("message.retry", f"message:{app.app_key}/{failed}"),
        ("template.delete", f"template:{name}"),
        ("template.create", f"template:{name}"),
        ("opt_out.remove", f"opt_out:{app.app_key}/139****5678"),
        ("opt_out.add", f"opt_out:{app.app_key}/139****5678"),
        ("app.callback_set", f"app:{app.app_key}"),
    ] == [(r.action.value, r.target) for r in records]
    assert "t0ps3cret" not in repr(records) and "13912345678" not in repr(records)
    assert all(r.at_ms >= NOW_MS for r in records)
