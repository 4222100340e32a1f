"""The shared repair ledger: the records every monitor decides with, in the lease blob.

With ``[ha]``, the repairs that the budget, backoff, grace and in-flight rules read, and
the in-flight markers that tell a new leader a repair was interrupted, live in the blob
whose lease elects the leader. Every write carries the lease ID and an If-Match on the
ETag this monitor last saw, so only the lease holder writes, and two writers never both
win. A repair's intent is written here before Azure is asked, so a monitor that lost
its lease cannot start one; a new leader reads the ledger before its first decision, so
a failover never repeats a restart. Each record is mirrored into the local state store,
for ``status`` and the history of this machine.
"""

from __future__ import annotations

import copy
import json
import threading
import time
from collections.abc import Callable
from typing import Any

from .models import AzureMark, RepairAction, RepairOutcome, RepairRecord
from .ports import CoordinationError, LeaseStore, NotLeader
from .state import StateStore

FORMAT = 1
INTERRUPTED = "the monitor that began it stopped leading before the repair finished"
Doc = dict[str, Any]


def empty() -> Doc:
    return {"format": FORMAT, "next_id": 1, "repairs": [], "grace": {}}


class SharedLedger:
    """:class:`~azlin_lifecycle.ports.RepairLedger` in the lease blob; thread-safe."""

    def __init__(self, lease: LeaseStore, *, mirror: StateStore, identity: str,
                 is_leader: Callable[[], bool], keep_seconds: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.lease = lease
        self.identity = identity
        self._mirror = mirror
        self._is_leader = is_leader
        self._keep_seconds = keep_seconds  # how far back the rules look
        self._clock = clock
        self._lock = threading.Lock()  # guards the fields below; held for no network call
        self._writing = threading.Lock()  # one read-modify-write of the blob at a time
        self._doc = empty()
        self._etag: str | None = None  # None: read the blob before the next write
        self._lease_id: str | None = None
        self._metadata: dict[str, str] = {}
        self._mirror_ids: dict[int, int] = {}  # shared record id -> local one

    # ------------------------------------------------------------------ taking over
    def take_over(self, lease_id: str) -> list[RepairRecord]:
        """Read the ledger under a newly taken lease, mark other monitors' unfinished
        repairs interrupted (their grace periods stand), and sign it as the leader's.
        Returns the interrupted repairs. CoordinationError if it cannot be done."""
        now = self._clock()

        def change(doc: Doc) -> list[RepairRecord]:
            interrupted = []
            for rec in doc["repairs"]:
                if rec["outcome"] == RepairOutcome.IN_FLIGHT and rec.get("by") != lease_id:
                    rec.update(outcome=RepairOutcome.INTERRUPTED.value, error=INTERRUPTED)
                    interrupted.append(_record(rec))
            return interrupted

        result: list[RepairRecord] = self._write(
            change, now, lease_id=lease_id, reread=True,
            metadata={"holder": self.identity, "since": f"{now:.3f}"})
        return result

    def _parse(self, content: bytes) -> Doc:
        if not content.strip():
            return empty()
        where = getattr(self.lease, "where", "the lease blob")
        try:
            doc = json.loads(content)
        except ValueError as exc:
            raise CoordinationError(
                f"the shared ledger {where} is not JSON ({exc}); it was left as it is: move "
                "it aside (or delete it) once no monitor runs, and a new one is started"
            ) from None
        found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
        if found != FORMAT:
            raise CoordinationError(
                f"the shared ledger {where} has format {found!r}, not {FORMAT}: a different "
                "version of azlin-lifecycle wrote it; run the same version on every monitor")
        return dict(doc)

    # ------------------------------------------------------------------ reading
    def repairs(self, vm: str | None = None, since: float = 0.0) -> list[RepairRecord]:
        with self._lock:
            return [_record(r) for r in self._doc["repairs"]
                    if (vm is None or r["vm"] == vm) and r["started"] >= since]

    def grace_until(self, vm: str) -> float:
        with self._lock:
            return float(self._doc["grace"].get(vm, 0.0))

    # ------------------------------------------------------------------ writing
    def begin_repair(self, vm: str, action: RepairAction, *, dry_run: bool, grace_until: float,
                     now: float | None = None, before: AzureMark | None = None) -> int:
        """Record a repair before it is attempted; NotLeader if this monitor may not."""
        now = self._clock() if now is None else now

        def change(doc: Doc) -> int:
            rid = int(doc["next_id"])
            doc["next_id"] = rid + 1
            doc["repairs"].append({
                "id": rid, "vm": vm, "action": action.value, "started": now,
                "ended": now if dry_run else None,
                "outcome": (RepairOutcome.DRY_RUN if dry_run else RepairOutcome.IN_FLIGHT).value,
                "error": None, "by": self._lease_id, "monitor": self.identity,
                "before": None if before is None else before.to_json()})
            if not dry_run:
                doc["grace"][vm] = grace_until
            return rid

        rid = int(self._commit(change, now))
        self._mirror_ids[rid] = self._mirror.begin_repair(
            vm, action, dry_run=dry_run, grace_until=grace_until, now=now, before=before)
        return rid

    def end_repair(self, repair_id: int, *, success: bool, error: str | None,
                   grace_until: float | None, now: float | None = None) -> None:
        """Record the outcome; locally always, in the ledger only under the lease
        (NotLeader otherwise: the leader keeps the record as interrupted)."""
        now = self._clock() if now is None else now
        local = self._mirror_ids.pop(repair_id, None)
        if local is not None:
            self._mirror.end_repair(local, success=success, error=error,
                                    grace_until=grace_until, now=now)

        def change(doc: Doc) -> None:
            for rec in doc["repairs"]:
                if rec["id"] == repair_id:
                    rec.update(ended=now, error=error, outcome=(
                        RepairOutcome.SUCCEEDED if success else RepairOutcome.FAILED).value)
                    if grace_until is not None:
                        doc["grace"][rec["vm"]] = grace_until

        self._commit(change, now)

    def settle_interrupted(self, repair_id: int, *, sent: bool, note: str,
                           now: float | None = None) -> None:
        """As :meth:`StateStore.settle_interrupted`, in the shared ledger (NotLeader unless
        leading)."""
        now = self._clock() if now is None else now

        def change(doc: Doc) -> None:
            for rec in doc["repairs"]:
                if rec["id"] == repair_id and rec["outcome"] == RepairOutcome.INTERRUPTED:
                    rec["error"] = note
                    if not sent:
                        rec.update(outcome=RepairOutcome.NOT_SENT.value, ended=now)
                        doc["grace"].pop(rec["vm"], None)

        self._commit(change, now)

    def _commit(self, change: Callable[[Doc], Any], now: float) -> Any:
        """A leader's write: NotLeader unless this monitor holds the lease and the blob
        took the change."""
        with self._lock:
            lease_id, metadata = self._lease_id, self._metadata
        if lease_id is None or not self._is_leader():
            raise NotLeader("this monitor does not hold the lease")
        try:
            return self._write(change, now, lease_id=lease_id, metadata=metadata)
        except CoordinationError as exc:
            raise NotLeader(f"the shared ledger was not written: {exc}") from None

    def _write(self, change: Callable[[Doc], Any], now: float, *, lease_id: str,
               metadata: dict[str, str], reread: bool = False) -> Any:
        """Apply ``change`` to a copy (of the blob as read again, when ``reread`` or when
        the last write's fate is unknown), write it under ``lease_id`` and the ETag it was
        read with, and only then make it the ledger this monitor decides with."""
        with self._writing:
            with self._lock:
                etag = None if reread else self._etag
                doc = copy.deepcopy(self._doc)
            try:
                if etag is None:
                    document = self.lease.read()
                    doc, etag = self._parse(document.content), document.etag
                result = change(doc)
                self._prune(doc, now)
                new_etag = self.lease.write(_dump(doc), lease_id=lease_id, etag=etag,
                                            metadata=metadata)
            except CoordinationError:
                with self._lock:
                    self._etag = None
                raise
            with self._lock:
                self._doc, self._etag = doc, new_etag
                self._lease_id, self._metadata = lease_id, metadata
            return result

    def _prune(self, doc: Doc, now: float) -> None:
        """Keep what the rules can still read: recent repairs, unfinished ones, and grace
        periods not yet over."""
        oldest = now - self._keep_seconds
        doc["repairs"] = [r for r in doc["repairs"]
                          if r["started"] >= oldest or r["outcome"] == RepairOutcome.IN_FLIGHT]
        doc["grace"] = {vm: until for vm, until in doc["grace"].items() if until > now}


def _record(rec: Doc) -> RepairRecord:
    return RepairRecord(id=int(rec["id"]), vm=rec["vm"], action=RepairAction(rec["action"]),
                        started=float(rec["started"]), ended=rec["ended"],
                        outcome=RepairOutcome(rec["outcome"]), error=rec["error"],
                        before=AzureMark.from_json(rec.get("before")))


def _dump(doc: Doc) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()
