"""Settings of an ``apprise`` channel: one Apprise URL, and where the receiver goes in it.

An Apprise URL names a service and its credentials (``twilio://SID:token@from``,
``dingtalk://token/``, ``mqtt://host/topic``, ``json://host/path`` …).  For a
service that takes a phone number, write a placeholder where the number goes;
each message fills in its receiver:

- ``{receiver}``: the number in E.164 digits without ``+`` (``8613888888888``);
- ``{receiver_national}``: the national number (``13888888888``).

A URL without a placeholder goes to the same place for every message (a team's
chat robot, an ntfy or MQTT topic): the receiver is then only in the text, if
the template puts it there.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import apprise
import phonenumbers

from iwork_mc.channels.options import ChannelOptionError, check_known, number, text

__all__ = ["PLACEHOLDERS", "SAMPLE_RECEIVER", "AppriseConfig", "fill_receiver"]

#: The receiver placeholders an Apprise URL may hold.
PLACEHOLDERS = ("{receiver}", "{receiver_national}")
#: The number a URL is checked with at start (the sandbox's "delivered" number).
SAMPLE_RECEIVER = "+8613800000000"


def fill_receiver(url: str, receiver: str) -> str:
    """``url`` with its placeholders replaced by ``receiver`` (E.164, ``+`` first).

    Raises:
        ValueError: ``receiver`` is not a phone number.
    """
    if "{receiver" not in url:
        return url
    try:
        national = str(phonenumbers.parse(receiver).national_number)
    except phonenumbers.NumberParseException as exc:
        raise ValueError(str(exc)) from None
    return url.replace("{receiver}", receiver.lstrip("+")).replace("{receiver_national}", national)


@dataclass(frozen=True, kw_only=True)
class AppriseConfig:
    """One Apprise URL and how a notification is sent to it (docs/howto/apprise.md)."""

    url: str = field(repr=False)  # it holds the service's tokens
    #: The notification's title, for services that show one (e-mail, push); may be empty.
    title: str = ""
    #: How long one notification may take; then it counts as not sent (and is retried).
    timeout_s: float = 30.0
    #: Notifications sent at once (each runs on its own thread: Apprise is synchronous).
    concurrency: int = 4

    @property
    def per_receiver(self) -> bool:
        """Whether the URL takes each message's receiver."""
        return any(placeholder in self.url for placeholder in PLACEHOLDERS)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> AppriseConfig:
        """Parse a ``[channels.NAME]`` table; :class:`ChannelOptionError` names a bad option.

        The URL is handed to Apprise (filled with :data:`SAMPLE_RECEIVER`), so
        an unknown service or a URL its service refuses stops the start.
        """
        check_known(options, {"url", "title", "timeout_s", "concurrency"})
        config = cls(
            url=text(options, "url").strip(),
            title=text(options, "title", default=""),
            timeout_s=number(options, "timeout_s", default=30.0, low=0.1, high=300.0),
            concurrency=int(number(options, "concurrency", default=4, low=1, high=64)),
        )
        if config.service_name() is None:
            raise ChannelOptionError(
                "url",
                "Apprise does not accept it: an unknown service, or a part the service"
                " needs is missing or malformed (check it with the apprise command)",
            )
        return config

    def service_name(self) -> str | None:
        """The service's name (``Twilio``, ``MQTT``…), or ``None`` if Apprise refuses the URL."""
        plugin = apprise.Apprise.instantiate(fill_receiver(self.url, SAMPLE_RECEIVER))
        return None if plugin is None else str(plugin.service_name)

    def display_url(self) -> str:
        """The URL with its secrets masked by Apprise, placeholders kept, fit for /healthz."""
        plugin = apprise.Apprise.instantiate(fill_receiver(self.url, SAMPLE_RECEIVER))
        if plugin is None:
            return "(invalid)"
        shown = str(plugin.url(privacy=True))  # type: ignore[no-untyped-call]
        return shown.replace(SAMPLE_RECEIVER.lstrip("+"), "{receiver}").replace(
            str(phonenumbers.parse(SAMPLE_RECEIVER).national_number), "{receiver_national}"
        )
