"""Unit tests for iwork_mc.top.signing: the TOP signature (spec/top-protocol.md §3)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from iwork_mc.top import signing

VECTORS_FILE = Path(__file__).parents[2] / "data" / "signing_vectors.json"
VECTORS: list[dict[str, Any]] = json.loads(VECTORS_FILE.read_text(encoding="utf-8"))["vectors"]

SECRET = "helloworld"
HEX = "0123456789ABCDEF"

#: The §3.4 md5 request of the seed's event, as the Java SDK sends it.
JAVA_MD5 = next(v for v in VECTORS if v["name"] == "sendmobile-java-md5")


def _by_name(vectors: list[dict[str, Any]]) -> pytest.MarkDecorator:
    return pytest.mark.parametrize("vector", vectors, ids=[v["name"] for v in vectors])


def _flip(signature: str, index: int) -> str:
    """``signature`` with the hex digit at ``index`` replaced by a different digit."""
    old = signature[index].upper()
    new = HEX[(HEX.index(old) + 1) % len(HEX)]
    return signature[:index] + new + signature[index + 1 :]


def test_vector_file_holds_the_eleven_spec_vectors() -> None:
    """The shared vector file holds the 11 vectors of spec §3.3–§3.5."""
    assert 11 == len(VECTORS)


@_by_name(VECTORS)
def test_sign_reproduces_vector(vector: dict[str, Any]) -> None:
    """sign() reproduces each published vector byte for byte."""
    assert vector["sign"] == signing.sign(vector["params"], vector["secret"], vector["sign_method"])


@_by_name(VECTORS)
def test_verify_accepts_vector(vector: dict[str, Any]) -> None:
    """verify() accepts each published vector."""
    assert signing.verify(
        vector["params"], [vector["secret"]], vector["sign_method"], vector["sign"]
    )


@_by_name(VECTORS)
def test_verify_accepts_vector_with_sign_among_params(vector: dict[str, Any]) -> None:
    """verify() accepts a vector whose parameter map also holds ``sign``, as received."""
    params = {**vector["params"], "sign": vector["sign"]}

    assert signing.verify(params, [vector["secret"]], vector["sign_method"], vector["sign"])


def test_verify_accepts_previous_secret_during_rotation() -> None:
    """A signature made with the second of [wrong, right] secrets passes (rotation grace)."""
    assert signing.verify(
        JAVA_MD5["params"], ["0123456789abcdef0123456789abcdef", SECRET], "md5", JAVA_MD5["sign"]
    )


def test_verify_rejects_wrong_secret() -> None:
    """A signature checked against a secret it was not made with fails."""
    assert not signing.verify(JAVA_MD5["params"], ["helloworld2"], "md5", JAVA_MD5["sign"])


def test_verify_rejects_when_no_secret() -> None:
    """An empty list of secrets accepts nothing."""
    assert not signing.verify(JAVA_MD5["params"], [], "md5", JAVA_MD5["sign"])


def test_verify_rejects_wrong_method() -> None:
    """An md5 signature checked as hmac fails."""
    assert not signing.verify(JAVA_MD5["params"], [SECRET], "hmac", JAVA_MD5["sign"])


@pytest.mark.parametrize(
    "signature",
    [
        "b2bbc9e5301c337625565f2cf67d3983",
        "B2BBC9E5301C337625565F2CF67D3983",
        "b2BbC9e5301C337625565f2CF67d3983",
    ],
    ids=["lower", "upper", "mixed"],
)
def test_verify_is_hex_case_insensitive(signature: str) -> None:
    """The hex digits of ``sign`` compare case-insensitively."""
    assert signing.verify(JAVA_MD5["params"], [SECRET], "md5", signature)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("mobile_receiver_message_event", JAVA_MD5["params"]["mobile_receiver_message_event"][:-1]),
        ("timestamp", "2017-09-14 16:08:17"),
        ("app_key", "12345679"),
        ("sign_method", "hmac"),
    ],
    ids=["event", "timestamp", "app_key", "sign_method"],
)
def test_verify_rejects_tampered_value(name: str, value: str) -> None:
    """Changing one signed value after signing makes the signature fail."""
    params = {**JAVA_MD5["params"], name: value}

    assert not signing.verify(params, [SECRET], "md5", JAVA_MD5["sign"])


def test_verify_rejects_added_parameter() -> None:
    """A non-empty parameter added after signing makes the signature fail."""
    params = {**JAVA_MD5["params"], "partner_id": "top-sdk-java-20190226"}

    assert not signing.verify(params, [SECRET], "md5", JAVA_MD5["sign"])


def test_verify_rejects_truncated_signature() -> None:
    """A prefix of the right signature fails."""
    assert not signing.verify(JAVA_MD5["params"], [SECRET], "md5", JAVA_MD5["sign"][:-2])


@pytest.mark.parametrize(
    "wrap",
    [lambda s: s + SECRET, lambda s: SECRET + s + SECRET],
    ids=["md5(S+secret)", "md5(secret+S+secret)"],
)
def test_legacy_form_without_sign_method_passes(wrap: Any) -> None:
    """Without sign_method, both legacy md5 forms are accepted."""
    params = {k: v for k, v in JAVA_MD5["params"].items() if k != "sign_method"}
    signature = hashlib.md5(wrap(signing.canonical_string(params)).encode()).hexdigest().upper()

    assert signing.verify(params, [SECRET], None, signature)


def test_sign_without_method_is_legacy_md5() -> None:
    """sign(method=None) is ``MD5(S + secret)``, the Java SDK's "old md5"."""
    params = {"app_key": "12345678", "v": "2.0"}
    expected = hashlib.md5(b"app_key12345678v2.0" + SECRET.encode()).hexdigest().upper()

    assert expected == signing.sign(params, SECRET, None)


def test_legacy_form_is_not_accepted_when_sign_method_is_md5() -> None:
    """With sign_method=md5 the one-sided ``MD5(S + secret)`` does not pass."""
    legacy = signing.sign(JAVA_MD5["params"], SECRET, None)

    assert not signing.verify(JAVA_MD5["params"], [SECRET], "md5", legacy)


def test_sign_rejects_unknown_method() -> None:
    """sign() refuses a sign_method it does not implement."""
    with pytest.raises(ValueError, match="sha1"):
        signing.sign({"a": "1"}, SECRET, "sha1")  # type: ignore[arg-type]


@pytest.mark.parametrize("empty", ["", " ", "\t \n"], ids=["empty", "space", "whitespace"])
@pytest.mark.parametrize("method", [*signing.SIGN_METHODS, None])
def test_empty_values_signed_included_pass(empty: str, method: Any) -> None:
    """A signature over the params with empty values included (Python/PHP/Node SDKs) passes."""
    params = {**JAVA_MD5["params"], "session": empty, "partner_id": ""}

    assert signing.verify(params, [SECRET], method, signing.sign(params, SECRET, method))


@pytest.mark.parametrize("empty", ["", " ", "\t \n"], ids=["empty", "space", "whitespace"])
@pytest.mark.parametrize("method", [*signing.SIGN_METHODS, None])
def test_empty_values_signed_dropped_pass(empty: str, method: Any) -> None:
    """A signature over the params with empty values dropped (the Java SDK) passes too."""
    dropped = dict(JAVA_MD5["params"])
    received = {**dropped, "session": empty, "partner_id": ""}

    assert signing.verify(received, [SECRET], method, signing.sign(dropped, SECRET, method))


def test_empty_value_contributes_its_name() -> None:
    """An empty value contributes its bare name to the canonical string."""
    assert "a1bc3" == signing.canonical_string({"c": "3", "b": "", "a": "1"})


def test_sign_is_excluded_from_canonical_string() -> None:
    """``sign`` never enters the canonical string."""
    assert "a1b2" == signing.canonical_string({"b": "2", "sign": "ABCDEF", "a": "1"})


def test_sign_ignores_sign_parameter() -> None:
    """A ``sign`` already present in the map does not change the signature."""
    params = dict(JAVA_MD5["params"])

    assert signing.sign(params, SECRET) == signing.sign({**params, "sign": "X"}, SECRET)


def test_canonical_string_sorts_doc_example() -> None:
    """The doc's example ``foo, bar, foo_bar, foobar`` sorts to ``bar2foo1foo_bar3foobar4``."""
    params = {"foo": "1", "bar": "2", "foo_bar": "3", "foobar": "4"}

    assert "bar2foo1foo_bar3foobar4" == signing.canonical_string(params)


def test_canonical_string_of_doc_vector() -> None:
    """The canonical string of the doc vector is the one spec §3.3 prints."""
    vector = next(v for v in VECTORS if v["name"] == "top-doc-101617")
    expected = (
        "app_key12345678fieldsnum_iid,title,nick,price,numformatjsonmethodtaobao.item.seller.get"
        "num_iid11223344sessiontestsign_methodmd5timestamp2016-01-01 12:00:00v2.0"
    )

    assert expected == signing.canonical_string(vector["params"])


@pytest.mark.parametrize(
    ("method", "length"),
    [("md5", 32), ("hmac", 32), ("hmac-sha256", 64), (None, 32)],
    ids=["md5", "hmac", "hmac-sha256", "legacy"],
)
def test_sign_is_upper_case_hex(method: Any, length: int) -> None:
    """Signatures are upper-case hex, two digits per digest byte."""
    signature = signing.sign({"a": "1"}, SECRET, method)

    assert (length, True) == (len(signature), set(signature) <= set(HEX))


params_maps = st.dictionaries(st.text(min_size=1, max_size=12), st.text(max_size=24), max_size=6)
methods = st.sampled_from([*signing.SIGN_METHODS, None])


@settings(max_examples=60)
@given(params=params_maps, secret=st.text(max_size=16), method=methods)
def test_verify_accepts_what_sign_makes(
    params: dict[str, str], secret: str, method: signing.SignMethod | None
) -> None:
    """For any parameter map, secret and method, verify() accepts sign()'s signature."""
    assert signing.verify(params, [secret], method, signing.sign(params, secret, method))


@settings(max_examples=60)
@given(params=params_maps, secret=st.text(max_size=16), method=methods, data=st.data())
def test_verify_rejects_one_flipped_character(
    params: dict[str, str], secret: str, method: signing.SignMethod | None, data: st.DataObject
) -> None:
    """Changing any one hex digit of a valid signature makes it fail."""
    signature = signing.sign(params, secret, method)
    index = data.draw(st.integers(min_value=0, max_value=len(signature) - 1), label="index")

    assert not signing.verify(params, [secret], method, _flip(signature, index))
