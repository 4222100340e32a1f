"""Post-mortems: what boot diagnostics showed of a VM just before a guest repair.

Each attempt is a directory ``postmortem/<vm>/<UTC time>/`` beside the state database
(``~/.local/state/azlin-lifecycle/``), mode 0700, holding ``serial.log`` (the serial
console's last 1 MB), ``screenshot.bmp`` (or Azure's own suffix) and ``capture.json``
(when, before which repair and why, and what was caught or why nothing was). At most
``[healing] postmortems_kept`` attempts are kept per VM, the oldest removed first.
``azlin lifecycle postmortem VM`` reads them.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .fsio import atomic_write, ensure_private_dir
from .signals import Capture

DIRECTORY = "postmortem"
INFO = "capture.json"
TAIL_BYTES = 4096  # what a webhook gets of the serial log
_NAME = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


def root(state_dir: Path) -> Path:
    return state_dir / DIRECTORY


def new_directory(base: Path, vm: str, now: float) -> Path:
    """A fresh ``base/<vm>/<UTC time>/`` for one attempt (suffixed if that second is taken)."""
    stamp = dt.datetime.fromtimestamp(now, dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    parent = base / vm
    ensure_private_dir(parent)
    for n in range(1, 1000):
        path = parent / (stamp if n == 1 else f"{stamp}-{n}")
        try:
            path.mkdir(mode=0o700)
            return path
        except FileExistsError:
            continue
    raise FileExistsError(f"{parent}: too many post-mortems at {stamp}")


def record(capture: Capture, *, vm: str, action: str, reason: str, now: float) -> None:
    """Write the attempt's ``capture.json``."""
    if capture.directory is None:
        return
    info = {"vm": vm, "time": dt.datetime.fromtimestamp(now, dt.UTC).isoformat(),
            "action": action, "reason": reason, "note": capture.note,
            "serial_log": capture.serial_log.name if capture.serial_log else None,
            "screenshot": capture.screenshot.name if capture.screenshot else None,
            "seconds": round(capture.seconds, 2)}
    atomic_write(capture.directory / INFO, (json.dumps(info, indent=2) + "\n").encode())


def prune(base: Path, vm: str, keep: int) -> list[Path]:
    """Remove all but the ``keep`` newest attempts of ``vm``; the removed directories."""
    attempts = _attempts(base / vm)
    removed = attempts[:-keep] if keep > 0 else attempts
    for path in removed:
        shutil.rmtree(path, ignore_errors=True)
    return removed


@dataclass(frozen=True)
class PostMortem:
    directory: Path
    info: dict[str, Any]

    @property
    def serial_log(self) -> Path | None:
        name = self.info.get("serial_log")
        return self.directory / name if name else None

    @property
    def screenshot(self) -> Path | None:
        name = self.info.get("screenshot")
        return self.directory / name if name else None

    def to_json(self) -> dict[str, Any]:
        log, shot = self.serial_log, self.screenshot
        return {**self.info, "directory": str(self.directory),
                "serial_log": None if log is None else str(log),
                "serial_log_bytes": _size(log), "screenshot": None if shot is None else str(shot)}


def listing(base: Path, vm: str) -> list[PostMortem]:
    """Every kept attempt of ``vm``, newest first."""
    found = []
    for path in reversed(_attempts(base / vm)):
        try:
            info = json.loads((path / INFO).read_text(encoding="utf-8"))
        except (OSError, ValueError):
            info = {"vm": vm, "time": None, "note": "no capture.json (interrupted?)"}
        found.append(PostMortem(path, info if isinstance(info, dict) else {}))
    return found


def tail(path: Path | None, limit: int = TAIL_BYTES) -> str:
    """The last whole lines of a log within ``limit`` bytes (decoded leniently)."""
    if path is None:
        return ""
    try:
        with path.open("rb") as handle:
            size = handle.seek(0, 2)
            handle.seek(max(0, size - limit))
            data = handle.read(limit)
    except OSError:
        return ""
    if size > limit and b"\n" in data:
        data = data.split(b"\n", 1)[1]  # a partial first line
    return data.replace(b"\0", b"").decode("utf-8", "replace")


def _attempts(parent: Path) -> list[Path]:
    """A VM's attempt directories, oldest first (their names sort by time)."""
    try:
        return sorted((p for p in parent.iterdir() if p.is_dir() and _NAME.match(p.name)),
                      key=lambda p: (p.name.split("-")[0], int(p.name.split("-")[1])
                                     if "-" in p.name else 1))
    except OSError:
        return []


def _size(path: Path | None) -> int | None:
    try:
        return None if path is None else path.stat().st_size
    except OSError:
        return None
