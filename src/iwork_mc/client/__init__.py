"""The iwork-mc Python SDK for ``alibaba.iwork.mc.msg.sendmobile``.

Two styles over one core:

* TOP-style, like the official SDKs: :class:`TopClient` / :class:`AsyncTopClient`
  with ``execute(request)`` and request classes such as
  :class:`AlibabaIworkMcMsgSendmobileRequest`.
* Pythonic: :class:`Client` / :class:`AsyncClient` with
  ``send_mobile(mobile_receiver=…, json_data=…, …) -> SendResult`` and safe,
  idempotent retries.

Exceptions are drawn as a tree in ``iwork_mc.client._exceptions``; catch
:class:`SDKError` for all of them.
"""

from __future__ import annotations

from iwork_mc.client._async import AsyncClient, AsyncTopClient
from iwork_mc.client._base import DEFAULT_PARTNER_ID, Clock, SendResult
from iwork_mc.client._exceptions import (
    HTTPStatusError,
    InvalidAnswer,
    InvalidRequest,
    MessageRejected,
    NetworkError,
    SDKError,
    TopApiError,
    TransportError,
    TransportTimeout,
)
from iwork_mc.client._requests import (
    AlibabaIworkMcMsgSendmobileRequest,
    JSONStyle,
    MobileReceiverMessageEvent,
    TopRequest,
)
from iwork_mc.client._rest import RestAPIError as RestAPIError
from iwork_mc.client._rest import RestClient as RestClient
from iwork_mc.client._sync import Client, TopClient

__all__ = [
    "DEFAULT_PARTNER_ID",
    "AlibabaIworkMcMsgSendmobileRequest",
    "AsyncClient",
    "AsyncTopClient",
    "Client",
    "Clock",
    "HTTPStatusError",
    "InvalidAnswer",
    "InvalidRequest",
    "JSONStyle",
    "MessageRejected",
    "MobileReceiverMessageEvent",
    "NetworkError",
    "RestAPIError",
    "RestClient",
    "SDKError",
    "SendResult",
    "TopApiError",
    "TopClient",
    "TopRequest",
    "TransportError",
    "TransportTimeout",
]

# Show the public path in reprs, tracebacks and docs (as httpx does).
for _name in __all__:
    _value = globals()[_name]
    if isinstance(_value, type):
        _value.__module__ = __name__
del _name, _value
