"""The TOP platform error table (spec/top-protocol.md §6) and the error a handler raises.

A :class:`TopError` is rendered as an ``error_response`` envelope.  Construct one
through the helpers below so that code and message always agree with the table.
"""

from __future__ import annotations

from enum import IntEnum

__all__ = ["PlatformCode", "TopError", "invalid_field", "missing_field"]


class PlatformCode(IntEnum):
    """Platform error codes this gateway emits, with TOP's own spelling as ``phrase``."""

    phrase: str

    def __new__(cls, value: int, phrase: str) -> PlatformCode:
        member = int.__new__(cls, value)
        member._value_ = value
        member.phrase = phrase
        return member

    APP_CALL_LIMITED = 7, "App Call Limited"
    HTTP_ACTION_NOT_ALLOWED = 9, "Http Action Not Allowed"
    SERVICE_UNAVAILABLE = 10, "Service Currently Unavailable"
    INSUFFICIENT_ISV_PERMISSIONS = 11, "Insufficient isv permissions"
    REMOTE_SERVICE_ERROR = 15, "Remote service error"
    MISSING_METHOD = 21, "Missing method"
    INVALID_METHOD = 22, "Invalid method"
    INVALID_FORMAT = 23, "Invalid format"
    MISSING_SIGNATURE = 24, "Missing signature"
    INVALID_SIGNATURE = 25, "Invalid signature"
    MISSING_APP_KEY = 28, "Missing app key"
    INVALID_APP_KEY = 29, "Invalid app Key"
    MISSING_TIMESTAMP = 30, "Missing timestamp"
    INVALID_TIMESTAMP = 31, "Invalid timestamp"
    MISSING_VERSION = 32, "Missing version"
    INVALID_VERSION = 33, "Invalid version"
    UNSUPPORTED_VERSION = 34, "Unsupported version"
    MISSING_REQUIRED_ARGUMENTS = 40, "Missing required arguments"
    INVALID_ARGUMENTS = 41, "Invalid arguments"
    PARAMETER_ERROR = 43, "Parameter error"
    INVALID_ENCODING = 47, "Invalid encoding"
    #: The seed's documented shape for a bad field inside the event object.
    REMOTE_SERVICE_FIELD_ERROR = 50, "Remote service error"


class TopError(Exception):
    """A request the platform refuses; rendered as ``error_response``.

    ``msg`` defaults to the code's phrase.  ``arg`` is appended to it after a
    colon, the way TOP names the offending parameter for codes 40 and 41
    (``Missing required arguments:mobile_receiver_message_event``).
    """

    def __init__(
        self,
        code: PlatformCode,
        sub_code: str | None = None,
        sub_msg: str | None = None,
        arg: str | None = None,
    ) -> None:
        self.code = code
        self.sub_code = sub_code
        self.sub_msg = sub_msg
        self.arg = arg
        super().__init__(code, sub_code, sub_msg, arg)

    @property
    def msg(self) -> str:
        return self.code.phrase if self.arg is None else f"{self.code.phrase}:{self.arg}"

    def __str__(self) -> str:
        parts = [f"{int(self.code)} {self.msg}"]
        if self.sub_code:
            parts.append(self.sub_code)
        if self.sub_msg:
            parts.append(self.sub_msg)
        return " | ".join(parts)


def invalid_field(field: str, reason: str) -> TopError:
    """A bad field inside the event object: the seed's code 50 shape."""
    return TopError(
        PlatformCode.REMOTE_SERVICE_FIELD_ERROR,
        "isv.invalid-parameter",
        f"非法参数:{field} {reason}",
    )


def missing_field(field: str) -> TopError:
    """An absent required field inside the event object."""
    return TopError(
        PlatformCode.REMOTE_SERVICE_FIELD_ERROR,
        "isv.missing-parameter",
        f"非法参数:{field} is required",
    )
