"""Bounds on one HTTP/1.1 request head, measured on the raw bytes (pure, no I/O).

uvicorn bounds nothing of the head under httptools (a 128 MiB header is parsed
to the end while every other connection waits), and under h11 only its total
size.  :class:`HeadMeter` watches the bytes of a head as they arrive, before
any parser sees them, and says when a head breaks a limit, so the server can
answer 431 and close the connection after at most ``max_bytes`` bytes of work.
It does not parse HTTP: it counts bytes and line breaks up to the blank line
that ends the head (``\\r\\n\\r\\n``, or bare ``\\n\\n``, which lenient parsers
accept too), so it works the same in front of either parser.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["HeadLimits", "HeadMeter"]

# 3 bytes of the previous chunk are kept so that the blank line ending a head
# is found when a read splits it.
_KEPT = 3


def _head_end(data: bytes) -> int:
    """The index just past the blank line that ends the head in ``data``, or -1.

    Two ``find`` calls: several times cheaper than a regular expression on the
    hot path, where the whole head arrives in one read.
    """
    crlf = data.find(b"\r\n\r\n")
    lf = data.find(b"\n\n", 0, len(data) if crlf < 0 else crlf)
    if lf >= 0:
        return lf + 2
    return crlf + 4 if crlf >= 0 else -1


@dataclass(frozen=True, slots=True)
class HeadLimits:
    """What one request head may hold, and how long a request may take to arrive."""

    #: Request line plus header fields; the request line of a GET may carry a whole event.
    max_bytes: int = 81_920
    #: One header field line (the request line is bounded by ``max_bytes`` only).
    max_line_bytes: int = 8_192
    #: Header fields.
    max_fields: int = 100
    #: From the connection's start (or a new request's first byte) to the end of its head.
    head_timeout_s: float = 10.0
    #: From the end of the head to the last byte of the body.
    body_timeout_s: float = 30.0


class HeadMeter:
    """One request head's size so far: :meth:`feed` each chunk until :attr:`done`."""

    __slots__ = ("_fields", "_line", "_tail", "done", "limits", "size")

    def __init__(self, limits: HeadLimits) -> None:
        self.limits = limits
        #: Bytes of the head seen so far.
        self.size = 0
        #: True once the blank line ending the head has been seen.
        self.done = False
        self._line = 0  # length of the line being received
        self._fields = -1  # completed lines minus the request line
        self._tail = b""

    @property
    def started(self) -> bool:
        return self.size > 0

    def feed(self, chunk: bytes) -> str | None:
        """Count ``chunk``; return why the head is refused, or None.

        Bytes after the end of the head (the body) are not counted.
        """
        if self.done:
            return None
        limits = self.limits
        end = _head_end(self._tail + chunk)
        if end < 0:
            head = chunk
        else:
            head = chunk[: end - len(self._tail)]
            self.done = True
        self.size += len(head)
        if self.size > limits.max_bytes:
            return f"request head larger than {limits.max_bytes} bytes"
        # Only a head longer than a line may hold a too-long line: the usual
        # head of a few hundred bytes skips the per-line scan.
        if self.size > limits.max_line_bytes and self._longest_field_line(head) > (
            limits.max_line_bytes
        ):
            return f"a header line is longer than {limits.max_line_bytes} bytes"
        self._fields += head.count(b"\n")
        last = head.rfind(b"\n")
        self._line = self._line + len(head) if last < 0 else len(head) - last - 1
        # The blank line that ends the head is no field.
        if self._fields - self.done > limits.max_fields:
            return f"more than {limits.max_fields} header fields"
        self._tail = (self._tail + chunk[-_KEPT:])[-_KEPT:]
        return None

    def _longest_field_line(self, head: bytes) -> int:
        lines = head.split(b"\n")
        lengths = [self._line + len(lines[0]), *map(len, lines[1:])]
        if self._fields < 0:
            # The request line is still arriving: it is bounded by max_bytes only.
            lengths = lengths[1:]
        return max(lengths, default=0)
