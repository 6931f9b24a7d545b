"""TOP answer envelopes: ``<method>_response`` and ``error_response``, in XML or JSON.

Byte layout follows spec/top-protocol.md §5: XML starts with the declaration and
is not indented; JSON is compact with non-ASCII emitted raw; ``request_id`` is
the last member inside the envelope; ``simplify=true`` drops the root wrapper of
a JSON success answer (never of an error).
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from collections.abc import Mapping
from typing import Any, Literal
from xml.sax.saxutils import escape

from iwork_mc.top.errors import TopError

Format = Literal["xml", "json"]
FORMATS: tuple[Format, ...] = ("xml", "json")

CONTENT_TYPES: dict[Format, str] = {
    "json": "application/json;charset=UTF-8",
    "xml": "text/xml;charset=UTF-8",
}
XML_DECLARATION = '<?xml version="1.0" encoding="utf-8" ?>'
# Characters XML 1.0 cannot carry even escaped; replaced so the answer stays parseable.
_XML_ILLEGAL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")

__all__ = [
    "CONTENT_TYPES",
    "FORMATS",
    "Format",
    "error_body",
    "parse_answer",
    "render_error",
    "render_success",
    "response_name",
]


def response_name(method: str) -> str:
    """``alibaba.iwork.mc.msg.sendmobile`` → ``alibaba_iwork_mc_msg_sendmobile_response``.

    TOP drops a leading ``taobao.`` (``taobao.time.get`` → ``time_get_response``).
    """
    return method.removeprefix("taobao.").replace(".", "_") + "_response"


def render_success(
    method: str,
    payload: Mapping[str, Any],
    request_id: str,
    fmt: Format,
    *,
    simplify: bool = False,
) -> bytes:
    """The success envelope for ``method`` carrying ``payload``."""
    body = {**payload, "request_id": request_id}
    if fmt == "json":
        return _json(body if simplify else {response_name(method): body})
    return _xml(response_name(method), body)


def error_body(error: TopError, request_id: str) -> dict[str, Any]:
    """The members of ``error_response``, in TOP's order."""
    body: dict[str, Any] = {"code": int(error.code), "msg": error.msg}
    if error.sub_code is not None:
        body["sub_code"] = error.sub_code
    if error.sub_msg is not None:
        body["sub_msg"] = error.sub_msg
    body["request_id"] = request_id
    return body


def render_error(error: TopError, request_id: str, fmt: Format) -> bytes:
    """The ``error_response`` envelope; ``simplify`` never applies to errors."""
    body = error_body(error, request_id)
    if fmt == "json":
        return _json({"error_response": body})
    return _xml("error_response", body)


def _json(value: Mapping[str, Any]) -> bytes:
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
    # A lone surrogate becomes the JSON escape \udXXX instead of failing to encode.
    return text.encode("utf-8", "backslashreplace")


def _xml(root: str, body: Mapping[str, Any]) -> bytes:
    parts = [XML_DECLARATION]
    _xml_element(parts, root, body)
    return "".join(parts).encode("utf-8")


def _xml_element(parts: list[str], name: str, value: Any) -> None:
    parts.append(f"<{name}>")
    if isinstance(value, Mapping):
        for child, child_value in value.items():
            _xml_element(parts, child, child_value)
    elif isinstance(value, bool):
        parts.append("true" if value else "false")
    elif value is not None:
        # A raw \r would be read back as \n by every XML parser.
        parts.append(escape(_XML_ILLEGAL.sub("\ufffd", str(value)), {"\r": "&#13;"}))
    parts.append(f"</{name}>")


def parse_answer(body: bytes, fmt: Format) -> dict[str, Any]:
    """Parse an answer body into ``{root_name: {...}}`` (or the bare object for simplify).

    XML leaves are typed the way the JSON answer types them: ``content`` and
    ``success`` are booleans, an error's ``code`` is an int, everything else is
    text.  Repeated elements become lists.

    Raises:
        ValueError: the body is not a JSON object or well-formed XML.
    """
    try:
        if fmt == "json":
            parsed = json.loads(body)
            if not isinstance(parsed, dict):
                raise ValueError("a TOP answer is a JSON object")
            return parsed
        root = ET.fromstring(body)
    except (ET.ParseError, RecursionError, UnicodeDecodeError) as exc:
        raise ValueError(f"not a TOP {fmt} answer: {exc}") from exc
    return {root.tag: _xml_members(root)}


_XML_BOOLEANS = frozenset({"content", "success"})


def _xml_members(element: ET.Element) -> dict[str, Any]:
    members: dict[str, Any] = {}
    for child in element:
        value = _xml_members(child) if len(child) else _xml_leaf(element.tag, child)
        if child.tag in members:
            previous = members[child.tag]
            members[child.tag] = (
                [*previous, value] if isinstance(previous, list) else [previous, value]
            )
        else:
            members[child.tag] = value
    return members


def _xml_leaf(parent: str, leaf: ET.Element) -> Any:
    text = leaf.text or ""
    if leaf.tag in _XML_BOOLEANS and text in ("true", "false"):
        return text == "true"
    if parent == "error_response" and leaf.tag == "code" and text.lstrip("-").isdigit():
        return int(text)
    return text
