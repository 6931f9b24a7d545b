"""The cloud SMS channel kinds by name: their options, and building their channels.

Settings (config.py) check a ``[channels.NAME]`` table of these kinds with
:func:`options_for` at load time, so a wrong or incomplete channel stops
``run``/``worker`` at start with an error naming the channel and the option;
the worker builds its channels with :func:`build`.  Importing this module does
not import the providers' SDKs.
"""

from __future__ import annotations

import dataclasses
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
    env_name,
    parse_options,
)
from iwork_mc.channels.tencent_sms import TencentSMS, TencentSMSOptions
from iwork_mc.store.base import Store

__all__ = ["KINDS", "PUSHES", "build", "options_for", "with_environment"]

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


def with_environment(
    kind: str, name: str, options: Mapping[str, Any], environ: Mapping[str, str]
) -> dict[str, Any]:
    """``options`` with the text options it lacks taken from ``IWORK_MC_CHANNEL_<NAME>_<OPTION>``
    (secrets kept out of the settings file); other kinds' options are returned unchanged."""
    given = dict(options)
    if kind not in KINDS:
        return given
    for option in dataclasses.fields(KINDS[kind][0]):
        value = environ.get(env_name(name, option.name))
        if option.name not in given and option.type in ("str", str) and value:
            given[option.name] = value
    return given


def options_for(kind: str, name: str, options: Mapping[str, Any]) -> CloudSMSOptions:
    """The channel's checked options.  Raises ValueError naming the channel and option."""
    return parse_options(KINDS[kind][0], name, options)


def build(
    kind: str,
    name: str,
    options: Mapping[str, Any],
    store: Store,
    *,
    clock: Callable[[], float] = time.time,
) -> CloudSMSChannel:
    """A channel of a cloud SMS kind (its SDK imported now)."""
    provider = KINDS[kind][1](options_for(kind, name, options))
    return CloudSMSChannel(provider, store, name=name, clock=clock)
