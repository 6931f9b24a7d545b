"""An emulator of Tencent Cloud SMS (API 2021-01-11): a real HTTP server on 127.0.0.1.

It serves ``SendSms`` and ``PullSmsSendStatus`` as the official SDK
(``tencentcloud-sdk-python-sms``) calls them (POST, JSON body, the action in
``X-TC-Action``) and checks the TC3-HMAC-SHA256 signature as the provider
does:

    CanonicalRequest = POST \\n / \\n (empty query) \\n "name:value" of each signed
                       header (lower case) \\n signed header names \\n hex(SHA256(body))
    StringToSign     = TC3-HMAC-SHA256 \\n X-TC-Timestamp \\n <date>/sms/tc3_request \\n
                       hex(SHA256(CanonicalRequest))
    signing key      = HMAC(HMAC(HMAC("TC3" + SecretKey, date), "sms"), "tc3_request")

``X-TC-Timestamp`` must be within 5 minutes and ``<date>`` its UTC day.
Failures are answered as the provider answers them, HTTP 200 with
``Response.Error``: ``AuthFailure.SignatureFailure``,
``AuthFailure.SecretIdNotFound``, ``AuthFailure.SignatureExpire``.

Per-number outcomes (``LimitExceeded.*``, ``InvalidParameterValue.*``,
``FailedOperation.*``) come in ``SendStatusSet``; call-level ones
(``RequestLimitExceeded``, ``InternalError.*``) as ``Response.Error``.
Status reports wait in a queue per SmsSdkAppId, each served once by
``PullSmsSendStatus``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import time
import uuid
from collections import deque
from datetime import UTC, datetime
from typing import Any

from iwork_mc.testing._http import CloudEmulator, SentSMS

__all__ = ["FakeTencentSMS"]

_E164_CN = re.compile(r"\+861[3-9]\d{9}")


def _call_level(code: str) -> bool:
    return code.startswith(("RequestLimitExceeded", "InternalError", "AuthFailure"))


class FakeTencentSMS(CloudEmulator):
    """Tencent Cloud SMS on 127.0.0.1 for one SecretId/SecretKey and one SmsSdkAppId (see
    :mod:`iwork_mc.testing._http` for scripting outcomes and receipts)."""

    content_type = "application/json"

    def __init__(
        self, secret_id: str, secret_key: str, sdk_app_id: str, *, slow_s: float = 2.0
    ) -> None:
        super().__init__(slow_s=slow_s)
        self.secret_id = secret_id
        self._secret_key = secret_key
        self.sdk_app_id = sdk_app_id
        self._reports: deque[dict[str, Any]] = deque()

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, Any, float]:
        denied = self._check_signature(method, headers, body)
        if denied is not None:
            self.bad_signatures += 1
            return self._error(denied, "the signature is not valid")
        action = headers.get("x-tc-action", "")
        self.calls[action] += 1
        try:
            params = json.loads(body or b"{}")
        except ValueError:
            return self._error("FailedOperation.JsonParseFail", "the body is not JSON")
        if params.get("SmsSdkAppId") != self.sdk_app_id:
            return self._error("InvalidParameterValue.SdkAppIdNotExist", "no such SmsSdkAppId")
        if action == "SendSms":
            return self._send(params)
        if action == "PullSmsSendStatus":
            return self._pull(params)
        return self._error("InvalidAction", f"no action {action}")

    def _send(self, params: dict[str, Any]) -> tuple[int, Any, float]:
        phones = params.get("PhoneNumberSet") or []
        if not phones or not params.get("TemplateId"):
            return self._error("MissingParameter", "PhoneNumberSet and TemplateId are required")
        statuses = []
        delay = 0.0
        for phone in phones:
            outcome = "InvalidParameterValue.IncorrectPhoneNumber"
            if _E164_CN.fullmatch(phone):
                outcome = self.next_outcome(phone)
            if _call_level(outcome):
                return self._error(outcome, f"emulated {outcome}")
            status = {
                "PhoneNumber": phone,
                "SessionContext": params.get("SessionContext", ""),
                "IsoCode": "CN",
                "Fee": 0,
                "SerialNo": "",
            }
            if outcome in ("ok", "timeout"):
                serial = f"2433:{self.new_id():010d}"
                self.take(
                    SentSMS(
                        carrier_id=serial,
                        phone=phone,
                        sign_name=params.get("SignName", ""),
                        template=params["TemplateId"],
                        params=params.get("TemplateParamSet"),
                        reference=params.get("SessionContext", ""),
                        state="pending",
                        sent_at=time.time(),
                    )
                )
                status |= {"SerialNo": serial, "Fee": 1, "Code": "Ok", "Message": "send success"}
                delay = max(delay, self.slow_s if outcome == "timeout" else 0.0)
            else:
                status |= {"Code": outcome, "Message": f"emulated {outcome}"}
            statuses.append(status)
        answer = {"Response": {"SendStatusSet": statuses, "RequestId": str(uuid.uuid4())}}
        return 200, answer, delay

    def _pull(self, params: dict[str, Any]) -> tuple[int, Any, float]:
        if self.fail_all is not None and _call_level(self.fail_all):
            return self._error(self.fail_all, f"emulated {self.fail_all}")
        limit = params.get("Limit")
        if not isinstance(limit, int) or not 1 <= limit <= 100:
            return self._error("InvalidParameterValue.LimitOutOfRange", "Limit is 1 to 100")
        with self._lock:
            page = [self._reports.popleft() for _ in range(min(limit, len(self._reports)))]
        answer = {"Response": {"PullSmsSendStatusSet": page, "RequestId": str(uuid.uuid4())}}
        return 200, answer, 0.0

    def _report(self, sms: SentSMS) -> None:
        delivered = sms.state == "delivered"
        self._reports.append(
            {
                "UserReceiveTime": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
                "CountryCode": "86",
                "SubscriberNumber": sms.phone.removeprefix("+86"),
                "PhoneNumber": sms.phone,
                "SerialNo": sms.carrier_id,
                "ReportStatus": "SUCCESS" if delivered else "FAIL",
                "Description": "用户短信送达成功" if delivered else "MN:0001 number out of service",
                "SessionContext": sms.reference,
            }
        )

    def _pushed(self, sms: SentSMS) -> dict[str, Any]:
        delivered = sms.state == "delivered"
        return {
            "user_receive_time": datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S"),
            "nationcode": "86",
            "mobile": sms.phone.removeprefix("+86"),
            "report_status": "SUCCESS" if delivered else "FAIL",
            "errmsg": "DELIVRD" if delivered else "MN:0001",
            "description": "用户短信送达成功" if delivered else "MN:0001 number out of service",
            "sid": sms.carrier_id,
            "ext": {},
        }

    def _check_signature(self, method: str, headers: dict[str, str], body: bytes) -> str | None:
        """The error code for a request whose signature fails, or ``None``."""
        match = re.fullmatch(
            r"TC3-HMAC-SHA256 Credential=([^/]+)/(\d{4}-\d{2}-\d{2})/(\w+)/tc3_request, "
            r"SignedHeaders=([^,]+), Signature=([0-9a-f]{64})",
            headers.get("authorization", ""),
        )
        if match is None:
            return "AuthFailure.SignatureFailure"
        secret_id, date, service, signed, signature = match.groups()
        if secret_id != self.secret_id:
            return "AuthFailure.SecretIdNotFound"
        try:
            timestamp = int(headers.get("x-tc-timestamp", ""))
        except ValueError:
            return "AuthFailure.SignatureFailure"
        if abs(timestamp - time.time()) > 300:
            return "AuthFailure.SignatureExpire"
        names = signed.split(";")
        if service != "sms" or "host" not in names or "content-type" not in names:
            return "AuthFailure.SignatureFailure"
        if date != datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%d"):
            return "AuthFailure.SignatureFailure"
        canonical = "\n".join(
            [
                method,
                "/",
                "",
                "".join(f"{name}:{headers.get(name, '').strip().lower()}\n" for name in names),
                signed,
                hashlib.sha256(body).hexdigest(),
            ]
        )
        scope = f"{date}/{service}/tc3_request"
        to_sign = "\n".join(
            [
                "TC3-HMAC-SHA256",
                str(timestamp),
                scope,
                hashlib.sha256(canonical.encode()).hexdigest(),
            ]
        )
        key = ("TC3" + self._secret_key).encode()
        for part in (date, service, "tc3_request"):
            key = hmac.new(key, part.encode(), hashlib.sha256).digest()
        expected = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, signature):
            return "AuthFailure.SignatureFailure"
        return None

    def _error(self, code: str, message: str) -> tuple[int, Any, float]:
        answer = {
            "Response": {
                "Error": {"Code": code, "Message": message},
                "RequestId": str(uuid.uuid4()),
            }
        }
        return 200, answer, 0.0
