"""Reading a TOP call off the wire: query string and body merged into one map.

Official SDKs disagree on where parameters travel (spec/top-protocol.md §1.3):
the Java, Python and PHP SDKs put system parameters in the query and the event
in an urlencoded body, the Node SDK sends everything as multipart fields, and
hand-written clients use GET.  All are read here; a name present in both the
query and the body takes the body's value.  Bytes that are not UTF-8 answer 47;
file parts are never signed, so they are dropped.
"""

from __future__ import annotations

import io
from collections.abc import AsyncIterator
from urllib.parse import parse_qsl

import python_multipart
from python_multipart.multipart import Field, File
from starlette.types import Receive, Scope

from iwork_mc.top.errors import PlatformCode, TopError

__all__ = ["BodyTooLarge", "merge_params", "parse_query", "read_body", "read_request_body"]


class BodyTooLarge(TopError):
    def __init__(self, limit: int) -> None:
        super().__init__(
            PlatformCode.PARAMETER_ERROR,
            "isv.request-body-too-large",
            f"request body exceeds {limit} bytes",
        )


async def read_body(chunks: AsyncIterator[bytes], content_length: str | None, limit: int) -> bytes:
    """Read the body, refusing it as soon as it passes ``limit`` bytes."""
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise BodyTooLarge(limit)
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise BodyTooLarge(limit)
    return bytes(body)


async def read_request_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """An ASGI request's body, refused (:class:`BodyTooLarge`) as soon as it passes ``limit``."""
    length = dict(scope.get("headers", ())).get(b"content-length")
    return await read_body(
        _chunks(receive), length.decode("latin-1") if length is not None else None, limit
    )


async def _chunks(receive: Receive) -> AsyncIterator[bytes]:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        yield message.get("body", b"")
        if not message.get("more_body", False):
            return


def parse_query(query: bytes) -> dict[str, str]:
    """The parameters of a raw query string."""
    return _urlencoded(query)


def merge_params(query: dict[str, str], content_type: str, body: bytes) -> dict[str, str]:
    """One parameter map from the parsed query and the raw body; the body wins on a clash."""
    params = dict(query)
    media_type = content_type.split(";", 1)[0].strip().lower()
    if media_type == "multipart/form-data":
        params.update(_multipart(content_type, body))
    elif body and media_type in ("application/x-www-form-urlencoded", ""):
        params.update(_urlencoded(body))
    return params


def _invalid_encoding(where: str) -> TopError:
    return TopError(PlatformCode.INVALID_ENCODING, sub_msg=f"{where} is not valid UTF-8")


def _urlencoded(raw: bytes) -> dict[str, str]:
    try:
        # Some clients send raw UTF-8 instead of percent-escapes; both are accepted.
        text = raw.decode("utf-8")
        return dict(parse_qsl(text, keep_blank_values=True, encoding="utf-8", errors="strict"))
    except UnicodeDecodeError:
        raise _invalid_encoding("a parameter") from None


def _multipart(content_type: str, body: bytes) -> dict[str, str]:
    fields: dict[str, str] = {}
    problems: list[TopError] = []

    def on_field(field: Field) -> None:
        try:
            name = (field.field_name or b"").decode("utf-8")
            fields[name] = (field.value or b"").decode("utf-8")
        except UnicodeDecodeError:
            problems.append(_invalid_encoding("a multipart field"))

    def on_file(file: File) -> None:
        file.close()  # file parts are not signed and sendmobile takes none

    headers = {"Content-Type": content_type.encode("latin-1"), "Content-Length": b"%d" % len(body)}
    try:
        python_multipart.parse_form(headers, io.BytesIO(body), on_field, on_file)
    except (ValueError, python_multipart.exceptions.FormParserError) as exc:
        raise TopError(
            PlatformCode.PARAMETER_ERROR, "isv.invalid-multipart", "malformed multipart body"
        ) from exc
    if problems:
        raise problems[0]
    return fields
