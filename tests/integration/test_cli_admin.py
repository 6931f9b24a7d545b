"""``iwork-mc templates|opt-outs|messages`` and ``apps set-callback``, run in-process on real stores.

Each command runs through typer's CliRunner against a migrated SQLite file and,
where marked, a PostgreSQL schema.  Seeding is done through the store itself.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest
import structlog
from typer.testing import CliRunner, Result

from iwork_mc.apps import App
from iwork_mc.cli import app as cli_app
from iwork_mc.cli import common as cli_common
from iwork_mc.events import MobileReceiverMessageEvent
from iwork_mc.messages import MessageStatus, NewMessage
from iwork_mc.store import Store, create_store

T = TypeVar("T")

APP_KEY = "12345678"
OTHER_APP = "87654321"
T0 = 1_700_000_001_000
EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples" / "templates.toml"

EVENT = {
    "source": "visitor",
    "action": "arrived",
    "event_type": "mobile_receiver",
    "mobile_receiver": "13888888888",
    "json_data": {"name": "张三", "floor": 3},
    "resource_url": "http://www.aaa.com",
}


@pytest.fixture(autouse=True)
def _keep_structlog_config() -> Iterator[None]:
    # The CLI configures structlog to print to the runner's (soon closed) stderr.
    saved = structlog.get_config()
    yield
    structlog.configure(**saved)


def with_store(url: str, work: Callable[[Store], Awaitable[T]], *, migrate: bool = True) -> T:
    async def run() -> T:
        store = create_store(url)
        await store.open()
        try:
            if migrate:
                await store.migrate()
            return await work(store)
        finally:
            await store.close()

    return asyncio.run(run())


def with_two_apps(url: str) -> str:
    """Migrate the database at ``url`` and store APP_KEY and OTHER_APP in it."""

    async def seed(store: Store) -> None:
        for key in (APP_KEY, OTHER_APP):
            await store.insert_app(
                App(app_key=key, name=f"app {key}", secret="0" * 32, enabled=True, created_at_ms=T0)
            )

    with_store(url, seed)
    return url


@pytest.fixture
def db(database_url: str) -> str:
    """A migrated database (each backend) with two apps."""
    return with_two_apps(database_url)


@pytest.fixture
def sqlite_db(sqlite_url: str) -> str:
    """Like ``db``, SQLite only (for the commands tested on one backend)."""
    return with_two_apps(sqlite_url)


@pytest.fixture
def iwork(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Callable[..., Result]:
    """Run ``iwork-mc --database-url URL ARGS...`` in-process; check the exit status."""
    runner = CliRunner()
    # Wide enough that no table cell is wrapped (the runner is not a terminal: 80 columns).
    monkeypatch.setattr(cli_common.out, "width", 200)

    def run(url: str, *args: str, code: int = 0) -> Result:
        result = runner.invoke(
            cli_app,
            ["--data-dir", str(tmp_path / "var"), "--database-url", url, *args],
            env={"IWORK_MC_CONFIG": ""},
        )
        assert code == result.exit_code, (result.stdout, result.stderr, result.exception)
        return result

    return run


def as_json(result: Result) -> Any:
    return json.loads(result.stdout)


def error(result: Result) -> str:
    return " ".join(result.stderr.split())


# -- templates -------------------------------------------------------------------


def test_template_lifecycle(db: str, iwork: Callable[..., Result], tmp_path: Path) -> None:
    """create, list, show, update and delete round-trip on each backend."""
    created = as_json(
        iwork(
            db,
            "templates",
            "create",
            "arrived",
            "--body",
            "{{ name }} 到了",
            "--source",
            "visitor",
            "--action",
            "arrived",
            "--app",
            APP_KEY,
            "--limits",
            "hour=1,day=3",
            "--urgent",
            "--json",
        )
    )
    assert {
        "name": "arrived",
        "app_key": APP_KEY,
        "source": "visitor",
        "action": "arrived",
        "event_type": "",
        "urgent": True,
        "limits": "hour=1,day=3",
        "body": "{{ name }} 到了",
    }.items() <= created.items()
    body_file = tmp_path / "body.j2"
    body_file.write_text("Welcome {{ name }}\n", encoding="utf-8")
    iwork(db, "templates", "create", "welcome", "--body-file", str(body_file))

    listed = as_json(iwork(db, "templates", "list", "--json"))
    assert ["arrived", "welcome"] == [t["name"] for t in listed]
    table = iwork(db, "templates", "list").stdout
    assert "arrived" in table and "welcome" in table and "hour=1,day=3" in table

    shown = as_json(iwork(db, "templates", "show", "welcome", "--json"))
    assert ("Welcome {{ name }}\n", "", False) == (shown["body"], shown["source"], shown["urgent"])
    assert "Welcome {{ name }}" in iwork(db, "templates", "show", "welcome").stdout

    updated = as_json(
        iwork(db, "templates", "update", "arrived", "--source", "", "--not-urgent", "--json")
    )
    assert ("", False, "arrived", "hour=1,day=3", APP_KEY) == (
        updated["source"],
        updated["urgent"],
        updated["action"],
        updated["limits"],
        updated["app_key"],
    )
    assert created["created_at_ms"] == updated["created_at_ms"]
    assert as_json(iwork(db, "templates", "show", "arrived", "--json")) == updated

    assert {"deleted": "arrived"} == as_json(iwork(db, "templates", "delete", "arrived", "--json"))
    assert "deleted template welcome" in iwork(db, "templates", "delete", "welcome").stdout
    assert [] == as_json(iwork(db, "templates", "list", "--json"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--body", "{{ name"], "body: line 1:"),
        (["--body", "Hi\n{% if x %}"], "body: line 2:"),
        (["--body", "   "], "body: must not be empty"),
        (["--body", "x", "--limits", "week=3"], "limits: 'week=3': the window must be"),
        (["--body", "x", "--limits", "hour=0"], "at least 1"),
        ([], "give --body or --body-file"),
        (["--body", "x", "--body-file", "f.j2"], "not both"),
        (["--body-file", "/nonexistent/body.j2"], "--body-file /nonexistent/body.j2"),
        (["--body", "x", "--source", "s" * 65], "source: must be at most 64 characters"),
    ],
)
def test_template_create_rejects_bad_input(
    sqlite_db: str, iwork: Callable[..., Result], args: list[str], message: str
) -> None:
    """Bad bodies, limits and options exit 2 with the reason, and store nothing."""
    result = iwork(sqlite_db, "templates", "create", "t1", *args, code=2)
    assert message in error(result)
    assert [] == as_json(iwork(sqlite_db, "templates", "list", "--json"))


def test_template_create_names_and_conflicts(db: str, iwork: Callable[..., Result]) -> None:
    """A bad name exits 2; an unknown app, a taken name or selection key exit 1."""
    assert "name 'a b'" in error(iwork(db, "templates", "create", "a b", "--body", "x", code=2))
    unknown = iwork(db, "templates", "create", "t", "--body", "x", "--app", "00000000", code=1)
    assert "error: no app with app_key 00000000" == error(unknown)
    iwork(db, "templates", "create", "first", "--body", "x", "--action", "arrived")
    taken = iwork(db, "templates", "create", "first", "--body", "y", code=1)
    assert "a template named first already exists" in error(taken)
    clash = iwork(db, "templates", "create", "second", "--body", "y", "--action", "arrived", code=1)
    assert "template first already has app=* source=* action=arrived event_type=*" in error(clash)
    iwork(db, "templates", "create", "third", "--body", "y")
    moved = iwork(db, "templates", "update", "third", "--action", "arrived", code=1)
    assert "template first already has" in error(moved)


def test_template_update_show_delete_errors(db: str, iwork: Callable[..., Result]) -> None:
    """Unknown names exit 1; an update with nothing to change or a bad body exits 2."""
    for command in (["show", "nope"], ["delete", "nope"], ["update", "nope", "--body", "x"]):
        assert "error: no template named nope" == error(iwork(db, "templates", *command, code=1))
    iwork(db, "templates", "create", "t", "--body", "x")
    assert "nothing to change" in error(iwork(db, "templates", "update", "t", code=2))
    assert "body: line 1" in error(iwork(db, "templates", "update", "t", "--body", "{%", code=2))
    assert "no app with app_key 00000000" in error(
        iwork(db, "templates", "update", "t", "--app", "00000000", code=1)
    )


def test_render_chooses_the_most_specific_template(db: str, iwork: Callable[..., Result]) -> None:
    """render prints the chosen template, its text, encoding and segments."""
    event = json.dumps(EVENT, ensure_ascii=False)
    default = as_json(iwork(db, "templates", "render", "--event", event, "--json"))
    assert {
        "template": "",
        "ok": True,
        "text": "arrived: name: 张三, floor: 3 http://www.aaa.com",
        "encoding": "ucs2",
        "segments": 1,
        "error": None,
    }.items() <= default.items()
    iwork(
        db,
        "templates",
        "create",
        "any-arrival",
        "--body",
        "Guest {{ name }} is here",
        "--action",
        "arrived",
    )
    iwork(
        db,
        "templates",
        "create",
        "desk-arrival",
        "--body",
        "Floor {{ floor }}",
        "--action",
        "arrived",
        "--app",
        APP_KEY,
    )
    shared = as_json(iwork(db, "templates", "render", "--event", event, "--json"))
    assert ("any-arrival", "Guest 张三 is here", "ucs2") == (
        shared["template"],
        shared["text"],
        shared["encoding"],
    )
    mine = as_json(iwork(db, "templates", "render", "--event", event, "--app", APP_KEY, "--json"))
    assert ("desk-arrival", "Floor 3", "gsm7", 1, 7) == (
        mine["template"],
        mine["text"],
        mine["encoding"],
        mine["segments"],
        mine["units"],
    )
    named = as_json(
        iwork(db, "templates", "render", "--event", event, "--template", "desk-arrival", "--json")
    )
    assert "Floor 3" == named["text"]
    long_body = as_json(
        iwork(db, "templates", "render", "--event", event, "--body", "x" * 161, "--json")
    )
    assert ("(body)", "gsm7", 2) == (
        long_body["template"],
        long_body["encoding"],
        long_body["segments"],
    )
    human = iwork(db, "templates", "render", "--event", event).stdout
    assert "any-arrival" in human and "Guest 张三 is here" in human and "segments   1" in human


def test_render_errors(db: str, iwork: Callable[..., Result], tmp_path: Path) -> None:
    """A template that cannot render the event, or a bad event, exits 2 with the reason."""
    event = json.dumps(EVENT, ensure_ascii=False)
    failed = iwork(db, "templates", "render", "--event", event, "--body", "{{ room }}", code=2)
    assert "error: render: the template needs 'room'" == error(failed)
    as_data = iwork(
        db, "templates", "render", "--event", event, "--body", "{{ room }}", "--json", code=2
    )
    assert (False, None) == (as_json(as_data)["ok"], as_json(as_data)["text"])
    # Too long for max_segments (10): shown with its cost, and refused as an accept would be.
    too_long = iwork(
        db, "templates", "render", "--event", event, "--body", "x" * 1531, "--json", code=2
    )
    shown = as_json(too_long)
    assert (False, 11) == (shown["ok"], shown["segments"])
    assert "the text needs 11 SMS segments (gsm7); at most 10 are allowed" == shown["error"]
    assert "body: line 1" in error(
        iwork(db, "templates", "render", "--event", event, "--body", "{{", code=2)
    )
    bad_number = json.dumps({**EVENT, "mobile_receiver": "12"})
    assert "event: mobile_receiver" in error(
        iwork(db, "templates", "render", "--event", bad_number, code=2)
    )
    assert "not valid JSON" in error(iwork(db, "templates", "render", "--event", "{", code=2))
    assert "give --event or --event-file" in error(iwork(db, "templates", "render", code=2))
    assert "no template named nope" in error(
        iwork(db, "templates", "render", "--event", event, "--template", "nope", code=1)
    )
    event_file = tmp_path / "event.json"
    event_file.write_text(event, encoding="utf-8")
    from_file = iwork(db, "templates", "render", "--event-file", str(event_file), "--json")
    assert as_json(from_file)["ok"]


TOML = """
[templates.arrived]
body = "{{ name }} 到了"
action = "arrived"
urgent = true
limits = "hour=1"

[templates.left]
body = '''
{{ name }} left
'''
action = "left"
app = "12345678"
"""


def test_import_creates_updates_and_reports(
    db: str, iwork: Callable[..., Result], tmp_path: Path
) -> None:
    """import upserts every table of the file and counts what it did."""
    seed = tmp_path / "templates.toml"
    seed.write_text(TOML, encoding="utf-8")
    first = as_json(iwork(db, "templates", "import", str(seed), "--json"))
    assert (2, 0, 0) == (first["created"], first["updated"], first["unchanged"])
    shown = as_json(iwork(db, "templates", "show", "left", "--json"))
    assert ("{{ name }} left\n", APP_KEY, "left") == (
        shown["body"],
        shown["app_key"],
        shown["action"],
    )
    seed.write_text(TOML.replace('limits = "hour=1"', 'limits = "day=2"'), encoding="utf-8")
    second = iwork(db, "templates", "import", str(seed)).stdout
    assert "created 0, updated 1, unchanged 1" in second
    assert "day=2" == as_json(iwork(db, "templates", "show", "arrived", "--json"))["limits"]


def test_import_example_file(db: str, iwork: Callable[..., Result]) -> None:
    """docs/examples/templates.toml imports as it is."""
    report = as_json(iwork(db, "templates", "import", str(EXAMPLES), "--json"))
    assert report["created"] >= 2 and 0 == report["updated"]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[templates.a\n", "not valid TOML"),
        ("[other]\nx = 1\n", "unknown top-level key(s) other"),
        ("[templates.a]\nsource = 'x'\n", "templates.a.body: is required"),
        ("[templates.a]\nbody = 'x'\ncolour = 'red'\n", "templates.a: unknown key(s) colour"),
        ("[templates.a]\nbody = 'x'\nurgent = 'yes'\n", "templates.a.urgent: must be a bool"),
        ("[templates.a]\nbody = 'x'\n[templates.b]\nbody = '{{'\n", "templates.b: body: line 1"),
        ("[templates.a]\nbody = 'x'\nlimits = 'year=1'\n", "templates.a: limits:"),
        ("[templates.'a b']\nbody = 'x'\n", "templates.a b: name 'a b'"),
        (
            "[templates.a]\nbody = 'x'\n[templates.b]\nbody = 'y'\n",
            "templates a and b would have the same",
        ),
    ],
)
def test_import_validates_everything_before_writing(
    sqlite_db: str, iwork: Callable[..., Result], tmp_path: Path, text: str, message: str
) -> None:
    """An invalid file exits 2, names each problem, and writes no template."""
    seed = tmp_path / "bad.toml"
    seed.write_text(text, encoding="utf-8")
    assert message in error(iwork(sqlite_db, "templates", "import", str(seed), code=2))
    assert [] == as_json(iwork(sqlite_db, "templates", "list", "--json"))


def test_import_refuses_unknown_apps_and_files(
    sqlite_db: str, iwork: Callable[..., Result], tmp_path: Path
) -> None:
    """An app that does not exist exits 1; an unreadable file exits 2."""
    seed = tmp_path / "apps.toml"
    seed.write_text("[templates.a]\nbody = 'x'\napp = '00000000'\n", encoding="utf-8")
    assert "no app with app_key 00000000" in error(
        iwork(sqlite_db, "templates", "import", str(seed), code=1)
    )
    assert str(tmp_path / "nope.toml") in error(
        iwork(sqlite_db, "templates", "import", str(tmp_path / "nope.toml"), code=2)
    )


def test_commands_refuse_an_unmigrated_database(
    sqlite_url: str, iwork: Callable[..., Result]
) -> None:
    """Every store command exits 1 and asks for `db upgrade` on an unmigrated database."""
    with_store(sqlite_url, lambda store: asyncio.sleep(0), migrate=False)
    for args in (
        ["templates", "list"],
        ["opt-outs", "list"],
        ["messages", "counts"],
        ["apps", "clear-callback", APP_KEY],
    ):
        result = iwork(sqlite_url, *args, code=1)
        assert "run `iwork-mc db upgrade`" in error(result)


# -- opt-outs --------------------------------------------------------------------


def test_opt_out_lifecycle(db: str, iwork: Callable[..., Result]) -> None:
    """add normalises to E.164, is idempotent, list shows full numbers, remove undoes it."""
    added = as_json(
        iwork(
            db, "opt-outs", "add", "138 8888 8888", "--app", APP_KEY, "--reason", "asked", "--json"
        )
    )
    assert (True, "+8613888888888", APP_KEY, "asked") == (
        added["added"],
        added["receiver"],
        added["app_key"],
        added["reason"],
    )
    again = iwork(db, "opt-outs", "add", "+8613888888888", "--app", APP_KEY).stdout
    assert "+8613888888888 was already opted out of app 12345678" in again
    iwork(db, "opt-outs", "add", "13999999999", "--all-apps")
    iwork(db, "opt-outs", "add", "13777777777", "--app", OTHER_APP)

    everyone = as_json(iwork(db, "opt-outs", "list", "--json"))
    assert 3 == len(everyone)
    mine = as_json(iwork(db, "opt-outs", "list", "--app", APP_KEY, "--json"))
    assert {("+8613888888888", APP_KEY), ("+8613999999999", "*")} == {
        (o["receiver"], o["app_key"]) for o in mine
    }
    table = iwork(db, "opt-outs", "list").stdout
    assert "+8613888888888" in table and "every app" in table and "asked" in table

    removed = iwork(db, "opt-outs", "remove", "13888888888", "--app", APP_KEY).stdout
    assert "+8613888888888 gets messages from app 12345678 again" in removed
    again_removed = iwork(db, "opt-outs", "remove", "13888888888", "--app", APP_KEY, code=1)
    assert "error: +8613888888888 is not opted out of app 12345678" == error(again_removed)
    iwork(db, "opt-outs", "remove", "13999999999", "--all-apps", "--json")
    assert 1 == len(as_json(iwork(db, "opt-outs", "list", "--json")))


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["add", "13888888888"], 2, "give --app APP_KEY or --all-apps"),
        (
            ["add", "13888888888", "--app", APP_KEY, "--all-apps"],
            2,
            "give --app APP_KEY or --all-apps",
        ),
        (["add", "12", "--all-apps"], 2, "'12' is not a valid phone number"),
        (["add", "hello", "--all-apps"], 2, "'hello' is not a phone number"),
        (["add", "13888888888", "--app", "00000000"], 1, "no app with app_key 00000000"),
        (["remove", "13888888888"], 2, "give --app APP_KEY or --all-apps"),
        (["add", "13888888888", "--all-apps", "--reason", "x" * 501], 2, "at most 500"),
    ],
)
def test_opt_out_errors(
    sqlite_db: str, iwork: Callable[..., Result], args: list[str], code: int, message: str
) -> None:
    """Missing or doubled scopes, bad numbers and unknown apps are refused."""
    assert message in error(iwork(sqlite_db, "opt-outs", *args, code=code))


# -- messages --------------------------------------------------------------------


def seed_messages(url: str) -> dict[str, int]:
    """Three messages of APP_KEY (one failed, one expired, one queued) and one of OTHER_APP."""

    async def seed(store: Store) -> dict[str, int]:
        ids = {}
        for n, (app_key, msg_key, receiver) in enumerate(
            [
                (APP_KEY, "m-failed", "+8613800000001"),
                (APP_KEY, "m-expired", "+8613800000002"),
                (APP_KEY, "m-queued", "+8613800000003"),
                (OTHER_APP, "m-other", "+8613800000001"),
            ]
        ):
            event = MobileReceiverMessageEvent(
                msg_key=msg_key,
                event_time_millis=T0,
                source="visitor",
                action="arrived",
                mobile_receiver=receiver,
                event_type="notice",
                json_data="{}",
                sender=1,
            )
            result = await store.accept(
                NewMessage(
                    app_key=app_key,
                    event=event,
                    fingerprint=event.fingerprint(),
                    request_id=f"r{n}",
                    accepted_at_ms=T0 + n * 1000,
                    text="hi",
                )
            )
            ids[msg_key] = result.message_id
        claimed = await store.claim_due(
            worker_id="w", now_ms=T0 + 10_000, lease_ms=60_000, limit=10
        )
        assert 4 == len(claimed)
        await store.transition(
            ids["m-failed"],
            to=MessageStatus.FAILED,
            now_ms=T0 + 11_000,
            kind="failed",
            error="UNDELIV",
            worker_id="w",
        )
        await store.transition(
            ids["m-expired"],
            to=MessageStatus.EXPIRED,
            now_ms=T0 + 11_000,
            kind="expired",
            worker_id="w",
        )
        for key in ("m-queued", "m-other"):
            await store.transition(
                ids[key],
                to=MessageStatus.QUEUED,
                now_ms=T0 + 11_000,
                kind="retry",
                worker_id="w",
                due_at_ms=T0,
            )
        return ids

    return with_store(url, seed)


def test_messages_retry(db: str, iwork: Callable[..., Result]) -> None:
    """retry requeues a failed (by key) or expired (by --id) message; others exit 1."""
    ids = seed_messages(db)
    retried = as_json(iwork(db, "messages", "retry", APP_KEY, "m-failed", "--json"))
    assert {"id": ids["m-failed"], "status": "queued", "previous_status": "failed"}.items() <= (
        retried.items()
    )
    human = iwork(db, "messages", "retry", "--id", str(ids["m-expired"])).stdout
    assert f"requeued message {ids['m-expired']}" in human and "expired → queued" in human

    def status_of(msg_key: str) -> tuple[MessageStatus, int | None]:
        async def get(store: Store) -> tuple[MessageStatus, int | None]:
            message = await store.get_message(APP_KEY, msg_key)
            assert message is not None
            return message.status, message.expires_at_ms

        return with_store(db, get)

    status, expires = status_of("m-failed")
    assert MessageStatus.QUEUED == status and expires == retried["expires_at_ms"]
    assert MessageStatus.QUEUED == status_of("m-expired")[0]

    again = iwork(db, "messages", "retry", APP_KEY, "m-failed", code=1)
    assert "is queued: only expired or failed messages can be retried" in error(again)
    missing = iwork(db, "messages", "retry", APP_KEY, "nope", code=1)
    assert f"error: no message with msg_key nope for app {APP_KEY}" == error(missing)
    assert "no message with id 999999" in error(
        iwork(db, "messages", "retry", "--id", "999999", code=1)
    )
    for args in ([], [APP_KEY], [APP_KEY, "m-failed", "--id", "1"]):
        assert "give APP_KEY MSG_KEY, or --id ID" in error(
            iwork(db, "messages", "retry", *args, code=2)
        )


def test_messages_list_filters_and_masks(sqlite_db: str, iwork: Callable[..., Result]) -> None:
    """list filters by app, status, receiver and time, newest first, masking numbers."""
    ids = seed_messages(sqlite_db)
    everything = as_json(iwork(sqlite_db, "messages", "list", "--json"))
    assert ["m-other", "m-queued", "m-expired", "m-failed"] == [m["msg_key"] for m in everything]
    assert "138****0001" == everything[-1]["receiver"]
    assert "UNDELIV" == everything[-1]["last_error"]
    table = iwork(sqlite_db, "messages", "list").stdout
    assert "138****0001" in table and "+8613800000001" not in table
    shown = iwork(sqlite_db, "messages", "list", "--show-numbers").stdout
    assert "+8613800000001" in shown

    def keys(*args: str) -> list[str]:
        return [
            m["msg_key"] for m in as_json(iwork(sqlite_db, "messages", "list", *args, "--json"))
        ]

    assert ["m-queued", "m-expired", "m-failed"] == keys("--app", APP_KEY)
    assert ["m-expired", "m-failed"] == keys("--status", "failed", "--status", "expired")
    assert ["m-expired", "m-failed"] == keys("--status", "failed,expired")
    assert ["m-other", "m-failed"] == keys("--receiver", "13800000001")
    assert ["m-queued", "m-expired"] == keys("--since", str(T0 + 1000), "--until", str(T0 + 3000))
    assert ["m-failed"] == keys("--limit", "1", "--before-id", str(ids["m-expired"]))
    from datetime import datetime

    iso = datetime.fromtimestamp((T0 + 3000) / 1000).astimezone().isoformat()
    assert ["m-other"] == keys("--since", iso)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--status", "lost"], "--status lost: use one of queued, sending"),
        (["--since", "yesterday"], "--since 'yesterday': give epoch milliseconds or an ISO 8601"),
        (["--receiver", "12"], "'12' is not a valid phone number"),
        (["--until", "soon"], "--until 'soon': give epoch milliseconds or an ISO 8601"),
        (["--limit", "0"], "Invalid value for '--limit'"),
        (["--limit", "1001"], "Invalid value for '--limit'"),
    ],
)
def test_messages_list_errors(
    sqlite_db: str, iwork: Callable[..., Result], args: list[str], message: str
) -> None:
    """Unknown statuses, unreadable times and numbers exit 2."""
    assert message in error(iwork(sqlite_db, "messages", "list", *args, code=2))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--since", "yesterday"], "--since 'yesterday': give epoch milliseconds or an ISO 8601"),
        (["--until", "soon"], "--until 'soon': give epoch milliseconds or an ISO 8601"),
    ],
)
def test_messages_counts_errors(
    sqlite_db: str, iwork: Callable[..., Result], args: list[str], message: str
) -> None:
    """counts refuses unreadable times as list does."""
    assert message in error(iwork(sqlite_db, "messages", "counts", *args, code=2))


def test_messages_counts(sqlite_db: str, iwork: Callable[..., Result]) -> None:
    """counts gives every status (zeros too) and the total, per app if asked."""
    seed_messages(sqlite_db)
    counts = as_json(iwork(sqlite_db, "messages", "counts", "--json"))
    assert {"queued": 2, "failed": 1, "expired": 1, "delivered": 0, "total": 4}.items() <= (
        counts.items()
    )
    mine = as_json(iwork(sqlite_db, "messages", "counts", "--app", OTHER_APP, "--json"))
    assert (1, 1) == (mine["queued"], mine["total"])
    recent = as_json(iwork(sqlite_db, "messages", "counts", "--since", str(T0 + 2000), "--json"))
    assert 2 == recent["total"]
    table = iwork(sqlite_db, "messages", "counts").stdout
    assert "total" in table and "delivered" in table


# -- apps callbacks ---------------------------------------------------------------


def test_apps_callback(sqlite_db: str, iwork: Callable[..., Result]) -> None:
    """set-callback takes http(s) URLs only; clear-callback removes it; unknown apps exit 1."""
    url = "https://hooks.example.com/iwork?token=1"
    shown = as_json(iwork(sqlite_db, "apps", "set-callback", APP_KEY, url, "--json"))
    assert url == shown["callback_url"]
    assert url == as_json(iwork(sqlite_db, "apps", "show", APP_KEY, "--json"))["callback_url"]
    cleared = as_json(iwork(sqlite_db, "apps", "clear-callback", APP_KEY, "--json"))
    assert cleared["callback_url"] is None
    for bad, why in [
        ("ftp://example.com/x", "must start with http:// or https://"),
        ("example.com", "must start with http:// or https://"),
        ("http://", "has no host"),
        ("https://user:pw@example.com/", "must not carry user:password@"),
    ]:
        assert why in error(iwork(sqlite_db, "apps", "set-callback", APP_KEY, bad, code=2))
    assert "error: no app with app_key 00000000" == error(
        iwork(sqlite_db, "apps", "set-callback", "00000000", url, code=1)
    )
    assert "no app with app_key 00000000" in error(
        iwork(sqlite_db, "apps", "clear-callback", "00000000", code=1)
    )


@pytest.mark.parametrize(
    ("url", "why"),
    [
        ("http://127.0.0.1:8080/router/rest", "127.0.0.1 is a loopback address"),
        ("http://2130706433/", "2130706433 (127.0.0.1) is a loopback address"),
        ("http://[::ffff:127.0.0.1]/", "is a loopback address"),
        ("http://169.254.169.254/latest/meta-data/", "is a link-local address"),
        ("http://10.1.2.3/", "is a private address"),
        ("http://localhost:8080/", "localhost names this machine"),
        ("http://metadata.google.internal/", "is a cloud metadata service"),
        ("http://hooks.example.com/a b", "must not contain ' '"),
    ],
)
def test_apps_set_callback_refuses_internal_hosts(
    sqlite_db: str, iwork: Callable[..., Result], url: str, why: str
) -> None:
    """Internal targets exit 2 with an error naming the reason, and nothing is stored."""
    message = error(iwork(sqlite_db, "apps", "set-callback", APP_KEY, url, code=2))
    assert message.startswith("error: URL ")
    assert why in message
    assert "Traceback" not in message
    assert as_json(iwork(sqlite_db, "apps", "show", APP_KEY, "--json"))["callback_url"] is None


def test_apps_set_callback_takes_allowed_internal_hosts(
    sqlite_db: str, iwork: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    """With callback_allow_hosts naming them, an on-premise receiver's address and name pass."""
    monkeypatch.setenv("IWORK_MC_CALLBACK_ALLOW_HOSTS", "10.0.0.0/8, hooks.corp.internal")
    for url in ("http://10.1.2.3:8080/iwork", "https://hooks.corp.internal/iwork"):
        shown = as_json(iwork(sqlite_db, "apps", "set-callback", APP_KEY, url, "--json"))
        assert url == shown["callback_url"]
    assert "127.0.0.1 is a loopback address" in error(
        iwork(sqlite_db, "apps", "set-callback", APP_KEY, "http://127.0.0.1/", code=2)
    )
