"""Leader election through a lease: of the monitors sharing one lease blob, one acts.

The leader renews its lease every third of the lease's duration. A renewal that fails,
or does not answer within the store's timeout, makes it a standby at once: repairs
stop before the lease can expire, so two monitors never both repair. Besides,
:meth:`Leadership.is_leader` turns false on its own when the lease's time is up, even
if the renewing thread is stuck. A standby tries to take the lease every
``poll_seconds``; the store grants it only after the leader's lease expired (or was
released), and the new leader reads the shared ledger (``on_elected``) before it
counts as leader, so its first decision sees every repair its predecessor began.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum

from .config import HookSettings
from .events import Event, log_event
from .models import clock_utc
from .ports import CoordinationError, HookRunner, LeaseStore

log = logging.getLogger(__name__)


class Role(StrEnum):
    LEADER = "leader"
    STANDBY = "standby"


@dataclass(frozen=True)
class LeadershipView:
    """Who leads, as this monitor knows it, for STATUS=, ``status`` and the journal."""

    role: Role
    since: float  # epoch: when this monitor took its current role
    reason: str  # in words: why this role (who leads, or what is wrong)
    leader: str | None = None  # the leader's identity, when known
    leader_since: float | None = None  # epoch: when the leader took the lease
    expires: float | None = None  # leader: when its lease runs out unless renewed (epoch)

    def to_fact(self) -> dict[str, object]:
        return {"role": self.role.value, "since": self.since, "reason": self.reason,
                "leader": self.leader, "leader_since": self.leader_since,
                "expires": self.expires}


class Leadership:
    """Runs the election on a thread of its own; ``is_leader()`` may be asked from any."""

    def __init__(
        self,
        lease: LeaseStore,
        *,
        seconds: float,
        identity: str,
        on_elected: Callable[[str], None],
        on_change: Callable[[LeadershipView], None] = lambda view: None,
        poll_seconds: float | None = None,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.lease = lease
        self.seconds = seconds
        self.identity = identity
        self.lease_id = str(uuid.uuid4())  # one per daemon run: a restarted one is new
        self.poll_seconds = poll_seconds if poll_seconds is not None else max(1.0, seconds / 5)
        self._on_elected = on_elected
        self._on_change = on_change
        self._clock = clock
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._valid_until = 0.0  # monotonic: the lease is surely ours until then
        self._renewed_at = 0.0  # monotonic: when the last successful renewal was sent
        self._view = LeadershipView(Role.STANDBY, clock(), "not elected yet")

    # ------------------------------------------------------------------ asked by others
    def is_leader(self) -> bool:
        with self._lock:
            return self._view.role is Role.LEADER and self._monotonic() < self._valid_until

    def view(self) -> LeadershipView:
        with self._lock:
            return self._view

    # ------------------------------------------------------------------ running
    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="leadership", daemon=True)
        self._thread.start()

    def stop(self, release: bool = True) -> None:
        """Stop electing; a leader gives its lease back so a standby takes over at once."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.seconds)
        with self._lock:
            was_leader = self._view.role is Role.LEADER
            self._valid_until = 0.0
            self._view = LeadershipView(Role.STANDBY, self._clock(), "stopped")
        if not (release and was_leader):
            return
        try:
            self.lease.release(self.lease_id)
        except CoordinationError as exc:
            log.warning("stopping: the lease was not released (%s); a standby takes over "
                        "when it expires, within %gs", exc, self.seconds)
            return
        log_event(log, Event.STANDBY, "stopping: lease released, a standby takes over now",
                  ha_role=Role.STANDBY, reason="stopped")

    def step(self) -> float:
        """One round of the election; the seconds until the next one."""
        if self.view().role is Role.LEADER:
            return self._renew()
        return self._try_to_lead()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                wait = self.step()
            except Exception:  # a bug here must not leave a leader that never renews
                log.exception("leader election failed")
                self._become(Role.STANDBY, "leader election failed (see the log)", trouble=True)
                wait = self.poll_seconds
            self._stop.wait(wait)

    def _renew(self) -> float:
        renew_every = self.seconds / 3
        wait = self._renewed_at + renew_every - self._monotonic()
        if wait > 0:
            return wait
        sent = self._monotonic()
        try:
            self.lease.renew(self.lease_id)
        except CoordinationError as exc:
            self._become(Role.STANDBY, f"renewing the lease failed: {exc}")
            return 0.0  # try to take it back at once (it may still be ours)
        with self._lock:
            self._valid_until = sent + self.seconds
            self._renewed_at = sent
            self._view = dataclasses.replace(self._view, expires=self._clock() + self.seconds)
            view = self._view
        self._on_change(view)  # the new expiry, for `status` (not worth a journal entry)
        return renew_every

    def _try_to_lead(self) -> float:
        sent = self._monotonic()
        try:
            got = self.lease.acquire(self.lease_id, int(self.seconds))
        except CoordinationError as exc:
            self._become(Role.STANDBY, f"nobody can lead: {exc}", trouble=True)
            return self.poll_seconds
        if not got:
            self._become(Role.STANDBY, *self._who_leads())
            return self.poll_seconds
        try:
            self._on_elected(self.lease_id)  # the shared ledger, read before any decision
        except CoordinationError as exc:
            self._become(Role.STANDBY, f"took the lease but could not read the shared "
                                       f"ledger: {exc}", trouble=True)
            return self.poll_seconds
        with self._lock:
            self._valid_until = sent + self.seconds
            self._renewed_at = sent
        self._become(Role.LEADER, f"this monitor holds the lease ({self.identity})",
                     self.identity, self._clock(), expires=self._clock() + self.seconds)
        return self.seconds / 3

    def _who_leads(self) -> tuple[str, str | None, float | None]:
        """Why this monitor stands by, the leader's identity and since when (the lease
        blob's metadata, written by the leader when it took the lease)."""
        try:
            metadata = self.lease.holder().metadata
        except CoordinationError as exc:
            return f"another monitor holds the lease; who is unknown: {exc}", None, None
        name = metadata.get("holder") or "another monitor"
        since = float(metadata["since"]) if metadata.get("since") else None
        when = f" since {clock_utc(since)}" if since is not None else ""
        return (f"{name} leads{when}; this monitor takes over if its lease of "
                f"{self.seconds:g}s expires", metadata.get("holder"), since)

    def _become(self, role: Role, reason: str, leader: str | None = None,
                leader_since: float | None = None, *, expires: float | None = None,
                trouble: bool = False) -> None:
        """Take ``role``; a standby repairs nothing from this instant. ``trouble``: a
        standby because something is wrong, not because another monitor leads."""
        with self._lock:
            if role is Role.STANDBY:
                self._valid_until = 0.0
            old = self._view
            if old.role is role and old.reason == reason:
                return
            since = old.since if old.role is role else self._clock()
            self._view = LeadershipView(role, since, reason, leader, leader_since, expires)
            view = self._view
        self._announce(old, view, trouble)
        self._on_change(view)

    def _announce(self, old: LeadershipView, new: LeadershipView, trouble: bool) -> None:
        if new.role is Role.LEADER:
            log_event(log, Event.LEADER_ELECTED,
                      f"leader: this monitor took the lease ({self.identity}); it repairs "
                      f"and fires hooks; lease {self.seconds:g}s, renewed every "
                      f"{self.seconds / 3:g}s", ha_role=new.role, leader=self.identity,
                      lease_expires=None if new.expires is None else clock_utc(new.expires))
        elif old.role is Role.LEADER:
            log_event(log, Event.LEADERSHIP_LOST,
                      f"standby: stopped repairing: {new.reason}", level=logging.ERROR,
                      ha_role=new.role, reason=new.reason)
        else:
            log_event(log, Event.STANDBY, f"standby: {new.reason}",
                      level=logging.WARNING if trouble else logging.INFO,
                      ha_role=new.role, reason=new.reason, leader=new.leader)


class LeaderOnlyHooks:
    """A HookRunner that runs hooks only while this monitor leads: a standby checks VMs
    but tells nobody, so each event reaches the user once, from the leader."""

    def __init__(self, inner: HookRunner, is_leader: Callable[[], bool]) -> None:
        self.inner = inner
        self._is_leader = is_leader

    def execute_hook_async(self, hook_type: str, vm_name: str,
                           context: Mapping[str, object]) -> object:
        if not self._is_leader():
            log.debug("%s: %s not run: this monitor is a standby", vm_name, hook_type)
            return None
        return self.inner.execute_hook_async(hook_type, vm_name, context)

    def shutdown(self, timeout: float = 10.0) -> bool:
        return self.inner.shutdown(timeout)

    def apply_settings(self, settings: HookSettings) -> None:
        self.inner.apply_settings(settings)
