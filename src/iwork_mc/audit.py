"""The audit trail: who changed what, and when (pure).

Every change by an operator (the CLI, as the OS user; the console) or by an
app (the signed REST API, as its app_key) to apps, secrets, callback URLs,
templates, opt-outs, retries and purges is one :class:`AuditRecord`.  The
functions below are the one home of each record's action, target and detail;
the store writes the record in the same transaction as the change it
describes, and only when the change was made.

A record never holds a secret, a full phone number (opt-outs show the masked
number) or a callback URL's query or credentials.
"""

from __future__ import annotations

import getpass
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from iwork_mc.privacy import mask_phone

if TYPE_CHECKING:
    from iwork_mc.templates import Template

__all__ = [
    "AuditAction",
    "AuditQuery",
    "AuditRecord",
    "app_actor",
    "app_created",
    "app_enabled",
    "app_rate_set",
    "callback_url_set",
    "message_requeued",
    "messages_purged",
    "operator_actor",
    "opt_out_added",
    "opt_out_removed",
    "secret_rotated",
    "template_changed",
    "template_deleted",
]


class AuditAction(StrEnum):
    APP_CREATE = "app.create"  #: An operator created an app
    APP_DISABLE = "app.disable"  #: Calls with the app's key are refused from now on
    APP_ENABLE = "app.enable"  #: A disabled app may call again
    SECRET_ROTATE = "app.rotate_secret"  #: A new secret; the old one valid for a grace period
    CALLBACK_SET = "app.callback_set"  #: The status callback URL was set or changed
    CALLBACK_CLEAR = "app.callback_clear"  #: The status callback URL was removed
    RATE_SET = "app.rate_set"  #: The app's own flow-control rate was set, or cleared (defaults)
    TEMPLATE_CREATE = "template.create"  #: A template was added
    TEMPLATE_UPDATE = "template.update"  #: A template's body or selection changed
    TEMPLATE_DELETE = "template.delete"  #: A template was removed
    TEMPLATE_IMPORT = "template.import"  #: A template was added or replaced from a file
    OPT_OUT_ADD = "opt_out.add"  #: A receiver opted out (of one app, or of every app)
    OPT_OUT_REMOVE = "opt_out.remove"  #: An opt-out was lifted
    MESSAGE_RETRY = "message.retry"  #: A failed or expired message was queued again
    MESSAGE_PURGE = "message.purge"  #: Ended messages were deleted by an operator
    SIGN_IN = "console.sign_in"  #: An operator signed in to the console


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditRecord:
    """One change: ``actor`` did ``action`` to ``target`` at ``at_ms``."""

    at_ms: int
    #: ``operator:<name>`` or ``app:<app_key>``.
    actor: str
    action: AuditAction
    #: What was changed, e.g. ``app:12345678``, ``template:welcome``.
    target: str
    detail: Mapping[str, Any] = field(default_factory=dict)
    #: Assigned by the store; increasing.
    id: int = 0


@dataclass(frozen=True, kw_only=True, slots=True)
class AuditQuery:
    """Filters of :meth:`Store.list_audit`; ``None`` means "any".  Newest first."""

    since_ms: int | None = None
    actor: str | None = None
    action: AuditAction | None = None
    #: Only records with an id below this (the previous page's last id).
    before_id: int | None = None
    limit: int = 100


def operator_actor(name: str | None = None) -> str:
    """The actor of an operator's change: ``name``, or the OS user running the CLI."""
    if name is None:
        try:
            name = getpass.getuser()
        except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER
            name = "unknown"
    return f"operator:{name}"


def app_actor(app_key: str) -> str:
    """The actor of a change an app made through the signed REST API."""
    return f"app:{app_key}"


def app_created(actor: str, at_ms: int, *, app_key: str, name: str) -> AuditRecord:
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.APP_CREATE, target=f"app:{app_key}",
        detail={"name": name},
    )  # fmt: skip


def app_enabled(actor: str, at_ms: int, *, app_key: str, enabled: bool) -> AuditRecord:
    action = AuditAction.APP_ENABLE if enabled else AuditAction.APP_DISABLE
    return AuditRecord(at_ms=at_ms, actor=actor, action=action, target=f"app:{app_key}")


def secret_rotated(
    actor: str, at_ms: int, *, app_key: str, previous_valid_until_ms: int
) -> AuditRecord:
    """Never the secret itself: only until when the previous one stays valid."""
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.SECRET_ROTATE, target=f"app:{app_key}",
        detail={"previous_valid_until_ms": previous_valid_until_ms},
    )  # fmt: skip


def app_rate_set(
    actor: str, at_ms: int, *, app_key: str, rate_limit: float | None, rate_burst: int | None
) -> AuditRecord:
    """The app's own rate and burst; ``None`` for both: back on the defaults."""
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.RATE_SET, target=f"app:{app_key}",
        detail={"rate_limit": rate_limit, "rate_burst": rate_burst},
    )  # fmt: skip


def callback_url_set(actor: str, at_ms: int, *, app_key: str, url: str | None) -> AuditRecord:
    """Set (or with ``None`` clear) a callback URL; its query and credentials are left out."""
    if url is None:
        return AuditRecord(
            at_ms=at_ms, actor=actor, action=AuditAction.CALLBACK_CLEAR, target=f"app:{app_key}"
        )
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.CALLBACK_SET, target=f"app:{app_key}",
        detail={"url": _shown_url(url)},
    )  # fmt: skip


def template_changed(
    actor: str, at_ms: int, action: AuditAction, template: Template
) -> AuditRecord:
    """A template created, updated or imported: its selection key and a digest of its body.

    The body is summed up by its length and a short SHA-256, enough to tell
    versions apart without copying the text into the trail.
    """
    detail = {
        "app_key": template.app_key,
        "source": template.source,
        "action": template.action,
        "event_type": template.event_type,
        "body_sha256": hashlib.sha256(template.body.encode()).hexdigest()[:16],
        "body_chars": len(template.body),
    }
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=action, target=f"template:{template.name}", detail=detail
    )


def template_deleted(actor: str, at_ms: int, *, name: str) -> AuditRecord:
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.TEMPLATE_DELETE, target=f"template:{name}"
    )


def opt_out_added(actor: str, at_ms: int, *, app_key: str, receiver: str) -> AuditRecord:
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.OPT_OUT_ADD,
        target=_opt_out_target(app_key, receiver),
    )  # fmt: skip


def opt_out_removed(actor: str, at_ms: int, *, app_key: str, receiver: str) -> AuditRecord:
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.OPT_OUT_REMOVE,
        target=_opt_out_target(app_key, receiver),
    )  # fmt: skip


def message_requeued(
    actor: str, at_ms: int, *, app_key: str, msg_key: str, expires_at_ms: int
) -> AuditRecord:
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.MESSAGE_RETRY,
        target=f"message:{app_key}/{msg_key}", detail={"expires_at_ms": expires_at_ms},
    )  # fmt: skip


def messages_purged(actor: str, at_ms: int, *, selection: Mapping[str, Any]) -> AuditRecord:
    """One batch of a purge; the store adds ``deleted`` (how many) to the detail."""
    target = "messages:" + ",".join(f"{k}={v}" for k, v in selection.items() if v is not None)
    return AuditRecord(
        at_ms=at_ms, actor=actor, action=AuditAction.MESSAGE_PURGE, target=target,
        detail=dict(selection),
    )  # fmt: skip


def _opt_out_target(app_key: str, receiver: str) -> str:
    return f"opt_out:{app_key}/{mask_phone(receiver)}"


def _shown_url(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or ""
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))
