"""
Test doubles for the code that talks to the outside world.

:class:`FakeSMSC` is a real SMPP 3.4 server on 127.0.0.1, built on
:mod:`iwork_mc.smpp`, whose behaviour (refused binds, throttling, rejected
destinations, early, duplicate or out-of-order receipts, dropped connections)
is set by an :class:`SMSCPolicy`.  The SMPP channel's tests and
``bench/smpp_libraries.py`` use it.

:class:`FakeAliyunSMS` and :class:`FakeTencentSMS` are real HTTP servers on
127.0.0.1 that speak the two cloud SMS providers' APIs to their unmodified
official SDKs, verifying each request's signature (ACS3-HMAC-SHA256, TC3-HMAC-SHA256)
and answering success, each class of error, throttling, slow answers and receipts.
"""

from __future__ import annotations

from iwork_mc.testing._http import SentSMS
from iwork_mc.testing.aliyun_sms import FakeAliyunSMS
from iwork_mc.testing.smsc import FakeSMSC, ReceiptRecord, SMSCPolicy, Submission
from iwork_mc.testing.tencent_sms import FakeTencentSMS

__all__ = [
    "FakeAliyunSMS",
    "FakeSMSC",
    "FakeTencentSMS",
    "ReceiptRecord",
    "SMSCPolicy",
    "SentSMS",
    "Submission",
]
