"""The pure parts of the cloud SMS channels: error classes, template mapping, receipts."""

from __future__ import annotations

import re
from pathlib import Path
from types import ModuleType

import pytest

from iwork_mc.channels import aliyun_sms, tencent_sms
from iwork_mc.channels.cloud_sms import Outcome, in_doubt, template_for
from iwork_mc.segments import SegmentState

DOCS = Path(__file__).resolve().parents[2] / "docs" / "howto"


@pytest.mark.parametrize(
    ("module", "page"), [(aliyun_sms, "aliyun-sms.md"), (tencent_sms, "tencent-sms.md")]
)
def test_the_how_to_shows_the_error_table_of_the_code(module: ModuleType, page: str) -> None:
    text = (DOCS / page).read_text(encoding="utf-8")
    rows = re.findall(r"^\| `([^`]+)` \| (permanent|transient|throttled) \|$", text, re.M)
    assert {code: outcome.value for code, outcome in module.ERRORS.items()} == dict(rows)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("isv.BUSINESS_LIMIT_CONTROL", Outcome.THROTTLED),
        ("isv.MOBILE_NUMBER_ILLEGAL", Outcome.PERMANENT),
        ("isp.SYSTEM_ERROR", Outcome.TRANSIENT),
        ("isv.SOMETHING_NEW", Outcome.TRANSIENT),
    ],
)
def test_aliyun_error_classes(code: str, expected: Outcome) -> None:
    assert expected is aliyun_sms.error_class(code)


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        ("LimitExceeded.PhoneNumberDailyLimit", Outcome.THROTTLED),
        ("AuthFailure.SignatureExpire", Outcome.TRANSIENT),  # exact beats AuthFailure.*
        ("AuthFailure.SecretIdNotFound", Outcome.PERMANENT),
        ("InvalidParameterValue.IncorrectPhoneNumber", Outcome.PERMANENT),
        ("InternalError.Timeout", Outcome.TRANSIENT),
        ("FailedOperation.SomethingNew", Outcome.TRANSIENT),
    ],
)
def test_tencent_error_classes(code: str, expected: Outcome) -> None:
    assert expected is tencent_sms.error_class(code)


def test_an_exact_template_name_beats_a_pattern_and_patterns_keep_their_order() -> None:
    templates = {"door-*": "A", "door-alarm": "B", "*": "C"}
    assert ("B", "A", "C", None) == (
        template_for(templates, "door-alarm"), template_for(templates, "door-open"),
        template_for(templates, "visit"), template_for({"x": "y"}, ""),
    )  # fmt: skip


def test_tencent_template_params_follow_the_mapping() -> None:
    data = '{"name": "张三", "time": "09:00", "floor": 3}'
    assert ("1", ["09:00", "张三"]) == tencent_sms.template_params(
        {"id": "1", "params": ["time", "name"]}, data
    )
    assert ("2", ["张三", "09:00", "3"]) == tencent_sms.template_params("2", data)
    assert ("3", []) == tencent_sms.template_params("3", "")
    for mapped, json_data, message in [
        ({"id": "1", "params": ["gate"]}, data, "json_data has no gate"),
        ("1", "[1, 2]", "json_data is not a JSON object"),
        (7, data, "a template is a TemplateId"),
    ]:
        with pytest.raises(ValueError, match=message):
            tencent_sms.template_params(mapped, json_data)


def test_aliyun_numbers_are_national_in_china_and_international_elsewhere() -> None:
    assert ("13888888888", "85261234567") == (
        aliyun_sms.phone_number("+8613888888888"), aliyun_sms.phone_number("+85261234567")
    )  # fmt: skip


def test_aliyun_query_answers_become_receipts() -> None:
    def answer(status: int, code: str) -> dict[str, object]:
        return {
            "SmsSendDetailDTOs": {"SmsSendDetailDTO": [{"SendStatus": status, "ErrCode": code}]}
        }

    assert SegmentState.DELIVERED is aliyun_sms.receipt_from("b", answer(3, "DELIVERED")).state  # type: ignore[union-attr]
    failed = aliyun_sms.receipt_from("b", answer(2, "MN:0001"))
    assert failed is not None and (SegmentState.UNDELIVERABLE, "MN:0001") == (
        failed.state,
        failed.error,
    )
    assert None is aliyun_sms.receipt_from("b", answer(1, ""))
    assert None is aliyun_sms.receipt_from("b", {"SmsSendDetailDTOs": {}})


def test_tencent_reports_become_receipts() -> None:
    ok = tencent_sms.receipt_from({"SerialNo": "s1", "ReportStatus": "SUCCESS"})
    failed = tencent_sms.receipt_from(
        {"SerialNo": "s2", "ReportStatus": "FAIL", "Description": "DB:0141"}
    )
    assert ("s1", SegmentState.DELIVERED, None) == (ok.carrier_id, ok.state, ok.error)
    assert ("s2", SegmentState.UNDELIVERABLE, "DB:0141") == (
        failed.carrier_id,
        failed.state,
        failed.error,
    )


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("HTTPConnectionPool(host='x', port=1): Read timed out. (read timeout=1)", True),
        ("('Connection aborted.', RemoteDisconnected('Remote end closed connection'))", True),
        (
            "Max retries exceeded (Caused by NewConnectionError(Failed to establish a new connection: [Errno 111] Connection refused))",
            False,
        ),
        ("ConnectTimeoutError(connect timeout=1)", False),
    ],
)
def test_only_a_lost_answer_is_in_doubt(text: str, expected: bool) -> None:
    assert expected is in_doubt(text)


def test_provider_texts_and_transport_errors_carry_no_phone_number() -> None:
    from iwork_mc.channels.cloud_sms import ProviderRefused, transport_reason

    refused = ProviderRefused(
        "isv.MOBILE_NUMBER_ILLEGAL", "bad number 13888888888", Outcome.PERMANENT
    )
    assert "isv.MOBILE_NUMBER_ILLEGAL: bad number 138****8888" == str(refused)
    text = "Max retries exceeded with url: /?PhoneNumbers=13888888888 (Caused by SSLError(...))"
    assert "transport error" == transport_reason(text)
