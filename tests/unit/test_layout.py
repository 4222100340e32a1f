"""The layout is the architecture: domain modules import no adapter, and no module is
over the size this project set itself."""

from __future__ import annotations

import ast
from pathlib import Path

import azlin_lifecycle

PACKAGE = Path(azlin_lifecycle.__file__).parent
# Decisions and bookkeeping: they take their adapters as arguments (tests pass fakes).
DOMAIN = ("rules", "policy", "health", "healing", "leadership", "ledger", "fleet_book",
          "announcements", "ha_role", "models", "ports", "scheduler", "signals", "postmortem",
          "discovery", "alerts", "paging", "hook_message", "deciding")
# The loop's rooms: each one job, each short enough to read in one sitting.
DAEMON_ROOMS = ("daemon", "fleet_book", "sweeps", "ha_role", "announcements", "paging",
                "deciding")


def imported_modules(path: Path) -> set[str]:
    """Every module ``path`` imports, at any depth (function-level imports included),
    relative ones resolved against the package."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = ["azlin_lifecycle", *path.relative_to(PACKAGE).parent.parts]
                parts = parts[: len(parts) - (node.level - 1)]
                base = ".".join([*parts, base]) if base else ".".join(parts)
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    return found


def test_domain_modules_import_no_adapter() -> None:
    for name in DOMAIN:
        adapters = sorted(m for m in imported_modules(PACKAGE / f"{name}.py")
                          if m.startswith("azlin_lifecycle.adapters"))
        assert adapters == [], f"{name}.py imports {adapters}"


def test_the_check_catches_an_adapter_import(tmp_path: Path) -> None:
    module = PACKAGE / "adapters" / "azure" / "repairs.py"
    assert "azlin_lifecycle.adapters.azure.login" in imported_modules(module)


def test_no_module_is_over_450_lines_and_the_daemon_rooms_over_300() -> None:
    sizes = {p.relative_to(PACKAGE).as_posix(): len(p.read_text().splitlines())
             for p in PACKAGE.rglob("*.py")}
    assert {p: n for p, n in sizes.items() if n > 450} == {}
    assert {r: sizes[f"{r}.py"] for r in DAEMON_ROOMS if sizes[f"{r}.py"] > 300} == {}
