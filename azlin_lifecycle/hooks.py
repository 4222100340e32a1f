"""HookExecutor: run a VM's lifecycle hook (a script, an https:// webhook or a notification
URL such as ntfys:// or slack://) for an event.

A hook that fails, hangs, floods its output or is missing never raises out of
:meth:`HookExecutor.execute_hook`; it returns a failed :class:`HookResult` with a clear
``error``. Only misuse (an unknown hook type) raises :class:`HookExecutionError`.
:meth:`HookExecutor.execute_hook_async` queues onto a bounded pool with a bounded
backlog, so a burst of events can neither spawn a thread each nor grow memory.
"""

from __future__ import annotations

import concurrent.futures
import datetime as dt
import enum
import logging
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from . import hook_message, hook_targets, paths
from .adapters import notify, process, webhook
from .config import HookSettings, HookType
from .errors import HookExecutionError
from .events import Event, log_event

__all__ = [
    "DEFAULT_MAX_BACKLOG",
    "HookExecutionError",
    "HookExecutor",
    "HookResult",
    "HookType",
    "build_environment",
    "build_payload",
    "validate_hook_script",
]

log = logging.getLogger(__name__)

DEFAULT_MAX_BACKLOG = 1000
DAEMON_ONLY_ENV = frozenset({"NOTIFY_SOCKET", "WATCHDOG_PID", "WATCHDOG_USEC", "LISTEN_FDS",
                             "LISTEN_PID", "LISTEN_FDNAMES"})
HookKind = Literal["script", "webhook", "notify", "none"]
HooksLookup = Callable[[str], Mapping[str, str]]


@dataclass(frozen=True)
class HookResult:
    """What one hook run did. ``exit_code`` is a script's; ``http_status`` a webhook's."""

    hook_type: HookType
    vm_name: str
    target: str | None
    success: bool
    exit_code: int | None
    stdout: str
    stderr: str
    duration_seconds: float
    timed_out: bool
    skipped: bool
    error: str | None
    kind: HookKind
    http_status: int | None = None
    truncated: bool = False

    @property
    def duration(self) -> float:
        return self.duration_seconds


# --------------------------------------------------------------------------- pure helpers
def hook_type_of(value: HookType | str) -> HookType:
    try:
        return HookType(value)
    except ValueError:
        allowed = ", ".join(h.value for h in HookType)
        raise HookExecutionError(f"unknown hook type {value!r}; allowed: {allowed}") from None


def timestamp(now: dt.datetime | None = None) -> str:
    """ISO 8601 in UTC, e.g. ``2025-01-31T12:00:00Z``."""
    return (now or dt.datetime.now(dt.UTC)).astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _plain(value: object) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, enum.Enum):
        return _plain(value.value)
    if isinstance(value, dt.datetime):
        return timestamp(value)
    return str(value)


def _env_value(value: object) -> str:
    plain = _plain(value)
    return "" if plain is None else str(plain)


def env_name(key: str) -> str:
    """``failure-count`` -> ``FAILURE_COUNT``: upper case, anything else becomes ``_``."""
    return re.sub(r"[^A-Za-z0-9_]", "_", key).upper()


def build_environment(
    hook_type: HookType,
    vm_name: str,
    context: Mapping[str, object],
    when: str,
    base: Mapping[str, str] | None = None,
) -> dict[str, str]:
    """The daemon's environment, the context keys upper-cased, then VM_NAME, EVENT_TYPE,
    TIMESTAMP (which a context key cannot override).

    systemd's per-service variables (the notify socket, watchdog, socket activation)
    are the daemon's alone and are not passed on.
    """
    env = {k: v for k, v in (os.environ if base is None else base).items()
           if k not in DAEMON_ONLY_ENV}
    env.update({env_name(key): _env_value(value) for key, value in context.items()})
    env.update({"VM_NAME": vm_name, "EVENT_TYPE": hook_type.value, "TIMESTAMP": when})
    return env


def build_payload(
    hook_type: HookType, vm_name: str, context: Mapping[str, object], when: str
) -> dict[str, Any]:
    payload: dict[str, Any] = {key.lower(): _plain(value) for key, value in context.items()}
    payload.update({"vm_name": vm_name, "event_type": hook_type.value, "timestamp": when})
    return payload


# --------------------------------------------------------------------------- validation
def validate_hook_script(path: str | Path) -> Path:
    """The resolved path of a hook script that is safe to run; else HookExecutionError.

    It must exist, be a regular file (after symlinks), be executable by this user, be
    owned by this user or root, and not be group- or world-writable: a hook runs with
    the daemon's rights, so whoever can change it can act as the daemon.
    """
    shown = str(path)
    candidate = paths.expand(shown)
    try:
        resolved = candidate.resolve(strict=True)
        info = resolved.stat()
    except FileNotFoundError:
        raise HookExecutionError(
            f"hook script {shown} does not exist; create it or point the hook at an "
            "existing file (azlin lifecycle hook set VM TYPE PATH)"
        ) from None
    except OSError as exc:
        raise HookExecutionError(
            f"hook script {shown} cannot be inspected ({exc.strerror}); check the "
            "permissions of its directories"
        ) from None
    if not stat.S_ISREG(info.st_mode):
        what = "a directory" if stat.S_ISDIR(info.st_mode) else "not a regular file"
        raise HookExecutionError(
            f"hook script {shown} is {what}; point the hook at an executable file"
        )
    if not os.access(resolved, os.X_OK):
        raise HookExecutionError(
            f"hook script {shown} is not executable; fix with: chmod u+x {resolved}"
        )
    me = os.geteuid()
    if info.st_uid not in (me, 0):
        raise HookExecutionError(
            f"hook script {shown} is owned by uid {info.st_uid}, not by you (uid {me}) or "
            f"root; a hook runs with your rights — fix with: sudo chown {me} {resolved}"
        )
    writable = [who for who, bit in (("group", stat.S_IWGRP), ("world", stat.S_IWOTH))
                if info.st_mode & bit]
    if writable:
        raise HookExecutionError(
            f"hook script {shown} is {'- and '.join(writable)}-writable, so others could "
            f"change what runs with your rights; fix with: chmod go-w {resolved}"
        )
    return resolved


# --------------------------------------------------------------------------- executor
class HookExecutor:
    """Runs hooks for lifecycle events, synchronously or on a bounded pool.

    ``hooks(vm_name)`` returns the VM's current ``{hook_type: target}``.
    :func:`azlin_lifecycle.wiring.HookExecutor` (the spec's argument-less ``HookExecutor()``)
    reads both from the config file.
    """

    def __init__(
        self,
        hooks: HooksLookup,
        settings: HookSettings | None = None,
        *,
        max_backlog: int = DEFAULT_MAX_BACKLOG,
    ) -> None:
        self._hooks = hooks
        self.settings = settings or HookSettings()
        self.max_backlog = max_backlog
        self._stop = threading.Event()
        self._closed = False
        self._lock = threading.Lock()
        self._pool: concurrent.futures.ThreadPoolExecutor | None = None
        self._waiting = 0
        self._futures: set[concurrent.futures.Future[HookResult]] = set()

    # ------------------------------------------------------------------ public API
    def apply_settings(self, settings: HookSettings) -> None:
        """New ``[hooks]`` settings (a reload): timeouts and retries apply to the next run."""
        self.settings = settings

    def validate_hook_script(self, path: str | Path) -> Path:
        return validate_hook_script(path)

    def execute_hook(
        self, hook_type: HookType | str, vm_name: str, context: Mapping[str, object]
    ) -> HookResult:
        """Run ``vm_name``'s hook for ``hook_type`` now and return what happened."""
        kind = hook_type_of(hook_type)
        started = time.monotonic()
        try:
            target = self._hooks(vm_name).get(kind.value)
        except Exception as exc:  # a broken config must not stop monitoring
            return self._finish(self._failed(kind, vm_name, None, "none",
                                             f"cannot read hooks: {exc}", started))
        if not target:
            result = HookResult(kind, vm_name, None, True, None, "", "", 0.0, False, True,
                                None, "none")
            log.debug("hook %s for %s: none configured", kind.value, vm_name)
            return result
        if self._stop.is_set():
            return self._finish(self._failed(kind, vm_name, target, _kind_of(target),
                                             "not run: the hook executor is shut down",
                                             started))
        try:
            how = _kind_of(target)
            if how == "webhook":
                result = self._run_webhook(kind, vm_name, target, context, started)
            elif how == "notify":
                result = self._run_notify(kind, vm_name, target, context, started)
            else:
                result = self._run_script(kind, vm_name, target, context, started)
        except Exception as exc:  # last line of defence: report, never raise
            log.exception("hook %s for %s: unexpected error", kind.value, vm_name)
            result = self._failed(kind, vm_name, target, _kind_of(target),
                                  f"unexpected error: {type(exc).__name__}: {exc}", started)
        return self._finish(result)

    def execute_hook_async(
        self, hook_type: HookType | str, vm_name: str, context: Mapping[str, object]
    ) -> concurrent.futures.Future[HookResult]:
        """Queue the hook on the bounded pool; returns at once.

        Beyond ``max_backlog`` waiting events, or after :meth:`shutdown`, the event is
        dropped with a warning and the future is already completed with a failed result.
        """
        kind = hook_type_of(hook_type)
        snapshot = dict(context)
        with self._lock:
            reason = None
            if self._closed:
                reason = "dropped: the hook executor is shut down"
            elif self._waiting >= self.max_backlog:
                reason = (f"dropped: {self._waiting} hook events already waiting (backlog "
                          f"limit {self.max_backlog}); hooks are slower than events arrive")
            if reason is None:
                if self._pool is None:
                    self._pool = concurrent.futures.ThreadPoolExecutor(
                        max_workers=self.settings.max_concurrent, thread_name_prefix="hook")
                self._waiting += 1
                future = self._pool.submit(self._from_queue, kind, vm_name, snapshot)
                self._futures.add(future)
                future.add_done_callback(self._forget)
                return future
        log.warning("hook %s for %s %s", kind.value, vm_name, reason)
        done: concurrent.futures.Future[HookResult] = concurrent.futures.Future()
        done.set_result(self._failed(kind, vm_name, None, "none", reason, time.monotonic()))
        return done

    def shutdown(self, timeout: float = 10.0) -> bool:
        """Stop: cancel waiting hooks, SIGTERM running ones (SIGKILL after the grace).

        Returns True when every running hook has finished within ``timeout`` seconds.
        """
        with self._lock:
            self._closed = True
            pool, self._pool = self._pool, None
            futures = set(self._futures)
        if pool is not None:
            # Cancel the queue before stopping the running hooks, so that no worker
            # freed by the stop picks up a queued event.
            pool.shutdown(wait=False, cancel_futures=True)
        self._stop.set()
        if pool is None:
            return True
        # A future cancelled from the queue never reaches CANCELLED_AND_NOTIFIED, so
        # waiting on it would block: wait only for the ones that run.
        running = [f for f in futures if not f.cancelled()]
        _, not_done = concurrent.futures.wait(running, timeout=timeout)
        return not not_done

    @property
    def pending(self) -> int:
        """Hook events queued but not started yet."""
        with self._lock:
            return self._waiting

    # ------------------------------------------------------------------ internals
    def _from_queue(
        self, kind: HookType, vm_name: str, context: Mapping[str, object]
    ) -> HookResult:
        with self._lock:
            self._waiting -= 1
        return self.execute_hook(kind, vm_name, context)

    def _forget(self, future: concurrent.futures.Future[HookResult]) -> None:
        with self._lock:
            self._futures.discard(future)
            if future.cancelled():
                self._waiting -= 1

    def _run_script(
        self, kind: HookType, vm_name: str, target: str, context: Mapping[str, object],
        started: float,
    ) -> HookResult:
        try:
            script = validate_hook_script(target)
        except HookExecutionError as exc:
            return self._failed(kind, vm_name, target, "script", f"not run: {exc}", started)
        env = build_environment(kind, vm_name, context, timestamp())
        ran = process.run(
            [str(script)], env=env, timeout=self.settings.timeout_seconds,
            kill_grace=self.settings.kill_grace_seconds,
            max_output=self.settings.max_output_bytes, stop=self._stop,
        )
        return HookResult(
            hook_type=kind, vm_name=vm_name, target=target, success=ran.ok,
            exit_code=ran.exit_code, stdout=ran.stdout, stderr=ran.stderr,
            duration_seconds=time.monotonic() - started, timed_out=ran.timed_out,
            skipped=False, error=None if ran.ok else f"{target} {ran.explanation}",
            kind="script", truncated=ran.truncated,
        )

    def _run_webhook(
        self, kind: HookType, vm_name: str, target: str, context: Mapping[str, object],
        started: float,
    ) -> HookResult:
        payload = build_payload(kind, vm_name, context, timestamp())
        sent = webhook.post_json(
            target, payload, timeout=self.settings.webhook_timeout_seconds,
            retries=self.settings.webhook_retries,
        )
        return _delivered(kind, vm_name, target, started, "webhook", sent.success,
                          sent.attempts, sent.error, sent.status, timed_out=False)

    def _run_notify(
        self, kind: HookType, vm_name: str, target: str, context: Mapping[str, object],
        started: float,
    ) -> HookResult:
        """Through apprise (:mod:`.adapters.notify`), within the webhook budget and never
        past the hook timeout."""
        when = timestamp()
        budget = min(self.settings.webhook_timeout_seconds, self.settings.timeout_seconds)
        sent = notify.send(
            target, hook_message.title(kind.value, vm_name),
            hook_message.body(kind.value, vm_name, context, when),
            timeout=budget, retries=self.settings.webhook_retries,
        )
        return _delivered(kind, vm_name, target, started, "notify", sent.success,
                          sent.attempts, sent.error, sent.status, timed_out=sent.timed_out)

    @staticmethod
    def _failed(
        kind: HookType, vm_name: str, target: str | None, how: HookKind, error: str,
        started: float,
    ) -> HookResult:
        return HookResult(kind, vm_name, target, False, None, "", "",
                          time.monotonic() - started, False, False, error, how)

    @staticmethod
    def _finish(result: HookResult) -> HookResult:
        target = _redact(result.target or "")
        fields: dict[str, Any] = {
            "hook": result.hook_type.value, "hook_target": target,
            "success": result.success, "exit_code": result.exit_code,
            "timed_out": result.timed_out, "duration_seconds": round(result.duration_seconds, 3),
        }
        if result.success:
            log_event(log, Event.HOOK_RESULT,
                      f"hook {result.hook_type.value} for {result.vm_name}: "
                      f"{target} succeeded in "
                      f"{result.duration_seconds:.2f}s", vm=result.vm_name, **fields)
        else:
            log_event(log, Event.HOOK_RESULT,
                      f"hook {result.hook_type.value} for {result.vm_name} failed in "
                      f"{result.duration_seconds:.2f}s: {result.error}", vm=result.vm_name,
                      level=logging.WARNING, error=result.error, **fields)
        return result


def _kind_of(target: str) -> HookKind:
    return hook_targets.kind_of(target)


_redact = hook_targets.redacted


def _delivered(kind: HookType, vm_name: str, target: str, started: float,
               how: Literal["webhook", "notify"], success: bool, attempts: int,
               error: str | None, status: int | None, *, timed_out: bool) -> HookResult:
    """The result of a webhook's or a notification's delivery (the target redacted)."""
    if not success:
        tries = f" after {attempts} attempts" if attempts > 1 else ""
        name = "webhook" if how == "webhook" else "notification"
        error = f"{name} {_redact(target)} failed{tries}: {error}"
    return HookResult(
        hook_type=kind, vm_name=vm_name, target=target, success=success, exit_code=None,
        stdout="", stderr="", duration_seconds=time.monotonic() - started,
        timed_out=timed_out, skipped=False, error=None if success else error, kind=how,
        http_status=status)
