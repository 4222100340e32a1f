"""A simulated fleet that this test's environment points at (the stand-in ``az`` first on
PATH, its CA, the simulator's endpoints), restored when the test ends."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.simulator import SimulatedFleet


@contextlib.contextmanager
def fleet_in_env(monkeypatch: pytest.MonkeyPatch, workdir: Path, vm_count: int,
                 **options: Any) -> Iterator[SimulatedFleet]:
    with SimulatedFleet(workdir, vm_count, **options) as fleet:
        for key, value in fleet.env().items():
            monkeypatch.setenv(key, value)
        yield fleet
