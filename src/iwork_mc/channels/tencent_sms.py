"""Tencent Cloud SMS (API 2021-01-11), through its official Python SDK.

One message is one ``SendSms`` call for one number (E.164) with the channel's
``SmsSdkAppId`` and ``SignName`` and the ``TemplateId`` mapped from the
message's iwork-mc template.  ``TemplateParamSet`` is an ordered list of
strings: the values of the seed's ``json_data`` in the order the mapping's
``params`` names them (or in the object's own order).  The answer's
``SerialNo`` is the carrier id; delivery reports are pulled with
``PullSmsSendStatus`` (a queue per SmsSdkAppId: each report is served once,
so one SmsSdkAppId belongs to one channel).

:data:`ERRORS` sorts the provider's error codes (docs/howto/tencent-sms.md
shows the same table); ``Prefix.*`` entries cover a family, and a code the
table does not know is transient.
"""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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
    "TencentSMS",
    "TencentSMSOptions",
    "error_class",
    "pushed_receipts",
]

KIND = "tencent_sms"
DEFAULT_ENDPOINT = "sms.tencentcloudapi.com"
_P, _T, _THROTTLED = Outcome.PERMANENT, Outcome.TRANSIENT, Outcome.THROTTLED

#: The provider's error codes (per number in SendStatusSet, or for the whole call) and their class.
ERRORS: Mapping[str, Outcome] = MappingProxyType(
    {
        "LimitExceeded.*": _THROTTLED,  # per-number and per-app frequency limits
        "RequestLimitExceeded": _THROTTLED,  # API calls per second
        "RequestLimitExceeded.*": _THROTTLED,
        "InternalError.*": _T,
        "ServerNetworkError": _T,  # an HTTP error answer
        "AuthFailure.SignatureExpire": _T,  # the host's clock: fixable, not the message's fault
        "FailedOperation.InsufficientBalanceInSmsPackage": _T,  # a top-up fixes it
        "UnauthorizedOperation.ServiceSuspendDueToArrears": _T,
        "FailedOperation.MarketingSendTimeConstraint": _T,  # marketing SMS wait for daytime
        "FailedOperation.PhoneNumberInBlacklist": _P,
        "FailedOperation.PhoneNumberOnBlacklist": _P,
        "FailedOperation.SignatureIncorrectOrUnapproved": _P,
        "FailedOperation.TemplateIncorrectOrUnapproved": _P,
        "FailedOperation.ContainSensitiveWord": _P,
        "FailedOperation.FailResolvePacket": _P,
        "FailedOperation.JsonParseFail": _P,
        "InvalidParameter": _P,
        "InvalidParameter.*": _P,
        "InvalidParameterValue.*": _P,
        "MissingParameter": _P,
        "UnsupportedOperation.*": _P,
        "UnauthorizedOperation.*": _P,
        "AuthFailure.*": _P,  # wrong SecretId/SecretKey
    }
)


def error_class(code: str) -> Outcome:
    """The class of a Tencent Cloud error code (unknown codes are transient)."""
    return classify(ERRORS, code)


@dataclass(frozen=True, kw_only=True)
class TencentSMSOptions(CloudSMSOptions):
    """``kind = "tencent_sms"``: ``templates`` maps template names to TemplateIds, each a
    string or a table ``{ id = "…", params = ["json_data key", …] }``."""

    secret_id: str = field(repr=False)
    secret_key: str = field(repr=False)
    #: The SMS application (SmsSdkAppId, ``1400…``).
    sdk_app_id: str
    region: str = "ap-guangzhou"


def template_params(mapped: Any, json_data: str) -> tuple[str, list[str]]:
    """(TemplateId, TemplateParamSet) for a template mapping and the seed's json_data.

    Raises:
        ValueError: the mapping is malformed, or json_data lacks what it names.
    """
    if isinstance(mapped, str):
        template_id, keys = mapped, None
    elif isinstance(mapped, Mapping) and isinstance(mapped.get("id"), str):
        template_id, keys = mapped["id"], mapped.get("params")
        if keys is not None and not (
            isinstance(keys, list) and all(isinstance(k, str) for k in keys)
        ):
            raise ValueError("params must be a list of json_data keys")
    else:
        raise ValueError('a template is a TemplateId or a table { id = "…", params = […] }')
    try:
        data = json.loads(json_data) if json_data else {}
    except ValueError:
        raise ValueError("json_data is not JSON") from None
    if not isinstance(data, dict):
        raise ValueError("json_data is not a JSON object")
    if keys is None:
        return template_id, [_text(v) for v in data.values()]
    missing = [k for k in keys if k not in data]
    if missing:
        raise ValueError(f"json_data has no {', '.join(missing)}")
    return template_id, [_text(data[k]) for k in keys]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


@dataclass(frozen=True, slots=True)
class _Request:
    phone: str
    template_id: str
    params: list[str]
    session_context: str


#: PullSmsSendStatus pages one poll takes at most (100 reports a page).
_PULL_PAGES = 10
_PULL_LIMIT = 100


class TencentSMS:
    """The :class:`~iwork_mc.channels.cloud_sms.Provider` for Tencent Cloud SMS."""

    kind = KIND
    polls_by_id = False

    def __init__(self, options: TencentSMSOptions) -> None:
        require_sdk("tencentcloud.sms.v20210111.models", KIND)
        self.options = options
        self._protocol, self._host = split_endpoint(options.endpoint or DEFAULT_ENDPOINT)
        self._local = threading.local()

    def health(self) -> dict[str, Any]:
        return {"endpoint": f"{self._protocol}://{self._host}", "region": self.options.region}

    def _client(self) -> Any:
        # One SDK client per pool thread: it keeps a requests session.
        client = getattr(self._local, "client", None)
        if client is None:
            from tencentcloud.common import credential
            from tencentcloud.common.profile.client_profile import ClientProfile
            from tencentcloud.common.profile.http_profile import HttpProfile
            from tencentcloud.sms.v20210111 import sms_client

            http = HttpProfile(
                endpoint=self._host, protocol=self._protocol, reqTimeout=self.options.timeout_s
            )
            client = sms_client.SmsClient(
                credential.Credential(self.options.secret_id, self.options.secret_key),
                self.options.region,
                ClientProfile(httpProfile=http),
            )
            self._local.client = client
        return client

    def request_for(self, message: Message) -> _Request:
        mapped = template_for(self.options.templates, message.template)
        if mapped is None:
            raise ProviderRefused(
                "NO_TEMPLATE_ID",
                f"no TemplateId for template {message.template or '(default)'!r}",
                Outcome.PERMANENT,
            )
        try:
            template_id, params = template_params(mapped, message.event.json_data)
        except ValueError as exc:
            raise ProviderRefused("BAD_TEMPLATE_PARAMS", str(exc), Outcome.PERMANENT) from None
        return _Request(
            phone=message.event.mobile_receiver,
            template_id=template_id,
            params=params,
            session_context=f"{message.id}-{message.attempts}",
        )

    def submit(self, request: _Request) -> str:
        from tencentcloud.sms.v20210111 import models

        sdk_request = models.SendSmsRequest()
        sdk_request.PhoneNumberSet = [request.phone]
        sdk_request.SmsSdkAppId = self.options.sdk_app_id
        sdk_request.SignName = self.options.sign_name
        sdk_request.TemplateId = request.template_id
        sdk_request.TemplateParamSet = request.params
        sdk_request.SessionContext = request.session_context
        answer = self._call("SendSms", sdk_request)
        statuses = answer.get("SendStatusSet") or []
        if not statuses:
            raise ProviderRefused("NO_SEND_STATUS", "the answer had no SendStatusSet", _T)
        status = statuses[0]
        code = str(status.get("Code", ""))
        if code != "Ok":
            raise ProviderRefused(
                code or "NO_CODE", str(status.get("Message", "")), error_class(code)
            )
        return str(status["SerialNo"])

    def receipts(self, awaiting: Sequence[AwaitingReceipt]) -> list[ProviderReceipt]:
        from tencentcloud.sms.v20210111 import models

        found: list[ProviderReceipt] = []
        for _ in range(_PULL_PAGES):
            pull = models.PullSmsSendStatusRequest()
            pull.Limit = _PULL_LIMIT
            pull.SmsSdkAppId = self.options.sdk_app_id
            page = self._call("PullSmsSendStatus", pull).get("PullSmsSendStatusSet") or []
            found.extend(receipt_from(report) for report in page)
            if len(page) < _PULL_LIMIT:
                break
        return found

    def _call(self, action: str, request: Any) -> dict[str, Any]:
        """One SDK call; the answer as a dict, or ProviderRefused / ProviderUnreachable."""
        from tencentcloud.common.exception.tencent_cloud_sdk_exception import (
            TencentCloudSDKException,
        )

        try:
            response = getattr(self._client(), action)(request)
        except TencentCloudSDKException as exc:
            code, text = str(exc.get_code() or ""), str(exc.get_message() or "")
            if code == "ClientNetworkError":
                raise ProviderUnreachable(transport_reason(text), in_doubt=in_doubt(text)) from None
            raise ProviderRefused(code, text[:200], error_class(code)) from None
        answer: dict[str, Any] = json.loads(response.to_json_string())
        return answer


def receipt_from(report: Mapping[str, Any]) -> ProviderReceipt:
    """The receipt of one PullSmsSendStatus report."""
    delivered = report.get("ReportStatus") == "SUCCESS"
    detail = {
        "source": "PullSmsSendStatus",
        "ReportStatus": report.get("ReportStatus"),
        "Description": report.get("Description"),
        "UserReceiveTime": report.get("UserReceiveTime"),
    }
    return ProviderReceipt(
        carrier_id=str(report.get("SerialNo", "")),
        state=SegmentState.DELIVERED if delivered else SegmentState.UNDELIVERABLE,
        error=None if delivered else str(report.get("Description") or "FAIL"),
        detail=detail,
    )


#: What the provider expects in answer to a status report push.
PUSH_ANSWER: Mapping[str, Any] = MappingProxyType({"result": 0, "errmsg": "OK"})


def pushed_receipts(body: Any) -> list[ProviderReceipt]:
    """The receipts of one status report push (a JSON array of reports, ``sid`` their
    SerialNo).

    Raises:
        ValueError: the body is not a list of reports with a ``sid`` and ``report_status``.
    """
    if not isinstance(body, list):
        raise ValueError("expected a JSON array of reports")
    found = []
    for report in body:
        if not isinstance(report, dict) or not isinstance(report.get("sid"), str):
            raise ValueError("each report needs a sid")
        if report.get("report_status") not in ("SUCCESS", "FAIL"):
            raise ValueError("each report needs report_status SUCCESS or FAIL")
        found.append(
            receipt_from(
                {
                    "SerialNo": report["sid"],
                    "ReportStatus": report["report_status"],
                    "Description": report.get("description") or report.get("errmsg"),
                    "UserReceiveTime": report.get("user_receive_time"),
                }
            )
        )
    return [dataclasses.replace(r, detail={**r.detail, "source": "push"}) for r in found]
