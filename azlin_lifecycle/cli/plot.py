"""``history VM --plot``: the last checks as a terminal chart, in plain text.

On a terminal: check duration as a bar chart (eighth blocks, 8 rows), a row of failures
under it, and CPU, memory and disk as one-row sparklines on a 0-100 % scale; failed
checks in red; one column (or a few) per check, newest right, fitted to the terminal's
width (80 columns is plenty). Elsewhere (a pipe, a file) the same checks as a plain
ASCII table with a bar for the duration, which greps and diffs well.

No plotting library: these are a few dozen characters a row, and plotext (the
well-kept candidate) would add ~150 ms and ~14 MB to a command that starts in ~90 ms.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ..models import HealthStatus
from .output import table

BLOCKS = " ▁▂▃▄▅▆▇█"
ASCII_BLOCKS = " .:-=+*%#"  # the same eight steps where the terminal cannot show blocks
HEIGHT = 8  # rows of the duration chart
GUTTER = 9  # the y axis: " 10.00 s┤"
MIN_WIDTH, MAX_WIDTH = 40, 120
RED = "\x1b[31m"
RESET = "\x1b[0m"


@dataclass(frozen=True)
class Column:
    """One column of the chart: one check, or the worst of a few when there are more
    checks than columns."""

    duration: float
    failures: int
    mark: str  # "·" healthy, a digit: consecutive failures, "x" not counted, "!" needs you
    healthy: bool
    cpu: float | None
    memory: float | None
    disk: float | None


def mark_of(s: HealthStatus, healthy: str = "·") -> str:
    if s.healthy:
        return healthy
    if s.needs_you:
        return "!"
    if s.ssh_failures > 0:
        return str(s.ssh_failures) if s.ssh_failures < 10 else "+"
    return "x"  # unhealthy but not counted: stopped, not found, the grace period


def _mean(values: Sequence[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return sum(known) / len(known) if known else None


def columns(records: Sequence[HealthStatus], room: int) -> tuple[list[Column], int]:
    """The columns for ``room`` character cells, and how many cells each takes."""
    n = len(records)
    per = max(1, math.ceil(n / room))  # checks per column
    groups = [records[i:i + per] for i in range(0, n, per)]
    out = []
    for group in groups:
        worst = max(group, key=lambda s: (not s.healthy, s.needs_you, s.ssh_failures))
        out.append(Column(
            duration=max(s.check_duration_seconds for s in group),
            failures=max(s.ssh_failures for s in group), mark=mark_of(worst),
            healthy=all(s.healthy for s in group),
            cpu=_mean([s.metrics.cpu_percent if s.metrics else None for s in group]),
            memory=_mean([s.metrics.memory_percent if s.metrics else None for s in group]),
            disk=_mean([s.metrics.disk_percent if s.metrics else None for s in group])))
    cell = max(1, min(3, room // max(1, len(out))))
    return out, cell


def _level(value: float, top: float, steps: int) -> int:
    return 0 if top <= 0 else max(0, min(steps, round(value / top * steps)))


def chart(vm: str, records: Sequence[HealthStatus], width: int = 80, *,
          unicode: bool = True, color: bool = False) -> list[str]:
    """The terminal chart of ``records`` (oldest first), at most ``width`` columns."""
    width = max(MIN_WIDTH, min(MAX_WIDTH, width))
    blocks = BLOCKS if unicode else ASCII_BLOCKS
    room = width - GUTTER - 1 - len(" last 100%")
    cols, cell = columns(records, room)
    paint: Callable[[str, bool], str] = (
        (lambda text, bad: f"{RED}{text}{RESET}" if bad and text.strip() else text)
        if color else (lambda text, bad: text))
    first, last = records[0].timestamp, records[-1].timestamp
    per = math.ceil(len(records) / len(cols))
    lines = [f"{vm}: last {len(records)} checks, {first:%Y-%m-%d %H:%M:%S} to "
             f"{last:%H:%M:%S} UTC, newest right"
             + (f"; a column is the worst of {per}" if per > 1 else "")]
    top = max(c.duration for c in cols)
    top = top if top > 0 else 1.0
    eighths = [_level(c.duration, top, HEIGHT * 8) for c in cols]
    axis, tick = ("┤", "│") if unicode else ("|", "|")
    lines.append("check duration")
    for row in range(HEIGHT, 0, -1):
        floor = (row - 1) * 8
        label = f"{top * row / HEIGHT:6.2f} s" if row in (HEIGHT, HEIGHT // 2) else ""
        cells = [paint(blocks[max(0, min(8, e - floor))] * cell, not c.healthy)
                 for c, e in zip(cols, eighths, strict=True)]
        lines.append(f"{label:>{GUTTER - 1}}{axis if label else tick}{''.join(cells)}")
    base = "└" if unicode else "+"
    rule = "─" if unicode else "-"
    lines.append(f"{'0 s':>{GUTTER - 1}}{base}{rule * (len(cols) * cell)}")
    dot = "·" if unicode else "."
    lines.append(_row("failures", [paint(c.mark.replace("·", dot).center(cell), c.mark != "·")
                                   for c in cols]))
    for name in ("cpu", "memory", "disk"):
        values: list[float | None] = [getattr(c, name) for c in cols]
        sparks = [" " * cell if v is None else blocks[_level(v, 100, 8)] * cell for v in values]
        latest = next((v for v in reversed(values) if v is not None), None)
        lines.append(_row(name, sparks) + ("" if latest is None else f" last {latest:.0f}%"))
    stamp_room = len(cols) * cell
    left, right = f"{first:%H:%M:%S}", f"{last:%H:%M:%S}"
    if stamp_room >= len(left) + len(right) + 1:
        lines.append(" " * GUTTER + left + right.rjust(stamp_room - len(left)))
    lines.append(f"failures: {dot} healthy, 1-9 consecutive failures (+ for more), x unhealthy "
                 "but not counted, ! needs you; cpu, memory, disk on 0-100 %")
    return [_fit(line.rstrip(), width) for line in lines]


def _row(name: str, cells: Sequence[str]) -> str:
    return f"{name:<{GUTTER}}{''.join(cells)}"


def _fit(line: str, width: int) -> str:
    """``line`` wrapped at ``width`` for the legend (the chart rows fit by construction)."""
    if len(line) <= width or "\x1b" in line:
        return line
    words, out, current = line.split(" "), [], ""
    for word in words:
        if current and len(current) + 1 + len(word) > width:
            out.append(current)
            current = "  " + word
        else:
            current = f"{current} {word}" if current else word
    return "\n".join([*out, current])


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


def plain(vm: str, records: Sequence[HealthStatus]) -> list[str]:
    """The same checks as an ASCII table (for a pipe or a file)."""
    top = max(r.check_duration_seconds for r in records) or 1.0
    rows = [[f"{r.timestamp:%Y-%m-%d %H:%M:%S}", f"{r.check_duration_seconds:6.2f}",
             "#" * _level(r.check_duration_seconds, top, 20) or ".", mark_of(r, "."),
             _pct(r.metrics.cpu_percent if r.metrics else None),
             _pct(r.metrics.memory_percent if r.metrics else None),
             _pct(r.metrics.disk_percent if r.metrics else None)] for r in records]
    head = [f"{vm}: last {len(records)} checks, oldest first; DURATION in seconds "
            f"({top:.2f} s = 20 #)",
            "FAIL: . healthy, 1-9 consecutive failures, x not counted, ! needs you"]
    body = table(["TIME (UTC)", "DURATION", "", "FAIL", "CPU", "MEM", "DISK"], rows)
    return [*head, *body.splitlines()]
