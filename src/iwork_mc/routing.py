"""Routing: which named channels a message tries, in order (pure).

Routes are checked in the order they are configured and the first that
matches wins (like firewall rules).  A route matches when each of its lists is
empty ("any") or contains the message's value: ``prefixes`` are E.164 prefixes
(``+86138``), ``regions`` ISO 3166 codes (``CN``), ``templates`` template
names or shell-style patterns (``door-*``; ``""`` is the default template).
Its ``channels`` are tried in order: the first; on a permanent failure, or
when its retries run out, the next (a *fallback*, written to the timeline).

A route with ``weights`` (one per channel, e.g. ``(70, 30)``) splits its
traffic: each message's first channel is drawn by weight from a hash of the
message's id, so the draw is the same on every retry and in every worker; the
other channels follow in the order written, as fallbacks.

Without configured routes every message takes the single route ``default``
to the one configured channel.
"""

from __future__ import annotations

import functools
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from fnmatch import fnmatchcase

import phonenumbers

__all__ = ["DEFAULT_ROUTE", "NO_ROUTE", "Route", "choose_route", "region_of"]

#: The business error_code of a message no route accepts.
NO_ROUTE = "NO_ROUTE"
DEFAULT_ROUTE = "default"


@dataclass(frozen=True, kw_only=True, slots=True)
class Route:
    name: str
    channels: tuple[str, ...]
    prefixes: tuple[str, ...] = ()
    regions: tuple[str, ...] = ()
    templates: tuple[str, ...] = ()
    #: One non-negative weight per channel: a weighted split of first choices; empty: none.
    weights: tuple[int, ...] = ()

    def matches(self, receiver: str, region: str | None, template: str) -> bool:
        return (
            (not self.prefixes or receiver.startswith(self.prefixes))
            and (not self.regions or region in self.regions)
            and (not self.templates or any(fnmatchcase(template, p) for p in self.templates))
        )

    def split_bucket(self, key: int) -> int:
        """Where message ``key`` falls in ``[0, sum(weights))``: stable across processes."""
        digest = hashlib.blake2b(f"{self.name}:{key}".encode(), digest_size=8).digest()
        return int.from_bytes(digest, "big") % sum(self.weights)

    def order_for(self, key: int) -> tuple[str, ...]:
        """The channels message ``key`` tries, in order (its route steps).

        Without weights, the channels as written.  With weights, the channel
        whose share holds the message's bucket first, then the others as written.
        """
        if not self.weights:
            return self.channels
        bucket = self.split_bucket(key)
        for index, weight in enumerate(self.weights):
            if bucket < weight:
                return (self.channels[index], *self.channels[:index], *self.channels[index + 1 :])
            bucket -= weight
        raise AssertionError("a bucket lies below the sum of the weights")


def choose_route(routes: Sequence[Route], receiver: str, template: str) -> Route | None:
    """The first route matching the message, or ``None`` (answered ``NO_ROUTE``).

    The receiver's region is looked up only when a route asks for regions.
    """
    region = region_of(receiver) if any(route.regions for route in routes) else None
    return next((route for route in routes if route.matches(receiver, region, template)), None)


@functools.lru_cache(maxsize=65_536)
def region_of(receiver: str) -> str | None:
    """The ISO 3166 region of an E.164 number, or ``None`` if it has none."""
    try:
        number = phonenumbers.parse(receiver)
    except phonenumbers.NumberParseException:
        return None
    region: str | None = phonenumbers.region_code_for_number(number)
    return region
