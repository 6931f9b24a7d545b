"""
Test doubles for the code that talks to the outside world.

:class:`FakeSMSC` is a real SMPP 3.4 server on 127.0.0.1, built on
:mod:`iwork_mc.smpp`, whose behaviour (refused binds, throttling, rejected
destinations, early, duplicate or out-of-order receipts, dropped connections)
is set by an :class:`SMSCPolicy`.  The SMPP channel's tests and
``bench/smpp_libraries.py`` use it.
"""

from __future__ import annotations

from iwork_mc.testing.smsc import FakeSMSC, ReceiptRecord, SMSCPolicy, Submission

__all__ = ["FakeSMSC", "ReceiptRecord", "SMSCPolicy", "Submission"]
