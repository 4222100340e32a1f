"""Where the project's shared/ folder is: beside the checkout (as CI lays it out), else
/work/shared. Under CI a test that needs it fails rather than skips when it is missing."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CANDIDATES = (ROOT.parent / "shared", Path("/work/shared"))


def shared_dir() -> Path | None:
    return next((p for p in CANDIDATES if p.is_dir()), None)


def require_shared(relative: str) -> Path:
    """``shared/<relative>``; skip (outside CI) or fail (under CI) when it is not there."""
    base = shared_dir()
    path = base / relative if base else None
    if path is None or not path.exists():
        message = f"shared/{relative} not found in {', '.join(map(str, CANDIDATES))}"
        if os.environ.get("CI") == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path
