"""The chaos soak's faults: a schedule drawn from ``random.Random(seed)`` and what each
fault does to the stand-in (through its control API), the hooks' mode file and the
configuration (through the CLI and by hand). Every injection is logged with its time.
"""

from __future__ import annotations

import random
import subprocess
import sys
import time
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import tomli_w

# per-VM faults a restart may cure (the daemon may repair), and the monitor's own
GUEST = ("ssh_hang", "ssh_refuse", "op_fail", "op_hang")
MONITOR_VM = ("ssh_auth", "ssh_host_key")
GLOBAL = ("arm_429", "arm_500", "arm_latency", "bastion")
HOOKS = ("hook_hang", "hook_crash", "hook_flood")
CONFIG = ("cli_edit", "cli_invalid", "hand_edit", "hand_invalid")
WEIGHTS = {"ssh_hang": 6, "ssh_refuse": 3, "op_fail": 2, "op_hang": 1, "ssh_auth": 3,
           "ssh_host_key": 3, "arm_429": 2, "arm_500": 2, "arm_latency": 1, "bastion": 2,
           "hook_hang": 1, "hook_crash": 1, "hook_flood": 1, "cli_edit": 2, "cli_invalid": 1,
           "hand_edit": 2, "hand_invalid": 1}
BASTION_FAULTS = ("down", "hang", "refuse", "drop", "exchange_500")
MONITOR_FAULT_SECONDS = (40.0, 90.0)
REPAIR_WAIT = 25.0  # a kill meant for a repair in flight waits this long for one
HOOK_SCRIPT = """#!/bin/sh
echo "$EVENT_TYPE $VM_NAME $(date +%s.%N) ${{RESTART_RESULT:-none}}" >> {log}
case "$(cat {mode} 2>/dev/null)" in
  hang) exec sleep 600 ;;
  crash) kill -SEGV $$ ;;
  flood) head -c 3000000 /dev/zero | tr '\\0' x ;;
esac
exit 0
"""


@dataclass(frozen=True)
class Planned:
    at: float  # seconds after the soak began
    kind: str
    vm: str  # "" for a fleet-wide fault
    amount: float  # the fault's size: a count, seconds, a threshold, ...


def schedule(rng: random.Random, vms: list[str], seconds: float,
             per_minute: float) -> list[Planned]:
    """Faults at exponential gaps averaging ``per_minute`` a minute."""
    kinds, weights = list(WEIGHTS), list(WEIGHTS.values())
    plan, at = [], 20.0
    while True:
        at += rng.expovariate(per_minute / 60.0)
        if at >= seconds:
            return plan
        kind = rng.choices(kinds, weights)[0]
        plan.append(Planned(round(at, 2), kind, rng.choice(vms), round(rng.random(), 4)))


def kill_times(rng: random.Random, seconds: float) -> list[tuple[float, bool]]:
    """SIGKILL moments at most 180 s apart (155 s, then up to REPAIR_WAIT for a repair in
    flight: every third kill, from the first, waits for one), and at least 76 s: the
    unit's StartLimitBurst=5 in StartLimitIntervalSec=300 must not be what stops it."""
    out, at = [], rng.uniform(40.0, 75.0)  # 5 starts fit in any 300 s even so
    while at < seconds:
        out.append((round(at, 2), len(out) % 3 == 0))
        at += rng.uniform(76.0, 180.0 - REPAIR_WAIT)
    return out


@dataclass
class Injected:
    at: float  # epoch
    kind: str
    vm: str
    detail: str


@dataclass
class Injector:
    """Applies planned faults; keeps what it did (``log``) and what it must undo."""

    sim: Any
    config: Path
    hook_mode: Path
    env: dict[str, str]
    repo: Path
    wrap: Any = None  # argv -> argv: how the CLI is run (as the unit's user)
    log: list[Injected] = field(default_factory=list)
    skipped: int = 0
    busy: dict[str, float] = field(default_factory=dict)  # VM -> epoch it is free again
    refused: dict[str, float] = field(default_factory=dict)  # VM -> injected at
    hung_ops: dict[str, float] = field(default_factory=dict)
    undo: list[tuple[float, str, str]] = field(default_factory=list)  # (epoch, what, vm)
    expected: dict[tuple[str, str], int] = field(default_factory=dict)  # config edits
    bad_text: bytes | None = None  # the file's good text while a bad hand edit is in place
    edits: int = 0
    cli_violations: list[str] = field(default_factory=list)
    global_until: dict[str, float] = field(default_factory=dict)

    def _note(self, kind: str, vm: str, detail: str = "") -> None:
        self.log.append(Injected(time.time(), kind, vm, detail))

    def apply(self, p: Planned) -> None:
        now = time.time()
        if p.kind in GUEST or p.kind in MONITOR_VM:
            if self.busy.get(p.vm, 0.0) > now:
                self.skipped += 1
                return
            getattr(self, "_" + p.kind)(p, now)
        elif p.kind in GLOBAL or p.kind in HOOKS:
            group = "hook" if p.kind in HOOKS else p.kind
            if self.global_until.get(group, 0.0) > now:
                self.skipped += 1
                return
            getattr(self, "_" + p.kind)(p, now)
        else:
            if self.bad_text is not None and p.kind != "cli_invalid" and p.kind != "cli_edit":
                self.skipped += 1
                return
            getattr(self, "_" + p.kind)(p, now)

    # ------------------------------------------------------------------ per VM
    def _ssh_hang(self, p: Planned, now: float) -> None:
        self.sim.set_ssh_mode(p.vm, "hung")
        self.busy[p.vm] = float("inf")  # until its repair is seen
        self._note("ssh_hang", p.vm)

    def _ssh_refuse(self, p: Planned, now: float) -> None:
        self.sim.set_ssh_mode(p.vm, "refused")
        self.refused[p.vm] = now
        self.busy[p.vm] = float("inf")
        self._note("ssh_refuse", p.vm)

    def _op_fail(self, p: Planned, now: float) -> None:
        self.sim.fail_next_operation(p.vm, "restart")
        self._ssh_hang(p, now)
        self.log[-1].kind, self.log[-1].detail = "op_fail", "hung SSH; its restart fails"

    def _op_hang(self, p: Planned, now: float) -> None:
        self.sim.hang_operations(p.vm, "restart")
        self.hung_ops[p.vm] = now
        self._ssh_hang(p, now)
        self.log[-1].kind, self.log[-1].detail = "op_hang", "hung SSH; its restart hangs"

    def _ssh_auth(self, p: Planned, now: float) -> None:
        self._monitor_vm(p, now, "auth_fail")

    def _ssh_host_key(self, p: Planned, now: float) -> None:
        self._monitor_vm(p, now, "host_key_changed")

    def _monitor_vm(self, p: Planned, now: float, mode: str) -> None:
        lasts = MONITOR_FAULT_SECONDS[0] + p.amount * (MONITOR_FAULT_SECONDS[1]
                                                       - MONITOR_FAULT_SECONDS[0])
        self.sim.set_ssh_mode(p.vm, mode)
        self.undo.append((now + lasts, "ssh_up", p.vm))
        self.busy[p.vm] = now + lasts + 30.0  # and a while after, to see it heal
        self._note("ssh_auth" if mode == "auth_fail" else "ssh_host_key", p.vm,
                   f"{mode} for {lasts:.0f} s")

    def seen_repair(self, vm: str, started: float, ok: bool) -> None:
        """A repair of ``vm`` began at ``started`` (from the operation log)."""
        if vm in self.refused and started >= self.refused[vm]:
            self.sim.set_ssh_mode(vm, "up")  # the reboot brought sshd back
            del self.refused[vm]
        if ok and vm not in self.refused and vm not in self.hung_ops:
            self.busy[vm] = min(self.busy.get(vm, 0.0), time.time() + 60.0)

    def seen_hung(self, vm: str) -> None:
        """``vm``'s restart hangs in the stand-in: the fault is lifted for the next one."""
        if vm in self.hung_ops:
            self.sim.clear_operation_faults(vm)
            del self.hung_ops[vm]

    # ------------------------------------------------------------------ fleet-wide
    def _arm_429(self, p: Planned, now: float) -> None:
        count, after = 3 + int(p.amount * 20), 1 + round(p.amount * 4)
        self.sim.set_arm_fault(429, count, retry_after=after)
        self._note("arm_429", "", f"next {count} ARM answers 429, Retry-After {after}")

    def _arm_500(self, p: Planned, now: float) -> None:
        count = 3 + int(p.amount * 10)
        self.sim.set_arm_fault(500, count)
        self._note("arm_500", "", f"next {count} ARM answers 500")

    def _arm_latency(self, p: Planned, now: float) -> None:
        seconds, lasts = 1.0 + 3.0 * p.amount, 30.0 + 30.0 * p.amount
        self.sim.set_arm_latency(seconds)
        self.global_until["arm_latency"] = now + lasts
        self.undo.append((now + lasts, "latency_off", ""))
        self._note("arm_latency", "", f"{seconds:.1f} s a request for {lasts:.0f} s")

    def _bastion(self, p: Planned, now: float) -> None:
        mode = BASTION_FAULTS[int(p.amount * len(BASTION_FAULTS)) % len(BASTION_FAULTS)]
        lasts = 20.0 + 40.0 * p.amount
        self.sim.set_bastion_mode(mode)
        self.global_until["bastion"] = now + lasts
        self.undo.append((now + lasts, "bastion_up", ""))
        self._note("bastion", "", f"{mode} for {lasts:.0f} s")

    def _hook(self, p: Planned, now: float, mode: str) -> None:
        lasts = 30.0 + 60.0 * p.amount
        self.hook_mode.write_text(mode)
        self.global_until["hook"] = now + lasts
        self.undo.append((now + lasts, "hook_normal", ""))
        self._note("hook_" + mode, "", f"for {lasts:.0f} s")

    def _hook_hang(self, p: Planned, now: float) -> None:
        self._hook(p, now, "hang")

    def _hook_crash(self, p: Planned, now: float) -> None:
        self._hook(p, now, "crash")

    def _hook_flood(self, p: Planned, now: float) -> None:
        self._hook(p, now, "flood")

    # ------------------------------------------------------------------ configuration
    def _cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        argv = [sys.executable, "-m", "azlin_lifecycle", *args]
        return subprocess.run(argv if self.wrap is None else self.wrap(argv), env=self.env,
                              cwd=self.repo, capture_output=True, text=True, timeout=60)

    def _cli_edit(self, p: Planned, now: float) -> None:
        threshold = 2 + int(p.amount * 2)
        before = self.config.read_bytes()
        result = self._cli("enable", p.vm, "--threshold", str(threshold))
        self.edits += 1
        if self.bad_text is not None:  # a broken file: the CLI must refuse, not rewrite it
            if result.returncode == 0 or self.config.read_bytes() != before:
                self.cli_violations.append(f"CLI edited a file that is not valid TOML: "
                                           f"{p.vm} threshold {threshold}")
            self._note("cli_edit", p.vm, "refused (the file was broken by hand)")
            return
        if result.returncode != 0:
            self.cli_violations.append(f"valid CLI edit failed: {result.stderr.strip()}")
        else:
            self.expected[(p.vm, "ssh_failure_threshold")] = threshold
        self._check_file("after a CLI edit")
        self._note("cli_edit", p.vm, f"threshold {threshold}")

    def _cli_invalid(self, p: Planned, now: float) -> None:
        before = self.config.read_bytes()
        result = self._cli("enable", p.vm, "--interval", "5")
        self.edits += 1
        if result.returncode == 0 or self.config.read_bytes() != before:
            self.cli_violations.append(f"invalid CLI edit accepted or file changed: {p.vm}")
        if result.returncode != 0 and len(result.stderr.strip().splitlines()) != 1:
            self.cli_violations.append(f"invalid CLI edit: not a one-line error: "
                                       f"{result.stderr.strip()!r}")
        self._note("cli_invalid", p.vm, "--interval 5 (refused)")

    def _hand_edit(self, p: Planned, now: float) -> None:
        doc = tomllib.loads(self.config.read_text())
        interval = 10 + 5 * int(p.amount * 3)
        doc["vms"][p.vm]["check_interval_seconds"] = interval
        tmp = self.config.with_suffix(".tmp")
        tmp.write_text(tomli_w.dumps(doc))
        tmp.replace(self.config)
        self.edits += 1
        self.expected[(p.vm, "check_interval_seconds")] = interval
        self._note("hand_edit", p.vm, f"check_interval_seconds {interval}")

    def _hand_invalid(self, p: Planned, now: float) -> None:
        self.bad_text = self.config.read_bytes()
        with self.config.open("ab") as f:  # in place, as an editor that saves as you type
            f.write(b"\n[vms.broken\nthreshold = \n")
        lasts = 5.0 + 10.0 * p.amount
        self.undo.append((now + lasts, "restore_config", ""))
        self.edits += 1
        self._note("hand_invalid", "", f"for {lasts:.0f} s")

    def _check_file(self, when: str) -> None:
        try:
            tomllib.loads(self.config.read_text())
        except (tomllib.TOMLDecodeError, OSError) as exc:
            self.cli_violations.append(f"config not valid TOML {when}: {exc}")

    # ------------------------------------------------------------------ undoing
    def tick(self, force: bool = False) -> None:
        """Undo the faults whose time is up (all of them with ``force``)."""
        now = time.time()
        due = [u for u in self.undo if force or u[0] <= now]
        self.undo = [u for u in self.undo if u not in due]
        for _, what, vm in due:
            if what == "ssh_up":
                self.sim.set_ssh_mode(vm, "up")
            elif what == "latency_off":
                self.sim.set_arm_latency(0.0)
            elif what == "bastion_up":
                self.sim.set_bastion_mode("up")
            elif what == "hook_normal":
                self.hook_mode.write_text("normal")
            elif what == "restore_config" and self.bad_text is not None:
                current = self.config.read_bytes()
                # the good text back, as the editor's user fixes the typo
                self.config.write_bytes(current.replace(b"\n[vms.broken\nthreshold = \n", b""))
                self.bad_text = None
                self._check_file("after a bad hand edit was fixed")

    def valid_now(self) -> bool:
        return self.bad_text is None

    def end(self) -> None:
        """Lift every fault: the fleet may heal before the books are closed."""
        self.tick(force=True)
        for vm in list(self.refused):
            self.sim.set_ssh_mode(vm, "up")
        for vm in list(self.hung_ops):
            self.sim.clear_operation_faults(vm)
        self.sim.set_arm_fault(500, 0)
