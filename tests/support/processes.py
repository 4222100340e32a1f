"""Process helpers for tests that check nothing is left running."""

from __future__ import annotations

from pathlib import Path


def alive(pid: int) -> bool:
    """Running, stopped or sleeping; a zombie nobody reaped yet does not count."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state not in ("Z", "X")
