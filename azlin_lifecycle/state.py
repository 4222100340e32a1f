"""Persisted state: health history, repair history and per-VM healing state.

One SQLite database in ``$XDG_STATE_HOME/azlin-lifecycle/state.db`` (WAL mode), so the
daemon writes while the CLI reads, every change is an atomic transaction, and a
crash or SIGKILL never leaves a half-written file. Repair intents are committed
*before* Azure is asked to act: a daemon killed mid-restart and started again by
systemd sees the attempt, counts it against the budget and respects its grace period.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from . import paths
from .fsio import ensure_private_dir
from .models import (
    Announced,
    AzureMark,
    HealthStatus,
    OwedHook,
    RepairAction,
    RepairOutcome,
    RepairRecord,
    VMHealingState,
)

SCHEMA = """
CREATE TABLE IF NOT EXISTS checks (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vm TEXT NOT NULL,
    record TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS checks_by_vm ON checks (vm, id);
CREATE TABLE IF NOT EXISTS repairs (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vm TEXT NOT NULL,
    action TEXT NOT NULL,
    started REAL NOT NULL,
    ended REAL,
    outcome TEXT NOT NULL,          -- in_flight | succeeded | failed | interrupted | dry_run
                                    -- | not_sent
    error TEXT,
    before TEXT                     -- Azure's view of the VM when the intent was recorded
);
CREATE INDEX IF NOT EXISTS repairs_by_vm ON repairs (vm, started);
CREATE TABLE IF NOT EXISTS vm_state (
    vm TEXT PRIMARY KEY,
    grace_until REAL NOT NULL DEFAULT 0,
    held_reason TEXT,
    updated REAL NOT NULL DEFAULT 0,
    evidence TEXT,                  -- Azure's view of the guest at the last decision
    announced TEXT,                 -- what the hooks told last (Announced, JSON)
    phase TEXT                      -- the repair in flight as Azure answered it (JSON)
);
CREATE TABLE IF NOT EXISTS owed_hooks (  -- recorded before a hook is run, deleted after
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    vm TEXT NOT NULL,
    hook TEXT NOT NULL,
    context TEXT NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS daemon (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
"""


def default_db_path() -> Path:
    return paths.state_dir() / "state.db"


class StateStore:
    """Thread-safe access to the state database (one connection, one lock)."""

    def __init__(self, path: Path | None = None, history_size: int = 1000) -> None:
        self.path = path or default_db_path()
        self.history_size = history_size
        ensure_private_dir(self.path.parent)
        self._lock = threading.RLock()
        self._db = sqlite3.connect(self.path, timeout=30, check_same_thread=False,
                                   isolation_level=None)
        self._enable_wal()
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._migrate()
        self.path.chmod(0o600)
        self._inserts_since_prune = 0

    def _enable_wal(self) -> None:
        """Switch to WAL once per database; the switch does not wait on a busy lock."""
        for attempt in range(50):
            try:
                self._db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError:
                if attempt == 49:
                    raise
                time.sleep(0.1)

    def _migrate(self) -> None:
        """Add columns that a database from an older version lacks (data kept)."""
        for table, column in (("vm_state", "evidence"), ("repairs", "before"),
                              ("vm_state", "announced"), ("vm_state", "phase")):
            columns = {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}
            if column not in columns:
                with contextlib.suppress(sqlite3.OperationalError):  # another process won
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} TEXT")

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    # ------------------------------------------------------------------ history
    def add_checks(self, statuses: Iterable[HealthStatus]) -> None:
        rows = [(s.vm_name, json.dumps(s.to_record())) for s in statuses]
        if not rows:
            return
        with self._tx() as db:
            db.executemany("INSERT INTO checks (vm, record) VALUES (?, ?)", rows)
            self._inserts_since_prune += len(rows)
            if self._inserts_since_prune >= max(100, self.history_size // 4):
                self._prune(db)
                self._inserts_since_prune = 0

    def _prune(self, db: sqlite3.Connection) -> None:
        """Keep the newest ``history_size`` checks of every VM."""
        db.execute(
            "DELETE FROM checks WHERE id IN (SELECT id FROM (SELECT id, ROW_NUMBER() OVER "
            "(PARTITION BY vm ORDER BY id DESC) AS n FROM checks) WHERE n > ?)",
            (self.history_size,),
        )

    def history(self, vm: str, limit: int | None = None) -> list[HealthStatus]:
        """Oldest first; at most ``limit`` (default: the history size) newest entries."""
        n = min(limit or self.history_size, self.history_size)
        with self._lock:
            rows = self._db.execute(
                "SELECT record FROM checks WHERE vm = ? ORDER BY id DESC LIMIT ?", (vm, n)
            ).fetchall()
        return [HealthStatus.from_record(json.loads(r[0])) for r in reversed(rows)]

    def latest(self, vms: Iterable[str] | None = None) -> dict[str, HealthStatus]:
        query = "SELECT vm, record FROM checks WHERE id IN (SELECT MAX(id) FROM checks GROUP BY vm)"
        with self._lock:
            rows = self._db.execute(query).fetchall()
        wanted = None if vms is None else set(vms)
        return {
            vm: HealthStatus.from_record(json.loads(rec))
            for vm, rec in rows
            if wanted is None or vm in wanted
        }

    def clear_history(self, vm: str) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM checks WHERE vm = ?", (vm,))

    # ------------------------------------------------------------------ repairs
    def begin_repair(self, vm: str, action: RepairAction, *, dry_run: bool, grace_until: float,
                     now: float | None = None, before: AzureMark | None = None) -> int:
        """Record a repair before it is attempted; commits before returning."""
        now = time.time() if now is None else now
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO repairs (vm, action, started, ended, outcome, before) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (vm, action.value, now, now if dry_run else None,
                 RepairOutcome.DRY_RUN if dry_run else RepairOutcome.IN_FLIGHT,
                 None if before is None else before.to_json()),
            )
            if not dry_run:
                self._set_grace(db, vm, grace_until)
            return int(cur.lastrowid or 0)

    def end_repair(self, repair_id: int, *, success: bool, error: str | None,
                   grace_until: float | None, now: float | None = None) -> None:
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT vm FROM repairs WHERE id = ?", (repair_id,)).fetchone()
            db.execute(
                "UPDATE repairs SET ended = ?, outcome = ?, error = ? WHERE id = ?",
                (now, RepairOutcome.SUCCEEDED if success else RepairOutcome.FAILED, error,
                 repair_id),
            )
            if row and grace_until is not None:
                self._set_grace(db, row[0], grace_until)

    def interrupt_unfinished(self) -> list[RepairRecord]:
        """Mark repairs left in flight by a daemon that died; returns them."""
        with self._tx() as db:
            rows = db.execute("SELECT * FROM repairs WHERE outcome = 'in_flight'").fetchall()
            db.execute(
                "UPDATE repairs SET outcome = 'interrupted', "
                "error = 'the daemon stopped before the repair finished' "
                "WHERE outcome = 'in_flight'"
            )
        return [dataclasses.replace(_repair(r), outcome=RepairOutcome.INTERRUPTED) for r in rows]

    def settle_interrupted(self, repair_id: int, *, sent: bool, note: str,
                           now: float | None = None) -> None:
        """What Azure shows of an interrupted repair. Not ``sent``: it never reached Azure,
        so it becomes NOT_SENT (no budget spent) and the VM's grace period is lifted."""
        now = time.time() if now is None else now
        with self._tx() as db:
            row = db.execute("SELECT vm FROM repairs WHERE id = ? AND outcome = 'interrupted'",
                             (repair_id,)).fetchone()
            if row is None:
                return
            if sent:
                db.execute("UPDATE repairs SET error = ? WHERE id = ?", (note, repair_id))
                return
            db.execute("UPDATE repairs SET outcome = ?, error = ?, ended = ? WHERE id = ?",
                       (RepairOutcome.NOT_SENT, note, now, repair_id))
            self._set_grace(db, row[0], 0.0)

    def repairs(self, vm: str | None = None, since: float = 0.0) -> list[RepairRecord]:
        with self._lock:
            if vm is None:
                rows = self._db.execute(
                    "SELECT * FROM repairs WHERE started >= ? ORDER BY started", (since,)
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT * FROM repairs WHERE vm = ? AND started >= ? ORDER BY started",
                    (vm, since),
                ).fetchall()
        return [_repair(r) for r in rows]

    def repair_counts(self) -> dict[tuple[str, str, str], int]:
        """How many repairs of each (vm, action, outcome) were ever recorded."""
        with self._lock:
            rows = self._db.execute(
                "SELECT vm, action, outcome, COUNT(*) FROM repairs GROUP BY vm, action, outcome"
            ).fetchall()
        return {(vm, action, outcome): n for vm, action, outcome, n in rows}

    def last_repairs(self) -> dict[str, RepairRecord]:
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM repairs WHERE id IN (SELECT MAX(id) FROM repairs GROUP BY vm)"
            ).fetchall()
        return {r[1]: _repair(r) for r in rows}

    # ------------------------------------------------------------------ healing state
    def _set_grace(self, db: sqlite3.Connection, vm: str, grace_until: float) -> None:
        db.execute(
            "INSERT INTO vm_state (vm, grace_until, updated) VALUES (?, ?, ?) "
            "ON CONFLICT(vm) DO UPDATE SET grace_until = excluded.grace_until, "
            "updated = excluded.updated",
            (vm, grace_until, time.time()),
        )

    def grace_until(self, vm: str) -> float:
        return self.healing_state(vm).grace_until

    def healing_state(self, vm: str) -> VMHealingState:
        with self._lock:
            row = self._db.execute(
                "SELECT vm, grace_until, held_reason, evidence, phase FROM vm_state "
                "WHERE vm = ?", (vm,)
            ).fetchone()
        return _healing_state(row) if row else VMHealingState(vm)

    def all_healing_states(self) -> dict[str, VMHealingState]:
        with self._lock:
            rows = self._db.execute(
                "SELECT vm, grace_until, held_reason, evidence, phase FROM vm_state").fetchall()
        return {r[0]: _healing_state(r) for r in rows}

    def set_held_reasons(self, reasons: dict[str, str | None]) -> None:
        """Record why healing is held back per VM (None: not held), for `status`."""
        self._set_vm_column("held_reason", reasons)

    def set_evidence(self, vm: str, evidence: str | None) -> None:
        """Record Azure's view of the guest at a repair decision, for `status`."""
        self._set_vm_column("evidence", {vm: evidence})

    def set_repair_phase(self, vm: str, phase: dict[str, Any] | None) -> None:
        """What Azure answered of the repair in flight (``{"action", "accepted"}``), for
        `status`; None once it ended."""
        self._set_vm_column("phase", {vm: None if phase is None else json.dumps(phase)})

    def _set_vm_column(self, column: str, values: dict[str, str | None]) -> None:
        assert column in ("held_reason", "evidence", "phase")
        if not values:
            return
        now = time.time()
        with self._tx() as db:
            db.executemany(
                f"INSERT INTO vm_state (vm, {column}, updated) VALUES (?, ?, ?) "
                f"ON CONFLICT(vm) DO UPDATE SET {column} = excluded.{column}, "
                "updated = excluded.updated",
                [(vm, value, now) for vm, value in values.items()],
            )

    # ------------------------------------------------------------------ announcements
    def announce(self, told: Mapping[str, Announced],
                 hooks: Iterable[tuple[str, str, Mapping[str, object]]]) -> list[int]:
        """Record what is now told of some VMs and the hooks (vm, hook, context) that tell
        it, in one transaction (a kill leaves all or none); the owed hooks' ids."""
        now = time.time()
        with self._tx() as db:
            db.executemany("INSERT INTO vm_state (vm, announced, updated) VALUES (?, ?, ?) "
                           "ON CONFLICT(vm) DO UPDATE SET announced = excluded.announced, "
                           "updated = excluded.updated",
                           [(vm, announced.to_json(), now) for vm, announced in told.items()])
            return [int(db.execute(
                "INSERT INTO owed_hooks (vm, hook, context, created) VALUES (?, ?, ?, ?)",
                (vm, hook, json.dumps(dict(context), default=str), now)).lastrowid or 0)
                for vm, hook, context in hooks]

    def announced(self) -> dict[str, Announced]:
        with self._lock:
            rows = self._db.execute(
                "SELECT vm, announced FROM vm_state WHERE announced IS NOT NULL").fetchall()
        return {vm: a for vm, text in rows if (a := Announced.from_json(text)) is not None}

    def owed_hooks(self) -> list[OwedHook]:
        """Hooks recorded as owed and not known to have run (oldest first)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, vm, hook, context FROM owed_hooks ORDER BY id").fetchall()
        return [OwedHook(i, vm, hook, json.loads(ctx)) for i, vm, hook, ctx in rows]

    def hook_ran(self, owed_id: int) -> None:
        with self._tx() as db:
            db.execute("DELETE FROM owed_hooks WHERE id = ?", (owed_id,))

    # ------------------------------------------------------------------ daemon facts
    def set_daemon_fact(self, key: str, value: Any) -> None:
        with self._tx() as db:
            db.execute(
                "INSERT INTO daemon (key, value) VALUES (?, ?) "
                "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                (key, json.dumps(value)),
            )

    def daemon_facts(self) -> dict[str, Any]:
        with self._lock:
            rows = self._db.execute("SELECT key, value FROM daemon").fetchall()
        return {k: json.loads(v) for k, v in rows}


def _healing_state(row: Any) -> VMHealingState:
    try:
        phase = json.loads(row[4]) if row[4] else None
    except ValueError:
        phase = None
    return VMHealingState(row[0], row[1], row[2], row[3],
                          phase if isinstance(phase, dict) else None)


def _repair(row: Any) -> RepairRecord:
    return RepairRecord(
        id=row[0], vm=row[1], action=RepairAction(row[2]), started=row[3], ended=row[4],
        outcome=RepairOutcome(row[5]), error=row[6],
        before=AzureMark.from_json(row[7]) if len(row) > 7 else None,
    )
