"""Small bar charts as SVG, drawn on the server: the review page shows an account's last
days without a line of JavaScript (its Content-Security-Policy allows none).

Pure: numbers in, a string out. Every text put into the SVG is escaped; each chart names
itself (``<title>``, ``aria-label``) and says in words what it shows (``<desc>`` and the
summary the page prints under it), so a screen reader, or a reader without pictures, gets
the same as a look at the bars. Bars are proportional to their values over one scale per
chart (the largest value or line, at least 1); a line (the account guard's warn and pause
lines) is drawn where it is known and left out on days it is not (no sends told).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from feedback_mta.config import GuardConfig
from feedback_mta.queries.reports import Days

#: Geometry, in SVG user units (the page draws them at this size).
HEIGHT, PLOT, TOP, LEFT, BAR, GAP = 140, 90, 22, 34, 5, 3


@dataclass(frozen=True)
class Series:
    name: str
    values: tuple[int, ...]
    colour: str


@dataclass(frozen=True)
class Line:
    """A threshold per day (None: not known that day), drawn over the bars of ``series``
    (its index): the summary counts the days those bars reach it."""

    name: str
    values: tuple[float | None, ...]
    colour: str
    series: int = 0


@dataclass(frozen=True)
class Chart:
    svg: str
    summary: str


def _text(value: object) -> str:
    return escape(str(value), quote=True)


def _number(value: float) -> str:
    return f"{value:.2f}".rstrip("0").rstrip(".")


def scale(series: Sequence[Series], lines: Sequence[Line] = ()) -> float:
    """The value drawn at the top of the plot: the largest bar or line, at least 1."""
    values: list[float] = [v for s in series for v in s.values]
    values += [v for line in lines for v in line.values if v is not None]
    return float(max([1, *values]))


def bar_height(value: float, top: float) -> float:
    return round(value / top * PLOT, 2)


def bar_chart(title: str, days: Sequence[str], series: Sequence[Series],
              lines: Sequence[Line] = ()) -> Chart:
    """Bars per day, one per series side by side, and the lines over them."""
    top = scale(series, lines)
    slot = len(series) * BAR + GAP
    legend, legend_end = _legend([(s.name, s.colour, False) for s in series]
                                 + [(line.name, line.colour, True) for line in lines])
    end = LEFT + len(days) * slot
    width = max(end, legend_end) + 8
    base = TOP + PLOT
    said = summary(title, days, series, lines)
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" role="img" class="chart" '
           f'width="{width}" height="{HEIGHT}" viewBox="0 0 {width} {HEIGHT}" '
           f'aria-label="{_text(title)}">',
           f"<title>{_text(title)}</title>", f"<desc>{_text(said)}</desc>", *legend]
    out.append(f'<text x="{LEFT - 4}" y="{TOP + 4}" font-size="10" text-anchor="end">'
               f"{_text(_number(top))}</text>")
    out.append(f'<text x="{LEFT - 4}" y="{base}" font-size="10" text-anchor="end">0</text>')
    out.append(f'<line x1="{LEFT}" y1="{base}" x2="{end}" y2="{base}" stroke="#999"/>')
    for i, day in enumerate(days):
        for j, s in enumerate(series):
            value = s.values[i]
            h = bar_height(value, top)
            x = LEFT + i * slot + j * BAR
            out.append(f'<rect class="bar" data-series="{j}" data-value="{value}" x="{x}" '
                       f'y="{round(base - h, 2)}" width="{BAR}" height="{h}" '
                       f'fill="{_text(s.colour)}"><title>{_text(day)}: {value} '
                       f"{_text(s.name)}</title></rect>")
    for line in lines:
        path = _path(line.values, top, slot)
        if path:
            out.append(f'<path class="threshold" d="{path}" fill="none" stroke-width="1.5" '
                       f'stroke="{_text(line.colour)}" stroke-dasharray="4 2">'
                       f"<title>{_text(line.name)}</title></path>")
    if days:
        out.append(f'<text x="{LEFT}" y="{base + 14}" font-size="10">{_text(days[0])}</text>')
        out.append(f'<text x="{end}" y="{base + 14}" font-size="10" '
                   f'text-anchor="end">{_text(days[-1])}</text>')
    out.append("</svg>")
    return Chart("".join(out), said)


def _legend(entries: Sequence[tuple[str, str, bool]]) -> tuple[list[str], int]:
    """The key above the plot, and where it ends (about 6 units a character)."""
    out, x = [], LEFT
    for name, colour, is_line in entries:
        mark = (f'<line x1="{x}" y1="10" x2="{x + 10}" y2="10" stroke="{_text(colour)}" '
                f'stroke-width="2" stroke-dasharray="4 2"/>' if is_line else
                f'<rect x="{x}" y="5" width="10" height="10" fill="{_text(colour)}"/>')
        out.append(f'{mark}<text x="{x + 14}" y="14" font-size="11">{_text(name)}</text>')
        x += 24 + 6 * len(name)
    return out, x


def _path(values: Sequence[float | None], top: float, slot: int) -> str:
    """A step line across each day's slot, broken where the value is not known."""
    parts: list[str] = []
    joined = False
    for i, value in enumerate(values):
        if value is None:
            joined = False
            continue
        y = round(TOP + PLOT - bar_height(min(value, top), top), 2)
        x = LEFT + i * slot
        parts.append(f"{'L' if joined else 'M'}{x} {y} L{x + slot} {y}")
        joined = True
    return " ".join(parts)


def summary(title: str, days: Sequence[str], series: Sequence[Series],
            lines: Sequence[Line] = ()) -> str:
    """The chart in words: per series its total and busiest day, per line the days the
    bars reached it (or that it is not known)."""
    span = f"{days[0]} to {days[-1]}" if days else "no days"
    said = []
    for s in series:
        total = sum(s.values)
        peak = max(range(len(s.values)), key=lambda i: s.values[i]) if total else None
        said.append(f"{s.name}: {total}" + (
            f" (most {s.values[peak]} on {days[peak]})" if peak is not None else ""))
    for line in lines:
        known = [i for i, v in enumerate(line.values) if v is not None]
        if not known:
            said.append(f"{line.name}: not known (no sends told)")
            continue
        bars = series[line.series].values
        reached = sum(1 for i in known if bars[i] and bars[i] >= (line.values[i] or 0))
        said.append(f"{line.name} reached on {reached} of {len(known)} days with sends")
    return f"{title}, {span}: " + "; ".join(said) + "."


def review_charts(days: Days, guard: GuardConfig) -> tuple[Chart, ...]:
    """The review page's three: leads and spam leads; complaints, and hard bounces, each
    against the guard's warn and pause lines as counts (the rate times the day's sends)."""
    def lines(warn: float, pause: float) -> tuple[Line, Line]:
        return (Line(f"warn {warn:.1%}", _times(warn, days.sent), "#e69500"),
                Line(f"pause {pause:.1%}", _times(pause, days.sent), "#c0392b"))

    return (
        bar_chart("Leads per day", days.days,
                  [Series("leads", days.leads, "#2a6fdb"),
                   Series("spam leads", days.spam_leads, "#999999")]),
        bar_chart("Complaints per day", days.days,
                  [Series("complaints", days.complaints, "#8e44ad")],
                  lines(guard.complaint_warn, guard.complaint_pause)),
        bar_chart("Hard bounces per day", days.days,
                  [Series("hard bounces", days.hard_bounces, "#16a085")],
                  lines(guard.bounce_warn, guard.bounce_pause)),
    )


def _times(rate: float, sent: Sequence[int]) -> tuple[float | None, ...]:
    return tuple(rate * n if n else None for n in sent)
