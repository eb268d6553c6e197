"""Bar charts as plain geometry, drawn by the templates as inline SVG (no script, no
network): each bar's length is worked out here, the labels are escaped there.

A missing figure (no ticket acknowledged, none with a target) gets no bar and says
"no data": it is never drawn as zero.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

__all__ = ["Bar", "BarChart", "bar_chart"]

#: Geometry of every chart (SVG user units).
LABEL_WIDTH = 180
BAR_AREA = 300
ROW_HEIGHT = 22
BAR_HEIGHT = 14
VALUE_GAP = 6


@dataclass(frozen=True)
class Bar:
    label: str
    value: float | None
    text: str
    y: float
    width: float


@dataclass(frozen=True)
class BarChart:
    title: str
    bars: tuple[Bar, ...]
    width: int
    height: int
    label_width: int = LABEL_WIDTH
    bar_height: int = BAR_HEIGHT
    value_gap: int = VALUE_GAP


def bar_chart(
    title: str,
    items: Sequence[tuple[str, float | None]],
    *,
    fmt: Callable[[float], str] = lambda v: f"{v:g}",
    scale_max: float | None = None,
) -> BarChart:
    """Horizontal bars for ``items`` (label, value or ``None``), scaled to the largest
    value or ``scale_max`` (100 for percentages)."""
    present = [v for _, v in items if v is not None]
    top = scale_max if scale_max is not None else max(present, default=0.0)
    bars = []
    for index, (label, value) in enumerate(items):
        width = 0.0
        if value is not None and top > 0:
            width = max(0.0, min(value / top, 1.0)) * BAR_AREA
        bars.append(
            Bar(
                label=label,
                value=value,
                text="no data" if value is None else fmt(value),
                y=index * ROW_HEIGHT,
                width=round(width, 1),
            )
        )
    return BarChart(
        title=title,
        bars=tuple(bars),
        width=LABEL_WIDTH + BAR_AREA + 90,
        height=max(len(bars), 1) * ROW_HEIGHT,
    )
