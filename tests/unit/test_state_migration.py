"""A state database written by an older version keeps its data and gains the new columns."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from azlin_lifecycle.models import RepairAction, RepairOutcome
from azlin_lifecycle.state import StateStore

OLD_SCHEMA = """
CREATE TABLE repairs (id INTEGER PRIMARY KEY AUTOINCREMENT, vm TEXT NOT NULL,
    action TEXT NOT NULL, started REAL NOT NULL, ended REAL, outcome TEXT NOT NULL, error TEXT);
CREATE TABLE vm_state (vm TEXT PRIMARY KEY, grace_until REAL NOT NULL DEFAULT 0,
    held_reason TEXT, updated REAL NOT NULL DEFAULT 0);
INSERT INTO repairs (vm, action, started, ended, outcome) VALUES ('web-1', 'restart', 100, 160,
    'succeeded');
INSERT INTO vm_state (vm, grace_until, held_reason, updated) VALUES ('web-1', 4000000000,
    'restart budget spent', 1);
"""


def test_an_older_database_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with sqlite3.connect(path) as db:
        db.executescript(OLD_SCHEMA)
    store = StateStore(path)
    try:
        state = store.healing_state("web-1")
        assert (state.grace_until, state.held_reason, state.evidence) == (
            4000000000, "restart budget spent", None)
        (repair,) = store.repairs("web-1")
        assert repair.action is RepairAction.RESTART
        assert repair.outcome is RepairOutcome.SUCCEEDED
        store.set_evidence("web-1", "VM agent: Not Ready")
        assert store.healing_state("web-1").evidence == "VM agent: Not Ready"
        assert store.healing_state("web-1").held_reason == "restart budget spent"
    finally:
        store.close()
    StateStore(path).close()  # opening a migrated database again changes nothing
