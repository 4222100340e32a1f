"""``azlin lifecycle history VM --plot``: a chart on a terminal (run here in a real
pseudo-terminal of 80 columns), a plain ASCII table elsewhere; both fit in 80 columns."""

from __future__ import annotations

import datetime as dt
import fcntl
import os
import pty
import re
import struct
import subprocess
import sys
import termios
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from azlin_lifecycle.cli.main import cli
from azlin_lifecycle.cli.plot import chart, columns, plain
from azlin_lifecycle.models import HealthStatus, SshFault, VMMetrics, VMState
from azlin_lifecycle.state import StateStore

ANSI = re.compile(r"\x1b\[[0-9;]*m")
T0 = dt.datetime(2026, 12, 3, 14, 0, tzinfo=dt.UTC)


def checks(n: int, hung: range = range(0)) -> list[HealthStatus]:
    """``n`` checks 10 s apart; those in ``hung`` failed (1, 2, 3 ... in a row)."""
    out = []
    for i in range(n):
        when = T0 + dt.timedelta(seconds=10 * i)
        if i in hung:
            out.append(HealthStatus("vm-002", VMState.RUNNING, False, i - hung.start + 1, False,
                                    "SSH timed out (hung)", check_duration_seconds=2.0,
                                    timestamp=when, fault=SshFault.HUNG))
        else:
            out.append(HealthStatus("vm-002", VMState.RUNNING, True, 0, True, None,
                                    metrics=VMMetrics(cpu_percent=20.0, memory_percent=50.0,
                                                      disk_percent=75.0),
                                    check_duration_seconds=0.25, timestamp=when))
    return out


def visible(line: str) -> str:
    return ANSI.sub("", line)


@pytest.mark.parametrize("n", [1, 3, 20, 59, 60, 200, 1000])
def test_the_chart_fits_in_80_columns_whatever_the_number_of_checks(n: int) -> None:
    lines = "\n".join(chart("vm-002", checks(n, range(n // 2, n // 2 + 1)), 80,
                            color=True)).splitlines()
    assert max(len(visible(line)) for line in lines) <= 80, lines


def test_the_chart_shows_duration_failures_and_resources() -> None:
    lines = chart("vm-002", checks(20, range(10, 13)), 80)
    text = "\n".join(lines)
    assert lines[0] == ("vm-002: last 20 checks, 2026-12-03 14:00:00 to 14:03:10 UTC, "
                        "newest right")
    assert "  2.00 s┤" in text and "  1.00 s┤" in text and "0 s└" in text
    failures = next(line for line in lines if line.startswith("failures "))
    assert failures.split() == ["failures", *["·"] * 10, "1", "2", "3", *["·"] * 7]
    # 20 checks in 80 columns: each takes 3 cells; the hung ones reach the top row.
    top = lines[2]
    assert top[9:].strip() == "█" * 9 and top.index("█") == 9 + 10 * 3
    for name, level in (("cpu", "▂"), ("memory", "▄"), ("disk", "▆")):
        row = next(line for line in lines if line.startswith(name))
        assert level * 3 in row and row.endswith(f"last {int({'cpu': 20, 'memory': 50, 'disk': 75}[name])}%")
    assert re.search(r"^ {9}14:00:00 +14:03:10$", text, re.M)


def test_more_checks_than_columns_keep_the_worst_of_each_group() -> None:
    cols, cell = columns(checks(120, range(61, 62)), 60)
    assert (len(cols), cell) == (60, 1)
    assert [c.mark for c in cols].count("1") == 1 and cols[30].duration == 2.0
    assert "a\n  column is the worst of 2" in chart("vm-002", checks(120), 80)[0]


def test_ascii_when_the_terminal_cannot_show_blocks() -> None:
    text = "\n".join(chart("vm-002", checks(20, range(5, 6)), 80, unicode=False))
    assert text.isascii() and "#" in text


def test_the_plain_table_is_ascii_and_fits() -> None:
    lines = plain("vm-002", checks(20, range(10, 12)))
    assert all(line.isascii() and len(line) <= 80 for line in lines), lines
    assert lines[2].split() == ["TIME", "(UTC)", "DURATION", "FAIL", "CPU", "MEM", "DISK"]
    assert lines[3].split() == ["2026-12-03", "14:00:00", "0.25", "##", ".", "20%", "50%", "75%"]
    hung = lines[3 + 10].split()
    assert hung[2:5] == ["2.00", "#" * 20, "1"] and hung[5:] == ["-", "-", "-"]


@pytest.fixture
def recorded(isolated_dirs: Path, tmp_path: Path) -> Path:
    state = tmp_path / "state"
    store = StateStore(state / "azlin-lifecycle" / "state.db")
    store.add_checks(checks(30, range(20, 23)))
    store.close()
    return state


def test_history_plot_without_a_terminal_prints_the_table(recorded: Path) -> None:
    runner = CliRunner()
    out = runner.invoke(cli, ["history", "vm-002", "--plot", "-n", "5"])
    assert out.exit_code == 0, out.output
    lines = out.output.splitlines()
    assert lines[0].startswith("vm-002: last 5 checks, oldest first")
    assert len(lines) == 3 + 5 and all(line.isascii() for line in lines)
    both = runner.invoke(cli, ["history", "vm-002", "--plot", "--json"])
    assert both.exit_code == 2 and "--plot and --json cannot be used together" in both.output


def test_history_plot_on_a_real_80_column_terminal(recorded: Path) -> None:
    """The installed command in a pseudo-terminal, as a person would run it."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 80, 0, 0))
    env = {**os.environ, "LANG": "C.UTF-8", "COLUMNS": "", "TERM": "xterm"}
    env.pop("COLUMNS")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "azlin-lifecycle"), "history",
                             "vm-002", "--plot", "-n", "30"], stdin=follower, stdout=follower,
                            stderr=follower, env=env, close_fds=True)
    os.close(follower)
    chunks = []
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            data = os.read(leader, 65536)
        except OSError:  # the command ended and closed the terminal
            break
        if not data:
            break
        chunks.append(data)
    os.close(leader)
    assert proc.wait(timeout=30) == 0
    text = b"".join(chunks).decode()
    lines = [visible(line) for line in text.replace("\r\n", "\n").splitlines()]
    assert lines[0].startswith("vm-002: last 30 checks")
    assert max(len(line) for line in lines) <= 80
    assert "█" in text and "\x1b[31m" in text  # blocks, and the failed checks in red
    failures = next(line for line in lines if line.startswith("failures "))
    assert "123" in failures.replace(" ", "")
