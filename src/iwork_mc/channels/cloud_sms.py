"""What the cloud SMS channels (Alibaba Cloud, Tencent Cloud) share: options, outcomes, the engine.

A cloud provider takes one templated SMS per HTTP call through its official
SDK and confirms delivery later.  Each provider module (aliyun_sms.py,
tencent_sms.py) supplies a :class:`Provider`: its settings, the table that
sorts its error codes into :class:`Outcome` s, and blocking SDK calls.
:class:`CloudSMSChannel` is the one engine around them:

* the SDKs block, so every call runs in the channel's own thread pool of
  ``concurrency`` threads: the worker's event loop never waits on a socket;
* a submission is recorded as one segment (``add_segments`` before the call,
  ``segment_submitted`` with the provider's id after it), so receipts travel
  the same road as SMPP receipts (``apply_receipt``) into the one state
  machine and timeline;
* a *throttled* answer is tried again after a short back-off, up to
  ``throttle_retries`` times, then handed to the worker as transient (its
  retry is scheduled in the store); *transient* → retried by the worker;
  *permanent* → failed (or the route's next channel);
* a call that timed out after the request went out is *in doubt*: the
  provider may have it.  It is resent only after ``in_doubt_resend_s``, and
  the resend is marked ``possible_duplicate`` on the timeline;
* receipts are polled every ``receipt_poll_interval_s`` by a background task.

Secrets (AccessKey secrets, SecretKeys) live only in the provider's settings
(``repr=False``), never in logs, errors or timelines.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import importlib
import re
import time
import typing
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from fnmatch import fnmatchcase
from typing import Any, Protocol, TypeVar
from urllib.parse import urlsplit

import structlog

from iwork_mc import metrics, tracing
from iwork_mc.channels.base import (
    InDoubt,
    PermanentChannelError,
    Submitted,
    TransientChannelError,
)
from iwork_mc.channels.options import ChannelOptionError, check_known
from iwork_mc.messages import Message
from iwork_mc.privacy import mask_phone
from iwork_mc.segments import AwaitingReceipt, SegmentState
from iwork_mc.store.base import Store

__all__ = [
    "CloudSMSChannel",
    "CloudSMSOptions",
    "Outcome",
    "Provider",
    "ProviderReceipt",
    "ProviderRefused",
    "ProviderUnreachable",
    "classify",
    "in_doubt",
    "parse_options",
    "require_sdk",
    "split_endpoint",
    "template_for",
    "transport_reason",
]

log = structlog.get_logger("iwork_mc.channels.cloud_sms")


class Outcome(StrEnum):
    """How a provider's error code is treated (each provider's table maps codes to these)."""

    PERMANENT = "permanent"  #: Never accepted: the message fails (or falls back)
    TRANSIENT = "transient"  #: Try again later: the worker schedules a retry
    THROTTLED = "throttled"  #: Too fast: back off a little, then retry


_PHONE_LIKE = re.compile(r"\+?\d{7,}")


class ProviderRefused(Exception):
    """The provider answered with an error ``code`` (its own words in ``text``)."""

    def __init__(self, code: str, text: str, outcome: Outcome) -> None:
        # The provider's words go to timelines and logs: no phone number in them.
        text = _PHONE_LIKE.sub(lambda m: mask_phone(m.group()), text)[:200]
        super().__init__(f"{code}: {text}" if text else code)
        self.code = code
        self.text = text
        self.outcome = outcome


class ProviderUnreachable(Exception):
    """No answer: ``in_doubt`` when the request may have reached the provider."""

    def __init__(self, reason: str, *, in_doubt: bool) -> None:
        super().__init__(reason)
        self.in_doubt = in_doubt


@dataclass(frozen=True, slots=True)
class ProviderReceipt:
    """A delivery report: the provider's id of the submission and what became of it."""

    carrier_id: str
    state: SegmentState
    error: str | None = None
    detail: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class CloudSMSOptions:
    """Options every cloud SMS channel takes (``[channels.NAME]`` keys), with defaults."""

    #: ``host[:port]`` (HTTPS) or ``http(s)://host[:port]``; empty: the provider's own.
    endpoint: str = ""
    #: The signature (签名) the provider prepends to every text.
    sign_name: str = ""
    #: iwork-mc template name (or shell pattern; ``""``: the default template) →
    #: the provider's template.
    templates: Mapping[str, Any] = field(default_factory=dict)
    #: Seconds one SDK call may take (connect and read each).
    timeout_s: float = 10.0
    #: SDK calls in flight at once (threads of the channel's pool).
    concurrency: int = 8
    #: Quick retries of a throttled submission before it goes back to the worker.
    throttle_retries: int = 2
    #: First back-off after a throttled answer (doubled each time).
    throttle_backoff_s: float = 0.5
    #: How long an in-doubt submission waits before it is sent again.
    in_doubt_resend_s: float = 600.0
    #: How often receipts are polled; 0: never (the overdue sweep expires messages).
    receipt_poll_interval_s: float = 30.0
    #: Non-empty: the gateway takes the provider's pushed receipts at
    #: ``POST /receipts/<channel>/<receipt_token>``.
    receipt_token: str = field(default="", repr=False)


def require_sdk(module: str, kind: str) -> None:
    """Fail when the channel is built, naming the extra, if the provider's SDK is missing."""
    try:
        importlib.import_module(module)
    except ImportError:  # pragma: no cover - the extra is part of the dev install
        raise RuntimeError(
            f"the {kind} channel needs the providers extra: pip install 'iwork-mc[providers]'"
        ) from None


def split_endpoint(endpoint: str) -> tuple[str, str]:
    """``(scheme, host[:port])`` of a provider endpoint written with or without a scheme."""
    parts = urlsplit(endpoint if "://" in endpoint else f"https://{endpoint}")
    return parts.scheme, parts.netloc


def classify(table: Mapping[str, Outcome], code: str) -> Outcome:
    """The class of a provider's error code in its table: the exact code, else the longest
    ``Prefix.*`` entry matching it, else transient (a new code costs retries, not messages)."""
    if code in table:
        return table[code]
    prefixes = [k for k in table if k.endswith("*") and code.startswith(k[:-1])]
    return table[max(prefixes, key=len)] if prefixes else Outcome.TRANSIENT


def template_for(templates: Mapping[str, Any], template: str) -> Any | None:
    """The provider template mapped to an iwork-mc template name, or ``None``.

    An exact name wins over a pattern; patterns are tried in their order.
    """
    if template in templates:
        return templates[template]
    return next((v for k, v in templates.items() if fnmatchcase(template, k)), None)


_Options = TypeVar("_Options", bound=CloudSMSOptions)


def parse_options(cls: type[_Options], options: Mapping[str, Any]) -> _Options:
    """Build ``cls`` from a channel's options (``[channels.NAME]`` keys but ``kind``).

    Raises:
        ChannelOptionError: naming the option (config.py adds the channel's name).
    """
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    check_known(options, set(known))
    values: dict[str, Any] = {}
    for name, spec in known.items():
        kind = hints[name]
        value = options.get(name)
        if value is None:
            if spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING:
                raise ChannelOptionError(name, f'is required (or give {name}_env = "VARIABLE")')
            continue
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        expected = typing.get_origin(kind) or kind
        if expected is Mapping:
            expected = dict
        if not isinstance(value, expected) or (isinstance(value, bool) and kind is not bool):
            shown = "the value" if "secret" in name or "key" in name else repr(value)
            raise ChannelOptionError(name, f"{shown} is not of type {expected.__name__}")
        if kind in (int, float) and value < 0:
            raise ChannelOptionError(name, "must not be negative")
        values[name] = value
    for name in ("sign_name", "templates"):
        if name in known and not values.get(name):
            raise ChannelOptionError(name, "is required and must not be empty")
    if values.get("concurrency", 1) < 1:
        raise ChannelOptionError("concurrency", "must be at least 1")
    return cls(**values)


class Provider(Protocol):
    """**Protocol:** one cloud SMS provider, spoken to through its blocking SDK.

    ``submit`` and ``receipts`` run in the channel's thread pool.
    """

    kind: str

    @property
    def options(self) -> CloudSMSOptions:
        """The channel's settings."""
        ...

    def request_for(self, message: Message) -> Any:
        """What ``submit`` sends for the message; raises :class:`ProviderRefused` (permanent)
        when the message cannot be sent through this provider (no template mapped…)."""
        ...

    def submit(self, request: Any) -> str:
        """Send it; returns the provider's id.  Raises ProviderRefused or ProviderUnreachable."""
        ...

    def receipts(self, awaiting: Sequence[AwaitingReceipt]) -> list[ProviderReceipt]:
        """Delivery reports: of ``awaiting`` (providers asked per submission), or whatever
        the provider has queued (providers that push reports to a pull queue)."""
        ...

    #: Whether ``receipts`` needs the list of submissions waiting for one.
    polls_by_id: bool

    def health(self) -> dict[str, Any]:
        """Non-secret facts for /healthz (endpoint, region…)."""
        ...


#: Submissions waiting for a receipt that one poll asks about at most.
POLL_PAGE = 50


class CloudSMSChannel:
    """A named channel delivering through one cloud SMS provider.

    Args:
        provider: The provider (aliyun_sms.AliyunSMS, tencent_sms.TencentSMS).
        store: Where segments and receipts are recorded.
        name: The channel's name in routes, timelines and receipts.
        clock: The time of the store records, in epoch seconds.
    """

    def __init__(
        self,
        provider: Provider,
        store: Store,
        *,
        name: str,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.name = name
        self.provider = provider
        self.store = store
        self._options = provider.options
        self._clock = clock
        self._executor: ThreadPoolExecutor | None = None
        self._stopping = asyncio.Event()
        self._poller: asyncio.Task[None] | None = None
        self._cursor = (0, 0, 0)
        #: Counters for /healthz and tests.
        self.stats = {
            "submitted": 0,
            "refused": 0,
            "throttled": 0,
            "in_doubt": 0,
            "unreachable": 0,
            "receipts": 0,
            "duplicate_receipts": 0,
            "unmatched_receipts": 0,
            "poll_errors": 0,
        }
        self.last_error: str | None = None

    def ready(self) -> bool:
        """Always: each send is one HTTPS call to the provider, with no session to bind."""
        return True

    def health(self) -> dict[str, Any]:
        return {
            "channel": self.name,
            "kind": self.provider.kind,
            **self.provider.health(),
            "stats": dict(self.stats),
            "last_error": self.last_error,
        }

    async def open(self) -> None:
        self._executor = ThreadPoolExecutor(
            max_workers=self._options.concurrency, thread_name_prefix=f"iwork-mc-{self.name}"
        )
        self._stopping.clear()
        if self._options.receipt_poll_interval_s > 0:
            self._poller = asyncio.create_task(self._poll_forever())

    async def close(self) -> None:
        """Stop polling, let the SDK calls in flight finish, release the threads."""
        self._stopping.set()
        if self._poller is not None:
            await asyncio.gather(self._poller, return_exceptions=True)
            self._poller = None
        if self._executor is not None:
            executor, self._executor = self._executor, None
            await asyncio.get_running_loop().run_in_executor(None, executor.shutdown)

    async def _call(self, function: Callable[..., Any], *args: Any) -> Any:
        if self._executor is None:
            raise TransientChannelError(f"{self.name}: the channel is not open")
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    # -- sending ------------------------------------------------------------

    async def send(self, message: Message, text: str) -> Submitted:
        try:
            request = self.provider.request_for(message)
        except ProviderRefused as exc:
            raise PermanentChannelError(f"{self.name}: {exc}") from None
        earlier = await self._earlier_submission(message)
        if earlier is not None:
            return earlier
        await self.store.add_segments(
            message.id, attempt=message.attempts, channel=self.name, total=1, now_ms=self._now_ms()
        )
        backoff = self._options.throttle_backoff_s
        for throttled in range(self._options.throttle_retries + 1):
            try:
                carrier_id: str = await self._call(self.provider.submit, request)
            except ProviderRefused as exc:
                self.last_error = exc.code
                if exc.outcome is Outcome.THROTTLED:
                    self.stats["throttled"] += 1
                    if throttled < self._options.throttle_retries:
                        pause = backoff * 2**throttled
                        await self.store.note(
                            message.id,
                            now_ms=self._now_ms(),
                            kind="throttled",
                            detail={"channel": self.name, "code": exc.code, "retry_in_s": pause},
                        )
                        await asyncio.sleep(pause)
                        continue
                self.stats["refused"] += 1
                await self._refused(message, str(exc))
                if exc.outcome is Outcome.PERMANENT:
                    raise PermanentChannelError(f"{self.provider.kind} refused: {exc}") from None
                raise TransientChannelError(f"{self.provider.kind} answered {exc}") from None
            except ProviderUnreachable as exc:
                self.last_error = str(exc)
                if exc.in_doubt:
                    self.stats["in_doubt"] += 1
                    raise InDoubt(
                        f"{self.provider.kind}: {exc}", self._options.in_doubt_resend_s
                    ) from None
                self.stats["unreachable"] += 1
                await self._refused(message, str(exc))
                raise TransientChannelError(f"{self.provider.kind}: {exc}") from None
            self.stats["submitted"] += 1
            await self.store.segment_submitted(
                message.id,
                attempt=message.attempts,
                part=1,
                carrier_id=carrier_id,
                now_ms=self._now_ms(),
            )
            return Submitted(carrier_id)
        raise AssertionError("unreachable: the last throttled try raises")  # pragma: no cover

    async def _earlier_submission(self, message: Message) -> Submitted | None:
        """Settle what an earlier attempt on this channel left behind, before sending again.

        Submitted before a crash (the id recorded, the status not): never resend.
        In doubt (no answer came): resend, and say it may be a duplicate.
        """
        if message.attempts <= 1:
            return None
        mine = [s for s in await self.store.segments(message.id) if s.channel == self.name]
        if not mine:
            return None
        last = max(mine, key=lambda s: s.attempt)
        if last.carrier_id is not None:
            await self.store.note(
                message.id,
                now_ms=self._now_ms(),
                kind="already_submitted",
                detail={"attempt": last.attempt, "carrier_ids": last.carrier_id},
            )
            return Submitted(last.carrier_id)
        if last.state is SegmentState.PENDING:
            await self.store.note(
                message.id,
                now_ms=self._now_ms(),
                kind="possible_duplicate",
                detail={
                    "channel": self.name,
                    "attempt": message.attempts,
                    "in_doubt_attempt": last.attempt,
                    "reason": "an earlier submission got no answer; the provider may have it",
                },
            )
        return None

    async def _refused(self, message: Message, reason: str) -> None:
        await self.store.segment_refused(
            message.id, attempt=message.attempts, part=1, error=reason, now_ms=self._now_ms()
        )

    # -- receipts -------------------------------------------------------------

    async def poll_receipts(self) -> int:
        """Ask the provider for receipts once (one page); returns how many were recorded."""
        awaiting: list[AwaitingReceipt] = []
        if self.provider.polls_by_id:
            awaiting = await self.store.awaiting_receipts(
                self.name, after=self._cursor, limit=POLL_PAGE
            )
            # A short page ends the round: the next one starts from the oldest again.
            self._cursor = awaiting[-1].cursor if len(awaiting) == POLL_PAGE else (0, 0, 0)
            if not awaiting:
                return 0
        receipts: list[ProviderReceipt] = await self._call(self.provider.receipts, awaiting)
        for receipt in receipts:
            now_ms = self._now_ms()
            outcome = await self.store.apply_receipt(
                channel=self.name,
                carrier_id=receipt.carrier_id,
                state=receipt.state,
                error=receipt.error,
                now_ms=now_ms,
                detail=receipt.detail,
            )
            metrics.count_receipt(self.name, outcome, now_ms)
            await tracing.receipt(self.store, self.name, outcome, receipt.state.value)
            self.stats["receipts"] += 1
            if not outcome.matched:
                self.stats["unmatched_receipts"] += 1
            elif outcome.duplicate:
                self.stats["duplicate_receipts"] += 1
        return len(receipts)

    async def _poll_forever(self) -> None:
        interval = self._options.receipt_poll_interval_s
        while not self._stopping.is_set():
            try:
                await self.poll_receipts()
            except Exception as exc:  # the provider or the store: try again next round
                self.stats["poll_errors"] += 1
                log.warning("receipt_poll_failed", channel=self.name, error=_described(exc))
            # A full page means more are waiting: go on at once.
            if self._cursor == (0, 0, 0):
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stopping.wait(), timeout=interval)

    def _now_ms(self) -> int:
        return int(self._clock() * 1000)


def _described(exc: BaseException) -> str:
    if isinstance(exc, ProviderRefused | ProviderUnreachable):
        return str(exc)
    return type(exc).__name__


def in_doubt(error_text: str) -> bool:
    """Whether a transport error the SDKs report (as requests/urllib3 text) happened after
    the request went out: a read timeout or a dropped answer, not a refused connection."""
    text = error_text.lower()
    if "failed to establish a new connection" in text or "connecttimeout" in text:
        return False
    return any(sign in text for sign in ("read timed out", "remotedisconnected", "aborted"))


def transport_reason(text: str) -> str:
    """The SDK's transport error in a few words.  Never the SDK's own text: urllib3's
    names the request URL, whose query string holds the phone number."""
    lowered = text.lower()
    if "read timed out" in lowered:
        return "no answer in time (read timeout)"
    if "connection refused" in lowered or "failed to establish" in lowered:
        return "connection refused"
    if "timed out" in lowered:
        return "connect timeout"
    if "aborted" in lowered or "remotedisconnected" in lowered or "reset" in lowered:
        return "the connection dropped before the answer"
    return "transport error"
