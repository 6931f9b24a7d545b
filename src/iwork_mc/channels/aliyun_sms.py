"""Alibaba Cloud SMS (Dysmsapi 2017-05-25), through its official Python SDK.

One message is one ``SendSms`` call: the receiver in ``PhoneNumbers`` (national
digits for +86, country code and number otherwise), the channel's
``SignName``, the ``TemplateCode`` mapped from the message's iwork-mc template,
and the seed's ``json_data`` exactly as ``TemplateParam``.  The answer's
``BizId`` is the carrier id; ``QuerySendDetails`` (by number, day and BizId)
tells what became of it: ``SendStatus`` 3 delivered, 2 failed (``ErrCode``),
1 still waiting.

:data:`ERRORS` sorts the provider's error codes (docs/howto/aliyun-sms.md
shows the same table); a code it does not list is transient, so a new code
costs retries, not messages.  The SDK is imported only when a channel of this
kind is built.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from types import MappingProxyType
from typing import Any

from iwork_mc.channels.cloud_sms import (
    CloudSMSOptions,
    Outcome,
    ProviderReceipt,
    ProviderRefused,
    ProviderUnreachable,
    classify,
    in_doubt,
    require_sdk,
    split_endpoint,
    template_for,
    transport_reason,
)
from iwork_mc.messages import Message
from iwork_mc.segments import AwaitingReceipt, SegmentState

__all__ = [
    "DEFAULT_ENDPOINT",
    "ERRORS",
    "PUSH_ANSWER",
    "AliyunSMS",
    "AliyunSMSOptions",
    "error_class",
    "pushed_receipts",
]

KIND = "aliyun_sms"
DEFAULT_ENDPOINT = "dysmsapi.aliyuncs.com"
_P, _T, _THROTTLED = Outcome.PERMANENT, Outcome.TRANSIENT, Outcome.THROTTLED

#: The provider's error codes (SendSms, QuerySendDetails and the API gateway) and their class.
ERRORS: Mapping[str, Outcome] = MappingProxyType(
    {
        "isv.BUSINESS_LIMIT_CONTROL": _THROTTLED,  # per-number rate limit (minute/hour/day)
        "isv.DAY_LIMIT_CONTROL": _THROTTLED,  # the account's daily limit
        "Throttling.User": _THROTTLED,  # API flow control
        "Throttling.Api": _THROTTLED,
        "Throttling": _THROTTLED,
        "isp.SYSTEM_ERROR": _T,
        "isp.GATEWAY_ERROR": _T,
        "ServiceUnavailable": _T,
        "InternalError": _T,
        "isv.AMOUNT_NOT_ENOUGH": _T,  # a top-up fixes it
        "isv.OUT_OF_SERVICE": _T,  # the account is in arrears: a top-up fixes it
        "SignatureNonceUsed": _T,
        "InvalidTimeStamp.Expired": _T,  # the host's clock: fixable, not the message's fault
        "isv.MOBILE_NUMBER_ILLEGAL": _P,
        "isv.MOBILE_COUNT_OVER_LIMIT": _P,
        "isv.DOMESTIC_NUMBER_NOT_SUPPORTED": _P,
        "isv.BLACK_KEY_CONTROL_LIMIT": _P,  # the text contains a blocked word
        "isv.SMS_CONTENT_ILLEGAL": _P,
        "isv.SMS_TEMPLATE_ILLEGAL": _P,
        "isv.SMS_SIGNATURE_ILLEGAL": _P,
        "isv.SMS_SIGN_ILLEGAL": _P,
        "isv.SMS_SIGNATURE_SCENE_ILLEGAL": _P,
        "isv.TEMPLATE_MISSING_PARAMETERS": _P,
        "isv.TEMPLATE_PARAMS_ILLEGAL": _P,
        "isv.INVALID_JSON_PARAM": _P,
        "isv.INVALID_PARAMETERS": _P,
        "isv.PARAM_LENGTH_LIMIT": _P,
        "isv.PARAM_NOT_SUPPORT_URL": _P,
        "isv.EXTEND_CODE_ERROR": _P,
        "isv.DENY_IP_RANGE": _P,
        "isv.PRODUCT_UN_SUBSCRIPT": _P,
        "isv.PRODUCT_UNSUBSCRIBE": _P,
        "isv.ACCOUNT_NOT_EXISTS": _P,
        "isv.ACCOUNT_ABNORMAL": _P,
        "isp.RAM_PERMISSION_DENY": _P,
        "SignatureDoesNotMatch": _P,
        "InvalidAccessKeyId.NotFound": _P,
        "InvalidAccessKeyId.Inactive": _P,
        "MissingParameter": _P,
    }
)


def error_class(code: str) -> Outcome:
    """The class of an Alibaba Cloud error code (unknown codes are transient)."""
    return classify(ERRORS, code)


@dataclass(frozen=True, kw_only=True)
class AliyunSMSOptions(CloudSMSOptions):
    """``kind = "aliyun_sms"``: ``templates`` maps template names to ``SMS_…`` TemplateCodes."""

    access_key_id: str = field(repr=False)
    access_key_secret: str = field(repr=False)


#: The provider's dates (SendDate) are China Standard Time days.
_CHINA = timedelta(hours=8)


def phone_number(e164: str) -> str:
    """The PhoneNumbers form: national digits in China, country code and number elsewhere."""
    return e164.removeprefix("+86") if e164.startswith("+86") else e164.lstrip("+")


@dataclass(frozen=True, slots=True)
class _Request:
    phone: str
    template_code: str
    template_param: str | None
    out_id: str


class AliyunSMS:
    """The :class:`~iwork_mc.channels.cloud_sms.Provider` for Alibaba Cloud SMS."""

    kind = KIND
    polls_by_id = True

    def __init__(self, options: AliyunSMSOptions) -> None:
        require_sdk("alibabacloud_dysmsapi20170525.models", KIND)
        self.options = options
        self._protocol, self._host = split_endpoint(options.endpoint or DEFAULT_ENDPOINT)
        self._local = threading.local()

    def health(self) -> dict[str, Any]:
        return {"endpoint": f"{self._protocol}://{self._host}"}

    def _client(self) -> Any:
        # One SDK client per pool thread: the SDK keeps per-client state.
        client = getattr(self._local, "client", None)
        if client is None:
            from alibabacloud_dysmsapi20170525.client import Client
            from alibabacloud_tea_openapi import models as open_api

            timeout_ms = int(self.options.timeout_s * 1000)
            client = Client(
                open_api.Config(
                    access_key_id=self.options.access_key_id,
                    access_key_secret=self.options.access_key_secret,
                    endpoint=self._host,
                    protocol=self._protocol,
                    read_timeout=timeout_ms,
                    connect_timeout=timeout_ms,
                )
            )
            self._local.client = client
        return client

    def _runtime(self) -> Any:
        from darabonba.runtime import RuntimeOptions

        timeout_ms = int(self.options.timeout_s * 1000)
        # No SDK retries: the worker owns retries, and a blind resend could duplicate an SMS.
        return RuntimeOptions(
            autoretry=False, max_attempts=0, read_timeout=timeout_ms, connect_timeout=timeout_ms
        )

    def request_for(self, message: Message) -> _Request:
        code = template_for(self.options.templates, message.template)
        if not isinstance(code, str):
            raise ProviderRefused(
                "NO_TEMPLATE_CODE",
                f"no TemplateCode for template {message.template or '(default)'!r}",
                Outcome.PERMANENT,
            )
        return _Request(
            phone=phone_number(message.event.mobile_receiver),
            template_code=code,
            template_param=message.event.json_data or None,
            out_id=f"{message.id}-{message.attempts}",
        )

    def submit(self, request: _Request) -> str:
        from alibabacloud_dysmsapi20170525 import models

        sdk_request = models.SendSmsRequest(
            phone_numbers=request.phone,
            sign_name=self.options.sign_name,
            template_code=request.template_code,
            template_param=request.template_param,
            out_id=request.out_id,
        )
        body = self._call("send_sms_with_options", sdk_request)
        biz_id = body.get("BizId")
        if not biz_id:
            raise ProviderRefused("NO_BIZ_ID", "the answer named no BizId", Outcome.TRANSIENT)
        return str(biz_id)

    def receipts(self, awaiting: Sequence[AwaitingReceipt]) -> list[ProviderReceipt]:
        from alibabacloud_dysmsapi20170525 import models

        found = []
        for submission in awaiting:
            day = datetime.fromtimestamp(submission.updated_at_ms / 1000, UTC) + _CHINA
            query = models.QuerySendDetailsRequest(
                phone_number=phone_number(submission.receiver),
                biz_id=submission.carrier_id,
                send_date=day.strftime("%Y%m%d"),
                page_size=10,
                current_page=1,
            )
            try:
                body = self._call("query_send_details_with_options", query)
            except ProviderRefused as exc:
                if exc.outcome is Outcome.THROTTLED:
                    break  # the rest waits for the next round
                continue
            receipt = receipt_from(submission.carrier_id, body)
            if receipt is not None:
                found.append(receipt)
        return found

    def _call(self, method: str, request: Any) -> dict[str, Any]:
        """One SDK call; the answer's body, or ProviderRefused / ProviderUnreachable."""
        from darabonba.exceptions import ResponseException, UnretryableException
        from Tea.exceptions import TeaException

        try:
            response = getattr(self._client(), method)(request, self._runtime())
        except ResponseException as exc:  # an HTTP error answer (4xx/5xx) with a Code
            code = str(exc.code or f"HTTP{exc.status_code}")
            raise ProviderRefused(code, str(exc.message or ""), error_class(code)) from None
        except UnretryableException as exc:  # no answer
            reason = str(exc.inner_exception) if exc.inner_exception is not None else repr(exc)
            raise ProviderUnreachable(transport_reason(reason), in_doubt=in_doubt(reason)) from None
        except TeaException as exc:  # the SDK refused to build the request
            code = str(getattr(exc, "code", None) or "SDK_ERROR")
            raise ProviderRefused(code, type(exc).__name__, error_class(code)) from None
        body: dict[str, Any] = response.body.to_map() if response.body is not None else {}
        code = str(body.get("Code", ""))
        if code != "OK":
            raise ProviderRefused(
                code or "NO_CODE", str(body.get("Message", "")), error_class(code)
            )
        return body


def receipt_from(biz_id: str, body: Mapping[str, Any]) -> ProviderReceipt | None:
    """The receipt a QuerySendDetails answer holds for ``biz_id``; ``None`` while waiting."""
    details = (body.get("SmsSendDetailDTOs") or {}).get("SmsSendDetailDTO") or []
    for detail in details:
        status = detail.get("SendStatus")
        info = {
            "source": "QuerySendDetails",
            "SendStatus": status,
            "ErrCode": detail.get("ErrCode"),
            "ReceiveDate": detail.get("ReceiveDate"),
        }
        if status == 3:
            return ProviderReceipt(biz_id, SegmentState.DELIVERED, None, info)
        if status == 2:
            error = str(detail.get("ErrCode") or "failed")
            return ProviderReceipt(biz_id, SegmentState.UNDELIVERABLE, error, info)
    return None


#: What the provider expects in answer to a receipt push it may forget.
PUSH_ANSWER: Mapping[str, Any] = MappingProxyType({"code": 0, "msg": "成功"})


def pushed_receipts(body: Any) -> list[ProviderReceipt]:
    """The receipts of one SmsReport push: a JSON array of reports.

    Raises:
        ValueError: the body is not a list of reports with a ``biz_id`` and ``success``.
    """
    if not isinstance(body, list):
        raise ValueError("expected a JSON array of reports")
    found = []
    for report in body:
        if not isinstance(report, dict) or not isinstance(report.get("biz_id"), str):
            raise ValueError("each report needs a biz_id")
        success = report.get("success")
        if not isinstance(success, bool):
            raise ValueError("each report needs success: true or false")
        detail = {
            "source": "push",
            "err_code": report.get("err_code"),
            "report_time": report.get("report_time"),
        }
        error = None if success else str(report.get("err_code") or "failed")
        state = SegmentState.DELIVERED if success else SegmentState.UNDELIVERABLE
        found.append(ProviderReceipt(report["biz_id"], state, error, detail))
    return found
