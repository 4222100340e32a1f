"""The xdist schedule of the suite (tests/support/scheduling.py) names tests that exist."""

from __future__ import annotations

import re
from pathlib import Path

from tests.support.scheduling import EXPECTED_SECONDS, GROUPS, group_of

ROOT = Path(__file__).resolve().parents[2]


def test_every_unit_the_schedule_names_exists() -> None:
    for prefix in GROUPS:
        assert (ROOT / prefix.removesuffix("::")).exists(), prefix
    for unit in EXPECTED_SECONDS:
        if "::" not in unit:
            assert unit in GROUPS.values(), f"no group named {unit!r}"
            continue
        assert group_of(unit) is None, f"{unit} runs in a group: give the group's time"
        file, name = unit.split("::")
        name, _, param = name.partition("[")  # a parametrized test: its id must be there too
        text = (ROOT / file).read_text() if (ROOT / file).is_file() else ""
        assert re.search(rf"^def {re.escape(name)}\(", text, re.M), f"no test {unit}"
        assert param.rstrip("]") in text, f"no parameter {param!r} in {unit}"
