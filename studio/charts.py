"""Stacked bar charts drawn on the server as SVG: the geometry here, the markup in templates/charts/_bar_chart.html.

No chart library and no script: the page stays within the CSP (no inline styles; every colour is a CSS class in
static/css/studio.css), a screen reader gets the chart's title, a summary and, per bar, its numbers, and the same
numbers are in a table under the chart.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Mapping, Sequence

# The drawing's own units (the viewBox); the SVG scales to the width of its container.
WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 44, 8, 10, 26
MAX_LABELS = 12


@dataclass(frozen=True)
class Segment:
    """One series' part of a bar."""

    series: str
    value: int
    y: float
    height: float


@dataclass(frozen=True)
class Bar:
    """One column: its label, where it is and its stacked segments (bottom first)."""

    label: str
    x: float
    width: float
    total: int
    segments: tuple[Segment, ...]
    show_label: bool

    @property
    def label_x(self) -> float:
        """Return the middle of the bar, where its label goes."""
        return self.x + self.width / 2

    def describe(self, titles: Mapping[str, str]) -> str:
        """Return the bar's numbers in words, for its tooltip and screen readers."""
        parts = [f"{segment.value} {titles.get(segment.series, segment.series).lower()}"
                 for segment in self.segments if segment.value]
        return f"{self.label}: {', '.join(parts) if parts else 'none'}"


@dataclass(frozen=True)
class Tick:
    """A horizontal grid line with its value."""

    y: float
    value: int


@dataclass(frozen=True)
class BarChart:
    """A stacked bar chart, ready to draw."""

    title: str
    bars: tuple[Bar, ...]
    series: tuple[str, ...]
    titles: Mapping[str, str]
    ticks: tuple[Tick, ...]
    width: int = WIDTH
    height: int = HEIGHT

    @property
    def baseline(self) -> float:
        """Return the y of the horizontal axis."""
        return self.height - BOTTOM

    @property
    def plot_left(self) -> float:
        """Return the x where the bars start."""
        return LEFT

    @property
    def plot_right(self) -> float:
        """Return the x where the bars end."""
        return self.width - RIGHT

    @property
    def total(self) -> int:
        """Return the sum of every bar."""
        return sum(bar.total for bar in self.bars)

    def summary(self) -> str:
        """Return what the chart shows in one sentence: the total, and per series."""
        sums = {name: sum(segment.value for bar in self.bars for segment in bar.segments if segment.series == name)
                for name in self.series}
        parts = [f"{value} {self.titles.get(name, name).lower()}" for name, value in sums.items() if value]
        return f"{self.total} in all" + (f": {', '.join(parts)}." if parts else ".")


def nice_maximum(value: int) -> int:
    """Return a round number at least as large as value (1, 2, 5 times a power of ten), for the axis."""
    if value <= 0:
        return 1
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power


def bar_chart(title: str, columns: Sequence[tuple[str, Mapping[str, int]]], series: Sequence[str],
              titles: Mapping[str, str] | None = None) -> BarChart:
    """Lay out one stacked bar per column (label, values by series), series stacked in the order given."""
    titles = dict(titles or {})
    top = nice_maximum(max((sum(values.get(name, 0) for name in series) for _, values in columns), default=0))
    plot_height = HEIGHT - TOP - BOTTOM
    slot = (WIDTH - LEFT - RIGHT) / max(len(columns), 1)
    gap = min(slot * 0.2, 6)
    every = math.ceil(len(columns) / MAX_LABELS) or 1
    bars = []
    for index, (label, values) in enumerate(columns):
        y = HEIGHT - BOTTOM
        segments = []
        for name in series:
            value = int(values.get(name, 0))
            height = plot_height * value / top
            y -= height
            segments.append(Segment(name, value, round(y, 2), round(height, 2)))
        # The newest column is labelled whatever the spacing: it is the one people look for.
        shown = (len(columns) - 1 - index) % every == 0
        bars.append(Bar(label, round(LEFT + index * slot + gap / 2, 2), round(slot - gap, 2),
                        sum(segment.value for segment in segments), tuple(segments), shown))
    ticks = tuple(Tick(round(HEIGHT - BOTTOM - plot_height * step / 4, 2), round(top * step / 4))
                  for step in range(5) if float(top * step / 4).is_integer())
    return BarChart(title, tuple(bars), tuple(series), titles, ticks)
