"""Per-app flow control (code 7): a token bucket that tolerates calls arriving out of clock order."""

from __future__ import annotations

from iwork_mc.gateway.flowcontrol import FlowControl


def test_bursts_then_waits() -> None:
    """An app may burst, then waits whole seconds for the next token."""
    control = FlowControl(rate=2.0, burst=3)
    assert [0, 0, 0] == [control.admit("app", 100.0) for _ in range(3)]
    assert 1 == control.admit("app", 100.0)
    assert 0 == control.admit("app", 100.6)


def test_out_of_order_clock_readings_take_no_extra_tokens() -> None:
    """A call that read the clock earlier but arrives later does not drain the bucket."""
    control = FlowControl(rate=100.0, burst=100)
    assert 0 == control.admit("app", 10.0)
    for _ in range(50):
        assert 0 == control.admit("app", 9.0)  # stale readings from concurrent calls
    assert 0 == control.admit("app", 10.0)


def test_zero_rate_disables_it() -> None:
    """A rate of 0 admits everything."""
    control = FlowControl(rate=0, burst=1)
    assert {0} == {control.admit("app", 1.0) for _ in range(1000)}
