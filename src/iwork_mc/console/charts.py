"""The overview's bar chart, laid out as numbers for a server-rendered SVG (pure).

No chart script: the page draws ``<rect>`` elements at the positions computed
here, so the chart needs no JavaScript and no asset from elsewhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from iwork_mc.messages import Activity

__all__ = ["Bar", "Chart", "bar_chart"]

WIDTH = 720
HEIGHT = 180
#: Room under the bars for the hour labels.
_AXIS = 20


@dataclass(frozen=True, slots=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    value: int
    #: Shown under every few bars, and in the bar's tooltip.
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    accepted: tuple[Bar, ...]
    delivered: tuple[Bar, ...]
    peak: int
    width: int = WIDTH
    height: int = HEIGHT
    baseline: int = HEIGHT - _AXIS


def bar_chart(
    activity: Sequence[Activity],
    *,
    since_ms: int,
    bucket_ms: int,
    buckets: int,
    label: str = "{hour:02d}h",
    hour_of: Sequence[int] = (),
) -> Chart:
    """Two bars per bucket (accepted, delivered), scaled to the busiest bucket.

    ``hour_of[i]`` is the local hour bucket ``i`` starts at (for its label);
    buckets missing from ``activity`` are drawn empty.
    """
    by_index = {(a.start_ms - since_ms) // bucket_ms: a for a in activity}
    peak = max([1, *(max(a.accepted, a.delivered) for a in activity)])
    slot = WIDTH / buckets
    bar_width = slot * 0.4
    room = HEIGHT - _AXIS - 10
    accepted: list[Bar] = []
    delivered: list[Bar] = []
    for index in range(buckets):
        found = by_index.get(index)
        hour = hour_of[index] if index < len(hour_of) else index
        text = label.format(hour=hour)
        for values, offset, series in (
            (found.accepted if found else 0, 0.1, accepted),
            (found.delivered if found else 0, 0.5, delivered),
        ):
            height = room * values / peak
            series.append(
                Bar(
                    x=round(index * slot + slot * offset, 1),
                    y=round(HEIGHT - _AXIS - height, 1),
                    width=round(bar_width, 1),
                    height=round(height, 1),
                    value=values,
                    label=text,
                )
            )
    return Chart(accepted=tuple(accepted), delivered=tuple(delivered), peak=peak)
