"""Delivery receipts: the deliver_sm that says what became of a message.

Theory of operation
===================

When ``registered_delivery`` asks for it, the SMSC reports a message's fate
with a ``deliver_sm`` whose ``esm_class`` has message type 0b0001 in bits
2–5 (``esm_class & 0x3C == 0x04``, §5.2.12).  Its text is not standardised;
Appendix B of the specification gives the form that nearly every SMSC uses::

    id:IIIIIIIIII sub:SSS dlvrd:DDD submit date:YYMMDDhhmm done date:YYMMDDhhmm
    stat:DDDDDDD err:E text:. . . . . . . . .

SMSCs vary it in every way that does not break a regex written for the
example: upper-case keys, ``submit_date``, dates with seconds (12 digits),
missing fields, ``err:000``, IDs in hex or decimal.  So :func:`parse_receipt`
finds each ``key:`` at the start of a word, takes the value up to the next
key, and keeps the ID as text exactly as sent (it may be hex in the receipt
and decimal in ``submit_sm_resp``, or the reverse; matching them is the
store's business).  Everything after ``text:`` is the start of the original
message, and may contain anything, so no key is looked for after it.

SMPP 3.4 also defines TLVs for receipts: ``receipted_message_id`` and
``message_state`` (§5.3.2.12, §5.3.2.35).  When present they win over the
text, which some SMSCs truncate or localise.

:func:`format_receipt` writes the Appendix B text, and :func:`build_receipt`
the whole ``deliver_sm`` with both TLVs, for the fake SMSC.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from iwork_mc.smpp._codes import MessageState
from iwork_mc.smpp._pdu import DeliverSm
from iwork_mc.smpp._text import DATA_CODING_UCS2
from iwork_mc.smpp._tlv import Tlv

__all__ = ["Receipt", "build_receipt", "format_receipt", "parse_receipt"]

#: esm_class bits 2–5 (§5.2.12): the message type; 0x04 is "SMSC Delivery Receipt".
ESM_CLASS_TYPE_MASK = 0x3C
ESM_CLASS_DELIVERY_RECEIPT = 0x04

# Appendix B spells states in seven letters (DELIVRD); some SMSCs write them
# out (DELIVERED), so both spellings read back.
_STATE_TO_STAT = {
    MessageState.ENROUTE: "ENROUTE",
    MessageState.DELIVERED: "DELIVRD",
    MessageState.EXPIRED: "EXPIRED",
    MessageState.DELETED: "DELETED",
    MessageState.UNDELIVERABLE: "UNDELIV",
    MessageState.ACCEPTED: "ACCEPTD",
    MessageState.UNKNOWN: "UNKNOWN",
    MessageState.REJECTED: "REJECTD",
}
_STAT_TO_STATE = {state.name: state for state in _STATE_TO_STAT} | {
    stat: state for state, stat in _STATE_TO_STAT.items()
}

# A key starts the text or follows whitespace; "submit date" may be written
# with an underscore or run together.
_KEY = re.compile(
    r"(?<!\S)(id|sub|dlvrd|submit[ _]?date|done[ _]?date|stat|err|text)\s*:", re.IGNORECASE
)
_DATE_FORMATS = {10: "%y%m%d%H%M", 12: "%y%m%d%H%M%S"}


@dataclass(frozen=True, slots=True, kw_only=True)
class Receipt:
    """
    What a delivery receipt says.

    Attributes:
        message_id: the SMSC's ID of the message, as the receipt gives it
            (``receipted_message_id`` TLV, else the text's ``id:``); empty if
            neither is there.
        state: the :class:`MessageState` (``message_state`` TLV, else the
            text's ``stat:``; UNKNOWN if neither says).
        error: the text's ``err:`` as written (``"000"``), else the error
            code of a ``network_error_code`` TLV, else ``""``.
        submitted_at: the text's ``submit date``, naive, or ``None``.
        done_at: the text's ``done date``, naive, or ``None``.
    """

    message_id: str
    state: MessageState
    error: str = ""
    submitted_at: datetime | None = None
    done_at: datetime | None = None

    @property
    def is_final(self) -> bool:
        """Whether the message has reached a final state (anything but ENROUTE)."""
        return self.state.is_final


def parse_receipt(deliver_sm: DeliverSm) -> Receipt | None:
    """
    Read a delivery receipt.

    Args:
        deliver_sm: any ``deliver_sm``.

    Returns:
        The :class:`Receipt`, or ``None`` if ``deliver_sm`` is not a receipt
        (its ``esm_class`` message type is not 0b0001: a mobile-originated
        message, say).  A receipt whose text cannot be read still gives a
        Receipt, from whatever its TLVs say.
    """
    if deliver_sm.esm_class & ESM_CLASS_TYPE_MASK != ESM_CLASS_DELIVERY_RECEIPT:
        return None
    fields = _fields(_text(deliver_sm))
    state = deliver_sm.message_state
    if state is None:
        state = _STAT_TO_STATE.get(fields.get("stat", "").upper(), MessageState.UNKNOWN)
    error = fields.get("err")
    if error is None:
        network_error = deliver_sm.network_error_code
        error = "" if network_error is None else f"{network_error.error_code:03d}"
    return Receipt(
        message_id=deliver_sm.receipted_message_id or fields.get("id", ""),
        state=state,
        error=error,
        submitted_at=_date(fields.get("submitdate")),
        done_at=_date(fields.get("donedate")),
    )


def _text(deliver_sm: DeliverSm) -> str:
    body = deliver_sm.short_message or deliver_sm.message_payload or b""
    if deliver_sm.data_coding == DATA_CODING_UCS2:
        return body.decode("utf-16-be", errors="replace")
    # The text is ASCII in practice, whatever data_coding says; Latin-1 reads
    # any octet, so a stray one cannot lose the rest of the receipt.
    return body.decode("latin-1")


def _fields(text: str) -> dict[str, str]:
    """The receipt text's values by key (lower case, spaces and underscores removed)."""
    matches = list(_KEY.finditer(text))
    fields: dict[str, str] = {}
    for index, match in enumerate(matches):
        key = re.sub(r"[ _]", "", match.group(1).lower())
        if key == "text":
            fields.setdefault(key, text[match.end() :].strip())
            break
        end = matches[index + 1].start() if index + 1 < len(matches) else len(text)
        fields.setdefault(key, text[match.end() : end].strip())
    return fields


def _date(value: str | None) -> datetime | None:
    if value is None or not value.isdigit() or len(value) not in _DATE_FORMATS:
        return None
    try:
        return datetime.strptime(value, _DATE_FORMATS[len(value)])
    except ValueError:
        return None


def format_receipt(
    *,
    message_id: str,
    state: MessageState,
    submitted_at: datetime | None = None,
    done_at: datetime | None = None,
    error: str = "000",
    submitted: int = 1,
    delivered: int | None = None,
    text: str = "",
) -> str:
    """
    Write the Appendix B receipt text.

    Args:
        message_id: the SMSC's ID of the message.
        state: written as its seven-letter ``stat:`` (DELIVRD, UNDELIV, …).
        submitted_at, done_at: written as ``YYMMDDhhmm``; ``None`` as ten zeros.
        error: the ``err:`` field.
        submitted: the ``sub:`` count.
        delivered: the ``dlvrd:`` count; by default ``submitted`` when the
            state is DELIVERED, else 0.
        text: the start of the original message; the first 20 characters are kept.

    Returns:
        ``"id:… sub:001 dlvrd:001 submit date:… done date:… stat:DELIVRD err:000 text:…"``
    """
    if delivered is None:
        delivered = submitted if state == MessageState.DELIVERED else 0
    stat = _STATE_TO_STAT.get(state, "UNKNOWN")
    return (
        f"id:{message_id} sub:{submitted:03d} dlvrd:{delivered:03d}"
        f" submit date:{_format_date(submitted_at)} done date:{_format_date(done_at)}"
        f" stat:{stat} err:{error} text:{text[:20]}"
    )


def _format_date(value: datetime | None) -> str:
    return "0000000000" if value is None else value.strftime("%y%m%d%H%M")


def build_receipt(
    *,
    message_id: str,
    state: MessageState,
    source_addr: str,
    destination_addr: str,
    submitted_at: datetime | None = None,
    done_at: datetime | None = None,
    error: str = "000",
    text: str = "",
    sequence_number: int | None = None,
) -> DeliverSm:
    """
    Build the ``deliver_sm`` an SMSC sends as a delivery receipt.

    The text is :func:`format_receipt`'s; ``esm_class`` is 0x04 and the
    ``receipted_message_id`` and ``message_state`` TLVs are set.

    Args:
        source_addr: the handset the message went to (a receipt travels back).
        destination_addr: the address that sent the message.
        sequence_number: usually ``None``: :meth:`Connection.send` assigns one.
        message_id, state, submitted_at, done_at, error, text: as for
            :func:`format_receipt`.

    Returns:
        The :class:`DeliverSm`, ready for :meth:`Connection.send`.
    """
    body = format_receipt(
        message_id=message_id,
        state=state,
        submitted_at=submitted_at,
        done_at=done_at,
        error=error,
        text=text,
    ).encode("latin-1", errors="replace")
    # A 64-character ID and 20 characters of text leave room to spare in the
    # 254 octets of short_message; only an absurd ``error`` could overflow it.
    tlvs = (Tlv.receipted_message_id(message_id), Tlv.message_state(state))
    return DeliverSm(
        sequence_number=sequence_number,
        source_addr=source_addr,
        destination_addr=destination_addr,
        esm_class=ESM_CLASS_DELIVERY_RECEIPT,
        short_message=body,
        tlvs=tlvs,
    )
