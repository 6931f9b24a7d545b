"""An emulator of Alibaba Cloud SMS (Dysmsapi 2017-05-25): a real HTTP server on 127.0.0.1.

It serves ``SendSms`` and ``QuerySendDetails`` as the official SDK
(``alibabacloud-dysmsapi20170525``) calls them, RPC style, and checks each
request's ACS3-HMAC-SHA256 signature the way the provider does:

    CanonicalRequest = METHOD \\n path \\n sorted, RFC 3986-encoded query \\n
                       lower-case "name:value" of each signed header \\n
                       signed header names \\n x-acs-content-sha256
    Authorization    = ACS3-HMAC-SHA256 Credential=<AccessKeyId>,
                       SignedHeaders=…,Signature=hex(HMAC-SHA256(secret,
                       "ACS3-HMAC-SHA256\\n" + hex(SHA256(CanonicalRequest))))

with ``x-acs-content-sha256`` the body's SHA-256, ``x-acs-date`` within 15
minutes and each ``x-acs-signature-nonce`` used once.  A bad signature is
answered ``SignatureDoesNotMatch`` (HTTP 400), an unknown key
``InvalidAccessKeyId.NotFound`` (404), as the provider answers them.

Business errors (``isv.*``) come with HTTP 200 and their ``Code``; API-level
ones (``Throttling.User`` 400, ``ServiceUnavailable`` 503…) as HTTP errors.
Numbers and parameters are checked as the provider checks them
(``isv.MOBILE_NUMBER_ILLEGAL``, ``isv.INVALID_JSON_PARAM``…).
``QuerySendDetails`` answers ``SendStatus`` 1 (waiting), 2 (failed) or 3
(delivered) for the SMS of that number, day and BizId.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from iwork_mc.testing._http import CloudEmulator, SentSMS

__all__ = ["FakeAliyunSMS"]

#: API-level errors and their HTTP status; every other code is a business error (HTTP 200).
_HTTP_ERRORS = {
    "Throttling.User": 400,
    "Throttling.Api": 400,
    "SignatureDoesNotMatch": 400,
    "InvalidTimeStamp.Expired": 400,
    "SignatureNonceUsed": 400,
    "MissingParameter": 400,
    "InvalidAccessKeyId.NotFound": 404,
    "InternalError": 500,
    "ServiceUnavailable": 503,
}
_CHINA = timedelta(hours=8)
_MOBILE = re.compile(r"(?:1[3-9]\d{9}|(?!86)[1-9]\d{6,14})")


class FakeAliyunSMS(CloudEmulator):
    """Alibaba Cloud SMS on 127.0.0.1, for one AccessKey pair (see :mod:`iwork_mc.testing._http`
    for scripting outcomes and receipts)."""

    def __init__(self, access_key_id: str, access_key_secret: str, *, slow_s: float = 2.0) -> None:
        super().__init__(slow_s=slow_s)
        self.access_key_id = access_key_id
        self._secret = access_key_secret
        self._nonces: set[str] = set()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, float]:
        denied = self._check_signature(method, path, headers, body)
        if denied is not None:
            self.bad_signatures += 1
            return self._error(denied, "the request signature does not conform to Aliyun standards")
        params = dict(parse_qsl(urlsplit(path).query, keep_blank_values=True))
        params.update(parse_qsl(body.decode(), keep_blank_values=True))
        action = headers.get("x-acs-action", params.get("Action", ""))
        self.calls[action] += 1
        if action == "SendSms":
            return self._send(params)
        if action == "QuerySendDetails":
            return self._query(params)
        return self._error("InvalidAction.NotFound", f"no action {action}", status=404)

    def _send(self, params: dict[str, str]) -> tuple[int, Any, float]:
        for name in ("PhoneNumbers", "SignName", "TemplateCode"):
            if not params.get(name):
                return self._error("MissingParameter", f"{name} is mandatory for this action.")
        phone = params["PhoneNumbers"]
        if not _MOBILE.fullmatch(phone):
            return self._business("isv.MOBILE_NUMBER_ILLEGAL", "非法手机号")
        template_param = params.get("TemplateParam")
        if template_param is not None:
            try:
                parsed = json.loads(template_param)
            except ValueError:
                parsed = None
            if not isinstance(parsed, dict):
                return self._business("isv.INVALID_JSON_PARAM", "JSON参数不合法，只接受字符串值")
        outcome = self.next_outcome(phone)
        if outcome not in ("ok", "timeout"):
            if outcome in _HTTP_ERRORS:
                return self._error(outcome, f"emulated {outcome}")
            return self._business(outcome, f"emulated {outcome}")
        biz_id = f"{self.new_id():012d}^0"
        self.take(
            SentSMS(
                carrier_id=biz_id,
                phone=phone,
                sign_name=params["SignName"],
                template=params["TemplateCode"],
                params=template_param,
                reference=params.get("OutId", ""),
                state="pending",
                sent_at=time.time(),
            )
        )
        answer = {"Code": "OK", "Message": "OK", "BizId": biz_id, "RequestId": _request_id()}
        return 200, answer, self.slow_s if outcome == "timeout" else 0.0

    def _query(self, params: dict[str, str]) -> tuple[int, Any, float]:
        for name in ("PhoneNumber", "SendDate", "PageSize", "CurrentPage"):
            if not params.get(name):
                return self._error("MissingParameter", f"{name} is mandatory for this action.")
        if self.fail_all is not None:
            return self._error(self.fail_all, f"emulated {self.fail_all}")
        found = [
            sms
            for sms in self.sent
            if sms.phone == params["PhoneNumber"]
            and _day(sms.sent_at) == params["SendDate"]
            and params.get("BizId") in (None, "", sms.carrier_id)
        ]
        details = [
            {
                "PhoneNum": sms.phone,
                "SendStatus": {"pending": 1, "failed": 2, "delivered": 3}[sms.state],
                "ErrCode": {"pending": "", "failed": "MN:0001", "delivered": "DELIVERED"}[
                    sms.state
                ],
                "TemplateCode": sms.template,
                "Content": f"【{sms.sign_name}】{sms.params or ''}",
                "SendDate": _stamp(sms.sent_at),
                "ReceiveDate": "" if sms.state == "pending" else _stamp(time.time()),
                "OutId": sms.reference,
            }
            for sms in found
        ]
        answer = {
            "Code": "OK",
            "Message": "OK",
            "RequestId": _request_id(),
            "TotalCount": len(details),
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": details},
        }
        return 200, answer, 0.0

    def _check_signature(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> str | None:
        """The error code for a request whose signature fails, or ``None``."""
        match = re.fullmatch(
            r"ACS3-HMAC-SHA256 Credential=([^,]+),SignedHeaders=([^,]+),Signature=([0-9a-f]{64})",
            headers.get("authorization", ""),
        )
        if match is None:
            return "SignatureDoesNotMatch"
        key_id, signed, signature = match.groups()
        if key_id != self.access_key_id:
            return "InvalidAccessKeyId.NotFound"
        names = signed.split(";")
        if names != sorted(names) or not {"host", "x-acs-date", "x-acs-content-sha256"} <= set(
            names
        ):
            return "SignatureDoesNotMatch"
        if headers.get("x-acs-content-sha256") != hashlib.sha256(body).hexdigest():
            return "SignatureDoesNotMatch"
        try:
            stamp = datetime.strptime(headers["x-acs-date"], "%Y-%m-%dT%H:%M:%SZ")
        except (KeyError, ValueError):
            return "SignatureDoesNotMatch"
        if abs(stamp.replace(tzinfo=UTC).timestamp() - time.time()) > 900:
            return "InvalidTimeStamp.Expired"
        parts = urlsplit(path)
        query = sorted(parse_qsl(parts.query, keep_blank_values=True))
        canonical = "\n".join(
            [
                method,
                parts.path or "/",
                "&".join(f"{quote(k, safe='~')}={quote(v, safe='~')}" for k, v in query),
                "".join(f"{name}:{headers.get(name, '').strip()}\n" for name in names),
                signed,
                headers["x-acs-content-sha256"],
            ]
        )
        to_sign = "ACS3-HMAC-SHA256\n" + hashlib.sha256(canonical.encode()).hexdigest()
        expected = hmac.new(self._secret.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "SignatureDoesNotMatch"
        nonce = headers.get("x-acs-signature-nonce", "")
        with self._lock:
            if not nonce or nonce in self._nonces:
                return "SignatureNonceUsed"
            self._nonces.add(nonce)
        return None

    def _pushed(self, sms: SentSMS) -> dict[str, Any]:
        delivered = sms.state == "delivered"
        return {
            "phone_number": sms.phone,
            "send_time": _stamp(sms.sent_at),
            "report_time": _stamp(time.time()),
            "success": delivered,
            "err_code": "DELIVERED" if delivered else "MN:0001",
            "err_msg": "用户接收成功" if delivered else "number out of service",
            "sms_size": "1",
            "biz_id": sms.carrier_id,
            "out_id": sms.reference,
        }

    def _business(self, code: str, message: str) -> tuple[int, Any, float]:
        return 200, {"Code": code, "Message": message, "RequestId": _request_id()}, 0.0

    def _error(self, code: str, message: str, status: int | None = None) -> tuple[int, Any, float]:
        answer = {
            "Code": code,
            "Message": message,
            "RequestId": _request_id(),
            "HostId": "dysmsapi.aliyuncs.com",
            "Recommend": "",
        }
        return status or _HTTP_ERRORS.get(code, 400), answer, 0.0


def _day(at: float) -> str:
    return (datetime.fromtimestamp(at, UTC) + _CHINA).strftime("%Y%m%d")


def _stamp(at: float) -> str:
    return (datetime.fromtimestamp(at, UTC) + _CHINA).strftime("%Y-%m-%d %H:%M:%S")


def _request_id() -> str:
    return hashlib.md5(str(time.time_ns()).encode()).hexdigest().upper()
