"""The chaos soak's invariants, judged at the end from what was injected (the harness's
fault log), the stand-in's operation log, the daemon's journal (its log lines), its state
store and the hooks' own log. Each gives a row: (invariant, checked, violations, verdict,
notes)."""

from __future__ import annotations

import contextlib
import re
import sqlite3
import statistics
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from _chaos_daemon import Sample
from _chaos_faults import GUEST, Injected

REPAIRS = ("restart", "redeploy", "start")
MATCH_SECONDS = 300.0  # a ledger row's intent precedes its operation by at most this
EVENT_LINE = re.compile(r"^\d\d:\d\d:\d\d \w+ \[(?P<vm>[^\]]+)\] (?P<event>\w+):")


@dataclass
class Row:
    name: str
    checked: int
    violations: list[str] = field(default_factory=list)
    judged: str | None = None  # why it is not judged, if it is not

    @property
    def verdict(self) -> str:
        if self.judged is not None:
            return f"not judged ({self.judged})"
        return "FAIL" if self.violations else "ok"


def ledger(db: Path) -> list[dict[str, Any]]:
    with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
        rows = conn.execute("SELECT vm, action, started, ended, outcome FROM repairs "
                            "ORDER BY started").fetchall()
    return [dict(zip(("vm", "action", "started", "ended", "outcome"), r, strict=True))
            for r in rows if r[4] != "dry_run"]


def journal_events(log: Path) -> list[tuple[str, str]]:
    """(vm, event) of each event line of the daemon's output, in order."""
    out = []
    for line in log.read_text(errors="replace").splitlines():
        m = EVENT_LINE.match(line)
        if m:
            out.append((m["vm"], m["event"]))
    return out


def hook_lines(path: Path) -> list[tuple[str, str, float, str]]:
    out = []
    if path.exists():
        for line in path.read_text(errors="replace").splitlines():
            parts = line.split()
            if len(parts) == 4:
                with contextlib.suppress(ValueError):
                    out.append((parts[0], parts[1], float(parts[2]), parts[3]))
    return out


def incidents(ops: list[dict[str, Any]], faults: list[Injected], hung: set[str],
              kills: list[tuple[float, bool]]) -> tuple[Row, Row, int]:
    """No VM repaired twice for one incident; no repair without a guest-side fault.

    A repair is justified by the VM's last guest-side injection before it. A second
    repair for the same injection is allowed only if every earlier one failed on its own
    (the stand-in failed it, or it hung there and the daemon gave up on it); one that
    succeeded, or was cut short by the second (preempted), makes a double repair."""
    double = Row("no VM repaired twice for one incident (none after a SIGKILL)", 0)
    monitor = Row("no repair for a monitor-side fault", 0)
    after_kill = 0
    by_vm: dict[str, list[dict[str, Any]]] = {}
    for op in sorted(ops, key=lambda o: o["started"]):
        by_vm.setdefault(op["vm"], []).append(op)
    for vm, vm_ops in by_vm.items():
        guest = [f.at for f in faults if f.vm == vm and f.kind in GUEST]
        for i, op in enumerate(vm_ops):
            monitor.checked += 1
            double.checked += 1
            cause = max((t for t in guest if t <= op["started"]), default=None)
            if cause is None:
                monitor.violations.append(f"{vm}: {op['action']} at {op['started']:.0f} with "
                                          "no guest-side fault injected")
                continue
            earlier = [o for o in vm_ops[:i] if o["started"] > cause]
            if any(kills and cause < k < op["started"] for k, _ in kills) and earlier:
                after_kill += 1
            for o in earlier:
                preempted = o["error_code"] == "OperationPreempted"
                if o["status"] == "Succeeded" or (preempted and o["id"] not in hung):
                    double.violations.append(
                        f"{vm}: {op['action']} at {op['started']:.0f} after {o['action']} at "
                        f"{o['started']:.0f} ({o['status']}"
                        f"{', preempted' if preempted else ''}) for the fault of "
                        f"{cause:.0f}")
                    break
    return double, monitor, after_kill


def budget(ops: list[dict[str, Any]], allowed: int, window: float) -> Row:
    row = Row(f"no repair beyond a VM's budget ({allowed} per {window / 60:.0f} min)", 0)
    by_vm: dict[str, list[float]] = {}
    for op in ops:
        by_vm.setdefault(op["vm"], []).append(op["started"])
    for vm, times in by_vm.items():
        times.sort()
        for i, t in enumerate(times):
            row.checked += 1
            inside = [u for u in times[: i + 1] if u > t - window]
            if len(inside) > allowed:
                row.violations.append(f"{vm}: {len(inside)} repairs within {window:.0f} s")
    return row


def recorded(ops: list[dict[str, Any]], rows: list[dict[str, Any]],
             events: list[tuple[str, str]]) -> Row:
    """Every operation has its ledger row (intent before it) and its journal entry."""
    row = Row("every repair recorded (ledger and journal)", len(ops))
    free = list(rows)
    for op in sorted(ops, key=lambda o: o["started"]):
        match = next((r for r in free if r["vm"] == op["vm"] and r["action"] == op["action"]
                      and op["started"] - MATCH_SECONDS <= r["started"] <= op["started"] + 1),
                     None)
        if match is None:
            row.violations.append(f"{op['vm']}: {op['action']} at {op['started']:.0f} has no "
                                  "ledger row")
        else:
            free.remove(match)
    for vm in {op["vm"] for op in ops}:
        sent = sum(1 for op in ops if op["vm"] == vm)
        told = sum(1 for v, e in events if v == vm and e in ("restart_requested",
                                                             "escalation_redeploy"))
        if told < sent:
            row.violations.append(f"{vm}: {sent} repairs, {told} journalled as requested")
    return row


def on_restart(hooks: list[tuple[str, str, float, str]], rows: list[dict[str, Any]],
               ops: list[dict[str, Any]]) -> Row:
    """Each on_restart firing is one repair's: a ledger row of its VM begun before it, not
    matched by another firing; a "success" one also an operation of that VM."""
    fired = sorted((h for h in hooks if h[0] == "on_restart"), key=lambda h: h[2])
    row = Row("every on_restart matches a repair", len(fired))
    if not hooks and any(r["ended"] for r in rows):
        row.violations.append("repairs ended, yet no hook ever ran (see the journal's "
                              "hook_result)")
    free_rows, free_ops = list(rows), [o for o in ops if o["status"] == "Succeeded"]
    for _, vm, at, result in fired:
        match = next((r for r in free_rows if r["vm"] == vm and r["started"] <= at), None)
        if match is None:
            row.violations.append(f"{vm}: on_restart at {at:.0f} ({result}) matches no repair")
            continue
        free_rows.remove(match)
        if result == "success":
            op = next((o for o in free_ops if o["vm"] == vm and o["started"] <= at), None)
            if op is None:
                row.violations.append(f"{vm}: on_restart success at {at:.0f} but no "
                                      "succeeded operation")
            else:
                free_ops.remove(op)
    return row


def config_file(path: Path, expected: dict[tuple[str, str], int], edits: int,
                cli_violations: list[str]) -> Row:
    row = Row("config always valid TOML, no CLI edit lost", edits)
    row.violations += cli_violations
    try:
        doc = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, OSError) as exc:
        row.violations.append(f"the final file is not valid TOML: {exc}")
        return row
    for (vm, key), value in expected.items():
        got = doc.get("vms", {}).get(vm, {}).get(key)
        if got != value:
            row.violations.append(f"{vm}.{key} is {got!r}, the last edit set {value!r}")
    return row


def _slope_per_hour(points: list[tuple[float, float]]) -> float:
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    mx, my = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return 0.0 if var == 0 else 3600 * sum((x - mx) * (y - my)
                                           for x, y in zip(xs, ys, strict=True)) / var


def resources(steady: list[Sample], began: float, minutes: float) -> tuple[Row, Row]:
    """RSS, fds and threads of each incarnation at the same age (STEADY_AGE): the RSS's
    trend after the first 10 minutes; fds and threads: the last third against the first."""
    late = [s for s in steady if s.at - began >= 600]
    rss = Row("daemon RSS growth <= 5 MB/hour after the first 10 min", len(late))
    if minutes < 15 or len(late) < 3:
        rss.judged = "run shorter than 15 min" if minutes < 15 else "too few samples"
    else:
        slope = _slope_per_hour([(s.at, s.rss_mb) for s in late])
        if slope > 5.0:
            rss.violations.append(f"RSS grows {slope:.1f} MB/hour")
    flat = Row("open fds and threads flat (beyond one per kept connection)", len(steady))
    if len(steady) < 6:
        flat.judged = f"{len(steady)} incarnations sampled, need 6"
        return rss, flat
    third = len(steady) // 3
    for name, limit in (("other_fds", 5), ("spare_threads", 5)):
        first = statistics.median(getattr(s, name) for s in steady[:third])
        last = statistics.median(getattr(s, name) for s in steady[-third:])
        if last - first > limit:
            flat.violations.append(f"{name}: median {first:g} -> {last:g}")
    return rss, flat


def bounded(samples: list[Sample], vms: int) -> Row:
    """Sockets never beyond what the fleet explains: a kept connection (or tunnel) per
    VM, a few more (ARM, hooks' pipes are not sockets) - a leak would pass it."""
    row = Row("open sockets <= 2 per VM + 20 in every sample", len(samples))
    worst = max(samples, key=lambda s: s.sockets, default=None)
    if worst is not None and worst.sockets > 2 * vms + 20:
        row.violations.append(f"{worst.sockets} sockets at age {worst.age:.0f} s")
    return row
