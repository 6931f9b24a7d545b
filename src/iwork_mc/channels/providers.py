"""The cloud SMS channel kinds by name: their options, and building their channels.

Settings (config.py) check a ``[channels.NAME]`` table of these kinds with
:func:`options_for` at load time, so a wrong or incomplete channel stops
``run``/``worker`` at start with an error naming the channel and the option;
the worker builds its channels with :func:`build`.  Importing this module does
not import the providers' SDKs.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Mapping
from typing import Any

from iwork_mc.channels import aliyun_sms, tencent_sms
from iwork_mc.channels.aliyun_sms import AliyunSMS, AliyunSMSOptions
from iwork_mc.channels.cloud_sms import (
    CloudSMSChannel,
    CloudSMSOptions,
    Provider,
    ProviderReceipt,
    parse_options,
)
from iwork_mc.channels.tencent_sms import TencentSMS, TencentSMSOptions
from iwork_mc.store.base import Store

__all__ = ["KINDS", "PARSERS", "PUSHES", "build", "options_for"]

#: kind → (its options class, the provider built from them).
KINDS: Mapping[str, tuple[type[CloudSMSOptions], Callable[[Any], Provider]]] = {
    "aliyun_sms": (AliyunSMSOptions, AliyunSMS),
    "tencent_sms": (TencentSMSOptions, TencentSMS),
}

#: kind → (how its receipt pushes parse, what the provider wants in answer).
PUSHES: Mapping[str, tuple[Callable[[Any], list[ProviderReceipt]], Mapping[str, Any]]] = {
    "aliyun_sms": (aliyun_sms.pushed_receipts, aliyun_sms.PUSH_ANSWER),
    "tencent_sms": (tencent_sms.pushed_receipts, tencent_sms.PUSH_ANSWER),
}


def options_for(kind: str, options: Mapping[str, Any]) -> CloudSMSOptions:
    """The channel's checked options.  Raises ChannelOptionError naming the option."""
    return parse_options(KINDS[kind][0], options)


#: kind → the parser config.py checks a ``[channels.NAME]`` table of that kind with.
PARSERS: Mapping[str, Callable[[Mapping[str, Any]], object]] = {
    kind: functools.partial(options_for, kind) for kind in KINDS
}


def build(
    kind: str,
    name: str,
    options: Mapping[str, Any],
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
) -> CloudSMSChannel:
    """A channel of a cloud SMS kind (its SDK imported now)."""
    provider = KINDS[kind][1](options_for(kind, options))
    return CloudSMSChannel(provider, store, name=name, clock=clock)
