"""Settings of the SMPP channel, and how an SMSC's answers are classified.

The classification table is data: docs/howto/smpp.md renders the same table, and
changing how a status is treated is changing one line here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from iwork_mc.smpp import CommandStatus

__all__ = [
    "PERMANENT_STATUSES",
    "BindMode",
    "DestinationFormat",
    "LongMessages",
    "SMPPConfig",
    "is_permanent",
]

LongMessages = Literal["udh8", "udh16", "sar", "payload"]
BindMode = Literal["transceiver", "separate"]
DestinationFormat = Literal["international", "national"]


@dataclass(frozen=True, kw_only=True)
class SMPPConfig:
    """How to reach one SMSC; see docs/howto/smpp.md for each field."""

    host: str = "127.0.0.1"
    port: int = 2775
    system_id: str = ""
    password: str = field(default="", repr=False)
    system_type: str = ""
    #: One bind_transceiver per session, or a transmitter and a receiver.
    bind_mode: BindMode = "transceiver"
    #: Sessions opened to the SMSC at once.
    binds: int = 1
    #: submit_sm sent and not yet answered, per session.
    window: int = 10
    #: submit_sm per second per session (0: no cap); halved on throttling, regained slowly.
    rate: float = 0.0
    enquire_link_interval_s: float = 30.0
    #: How long to wait for any response before the session is considered broken.
    response_timeout_s: float = 10.0
    reconnect_min_s: float = 0.5
    reconnect_max_s: float = 30.0
    source_addr: str = ""
    source_ton: int = 5  # alphanumeric
    source_npi: int = 0
    destination_format: DestinationFormat = "international"
    long_messages: LongMessages = "udh8"
    registered_delivery: bool = True
    #: The SMSC answers query_sm: used to check a message submitted before a crash.
    query_sm: bool = False
    #: How long an in-doubt submission waits before it is sent again.
    in_doubt_resend_s: float = 30.0
    #: How often one segment is retried after ESME_RTHROTTLED before giving the message back.
    throttle_retries: int = 5
    #: How long a session waits after ESME_RTHROTTLED before submitting again.
    throttle_pause_s: float = 1.0
    #: How long send() waits for a bound session before giving the message back.
    bind_wait_s: float = 5.0


#: Statuses after which the same message will never be accepted: fail it at once.
#: Everything else (throttling, queue full, system errors, unknown codes) is retried.
PERMANENT_STATUSES = frozenset(
    {
        CommandStatus.ESME_RINVDSTADR,  # invalid destination address
        CommandStatus.ESME_RINVDSTTON,
        CommandStatus.ESME_RINVDSTNPI,
        CommandStatus.ESME_RINVSRCADR,
        CommandStatus.ESME_RINVSRCTON,
        CommandStatus.ESME_RINVSRCNPI,
        CommandStatus.ESME_RINVMSGLEN,
        CommandStatus.ESME_RINVESMCLASS,
        CommandStatus.ESME_RINVNUMDESTS,
        CommandStatus.ESME_RINVDLNAME,
        CommandStatus.ESME_RINVREGDLVFLG,
        CommandStatus.ESME_RINVSERTYP,
        CommandStatus.ESME_RINVPRTFLG,
        CommandStatus.ESME_RINVSCHED,
        CommandStatus.ESME_RINVEXPIRY,
        CommandStatus.ESME_RINVOPTPARSTREAM,
        CommandStatus.ESME_ROPTPARNOTALLWD,
        CommandStatus.ESME_RINVPARLEN,
        CommandStatus.ESME_RINVOPTPARAMVAL,
        CommandStatus.ESME_RX_P_APPN,  # the SMSC's application refused it permanently
        CommandStatus.ESME_RX_R_APPN,  # rejected by the SMSC's application
    }
)


def is_permanent(status: int) -> bool:
    """Whether an SMSC's refusal of a submit_sm is final for that message."""
    return status in PERMANENT_STATUSES
