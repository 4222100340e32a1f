"""Chaos soak: the daemon against a simulated fleet while everything goes wrong at once.

``.venv/bin/python bench/chaos.py [--vms 100] [--minutes 60] [--seed N] [--rate F]``

A fleet of public and private VMs (half each; the private ones behind the stand-in
Bastion) in its own process; the daemon (``daemon run``) in the foreground under a small
supervisor that restarts it as the unit's systemd would (bench/_chaos_daemon.py); faults
drawn from ``random.Random(seed)`` at ``--rate`` a minute per 100 VMs
(bench/_chaos_faults.py): SSH hang/refuse/auth/host-key change, ARM 429 with Retry-After,
500, latency, failed and hanging operations, Bastion faults, hooks that hang, crash or
flood their output, valid and invalid configuration edits through the CLI and by hand;
and SIGKILL of the daemon at random moments (at most 150 s apart, every third while a
repair is in flight). At the end every fault is lifted, the fleet settles, the daemon is
stopped, and the invariants are judged (bench/_chaos_checks.py): a table, a summary, and
exit status 1 on any violation.
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import platform
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(1, str(Path(__file__).resolve().parent.parent))  # tests.support

import _chaos_checks as checks
from _chaos_daemon import Supervisor
from _chaos_faults import (
    HOOK_SCRIPT,
    REPAIR_WAIT,
    Injector,
    Planned,
    kill_times,
    schedule,
)
from _chaos_systemd import SystemdUnit
from _procs import REPO, simulator

INTERVAL = 10
BUDGET, WINDOW = 3, 3600
RESTART_TIMEOUT = 60
SETTLE = 30.0
BAIT_LEAD = 20.0  # a kill meant for a repair in flight hangs a VM this long before


def config(sim: object, path: Path, hook: Path) -> None:
    names = sim.vm_names  # type: ignore[attr-defined]
    sim.write_config(  # type: ignore[attr-defined]
        path, resolve_ssh=True, check_interval_seconds=INTERVAL, extra_toml={
            "daemon": {"ssh_timeout_seconds": 4.0},
            "healing": {"grace_period_seconds": 10, "restart_budget": BUDGET,
                        "budget_window_seconds": WINDOW, "operation_poll_seconds": 2,
                        "restart_timeout_seconds": RESTART_TIMEOUT,
                        "capture_serial_log": False},
            "hooks": {"timeout_seconds": 5.0, "kill_grace_seconds": 1.0},
            "vms": {vm: {"ssh_failure_threshold": 2,
                         "hooks": {h: str(hook) for h in ("on_failure", "on_restart",
                                                          "on_healthy")}}
                    for vm in names}})


def run(args: argparse.Namespace, tmp: Path) -> int:
    if args.supervisor == "foreground":
        return soak(args, tmp, None)
    from tests.support.user_session import HarnessUnavailable, UserSession

    try:
        session = UserSession().start()
    except HarnessUnavailable as exc:
        if args.supervisor == "systemd":
            raise SystemExit(f"no systemd user manager: {exc}") from None
        print(f"no systemd user manager ({exc}); the daemon runs under the soak's own "
              "supervisor", flush=True)
        return soak(args, tmp, None)
    try:
        return soak(args, session.home / "chaos", session)
    finally:
        session.stop()


def soak(args: argparse.Namespace, tmp: Path, session: Any) -> int:
    rng = random.Random(args.seed)
    seconds = args.minutes * 60.0
    wrap, sim_env = None, None
    if session is not None:  # everything the unit's user must reach is the user's
        shutil.rmtree(tmp, ignore_errors=True)  # an earlier soak's books are not this one's
        tmp.mkdir(parents=True)
        wrap, sim_env = session.user_argv, session.env
        for d in (tmp, tmp / "sim", tmp / "config", tmp / "state"):
            d.mkdir(exist_ok=True)
            os.chown(d, session.uid, session.gid)
    with simulator(tmp / "sim", args.vms, boot_seconds=3.0, operation_seconds=6.0,
                   private=True, wrap=wrap, env=sim_env) as (sim, _, _):
        public = sim.vm_names[::2]
        for vm in public:
            sim.set_public_ip(vm, True)
        (tmp / "config").mkdir(exist_ok=True)
        cfg = tmp / "config" / "lifecycle-config.toml"
        hook, hook_log, mode = tmp / "hook.sh", tmp / "hooks.log", tmp / "hook-mode"
        hook.write_text(HOOK_SCRIPT.format(log=hook_log, mode=mode))
        hook.chmod(0o755)
        mode.write_text("normal")
        hook_log.touch()
        config(sim, cfg, hook)
        env = sim.env()
        env.update(AZLIN_CONFIG_DIR=str(tmp / "config"), XDG_STATE_HOME=str(tmp / "state"),
                   PYTHONUNBUFFERED="1")
        sup: Supervisor | SystemdUnit
        if session is not None:
            for path in (cfg, hook, hook_log, mode):
                os.chown(path, session.uid, session.gid)
            env.update({k: v for k, v in session.env.items() if k != "PATH"})
            sup = SystemdUnit(session, tmp, env)
        else:
            sup = Supervisor(tmp, env, REPO)
        plan = schedule(rng, sim.vm_names, seconds, args.rate * max(args.vms, 30) / 100)
        kills = kill_times(rng, seconds)
        inj = Injector(sim, cfg, mode, env, REPO, wrap)
        sup.start()
        began = time.time()
        hung_ids: set[str] = set()
        seen_ops: set[str] = set()
        waiting_since: float | None = None
        bait, baited = random.Random(args.seed + 1), set[float]()
        last_poll = 0.0
        print(f"chaos soak: {args.vms} VMs ({len(public)} public, "
              f"{args.vms - len(public)} behind Bastion), {args.minutes:g} min, seed "
              f"{args.seed}, {len(plan)} faults and {len(kills)} kills planned; the daemon "
              + ("as the user unit under systemd --user" if session else "under the soak's "
                 "supervisor") + f"; in {tmp}", flush=True)
        while (now := time.time()) - began < seconds:
            while plan and plan[0].at <= now - began:
                inj.apply(plan.pop(0))
            inj.tick()
            if kills and kills[0][1] and kills[0][0] not in baited \
                    and now - began >= kills[0][0] - BAIT_LEAD:
                baited.add(kills[0][0])  # a hung VM, for a repair to be in flight then
                free = [vm for vm in sim.vm_names if inj.busy.get(vm, 0.0) <= now]
                if free:
                    inj.apply(Planned(now - began, "ssh_hang", bait.choice(free), 0.0))
            if kills and kills[0][0] <= now - began and sup.alive() and inj.valid_now():
                wants_repair = kills[0][1]
                in_flight = sup.repair_in_flight()
                if not wants_repair or in_flight:
                    sup.kill(in_flight)
                    kills.pop(0)
                    waiting_since = None
                elif waiting_since is None:
                    waiting_since = now
                elif now - waiting_since > REPAIR_WAIT:
                    sup.kill(False)
                    kills.pop(0)
                    waiting_since = None
            sup.tick()
            if now - last_poll >= 1.0:
                last_poll = now
                _follow_ops(sim, inj, hung_ids, seen_ops)
            time.sleep(0.2)
        inj.end()
        settle_end = time.time() + SETTLE
        while time.time() < settle_end:
            sup.tick()
            _follow_ops(sim, inj, hung_ids, seen_ops)
            time.sleep(0.5)
        sup.stop()
        ops = [o for o in sim.operations() if o["action"] in checks.REPAIRS]
        return report(args, tmp, began, inj, sup, ops, hung_ids, cfg, hook_log)


def _follow_ops(sim: object, inj: Injector, hung_ids: set[str], seen: set[str]) -> None:
    """Tell the injector about repairs as they appear: a refused sshd comes back with the
    reboot; a restart the stand-in hangs has its fault lifted for the next one."""
    for op in sim.operations():  # type: ignore[attr-defined]
        if op["action"] not in checks.REPAIRS or op["id"] in seen:
            continue
        seen.add(op["id"])
        if op["vm"] in inj.hung_ops and op["started"] >= inj.hung_ops[op["vm"]]:
            hung_ids.add(op["id"])
            inj.seen_hung(op["vm"])
        inj.seen_repair(op["vm"], op["started"], op["id"] not in hung_ids)


def report(args: argparse.Namespace, tmp: Path, began: float, inj: Injector,
           sup: Supervisor | SystemdUnit,
           ops: list[dict[str, object]], hung_ids: set[str], cfg: Path, hook_log: Path) -> int:
    (tmp / "chaos-record.json").write_text(json.dumps({
        "began": began, "faults": [vars(f) for f in inj.log], "kills": sup.kills,
        "operations": ops, "hung_operations": sorted(hung_ids)}, indent=1))
    rows_db = checks.ledger(sup.db)
    events = sup.journal_events(began) if isinstance(sup, SystemdUnit) else \
        checks.journal_events(tmp / "daemon.log")
    hooks = checks.hook_lines(hook_log)
    double, monitor, after_kill = checks.incidents(ops, inj.log, hung_ids, sup.kills)
    rss, flat = checks.resources(sup.steady, began, args.minutes)
    table = [double, monitor, checks.budget(ops, BUDGET, WINDOW),
             checks.recorded(ops, rows_db, events), checks.on_restart(hooks, rows_db, ops),
             checks.config_file(cfg, inj.expected, inj.edits, inj.cli_violations),
             checks.Row("the daemon died only when killed", sup.starts,
                        [f"exit {code} at {at - began:.0f} s" for at, code in sup.own_exits]),
             rss, flat, checks.bounded(sup.samples, args.vms)]
    width = max(len(r.name) for r in table)
    print(f"\n{'invariant':<{width}}  {'checked':>7}  {'violations':>10}  verdict")
    for r in table:
        print(f"{r.name:<{width}}  {r.checked:>7}  {len(r.violations):>10}  {r.verdict}")
    for r in table:
        for v in r.violations[:10]:
            print(f"  {r.name}: {v}")
    kinds = collections.Counter(f.kind for f in inj.log)
    print(f"\nfaults injected: {sum(kinds.values())} ("
          + ", ".join(f"{k} {n}" for k, n in sorted(kinds.items()))
          + f"); {inj.skipped} skipped (VM or fault already busy)")
    print(f"SIGKILLs: {len(sup.kills)}, {sum(1 for _, r in sup.kills if r)} with a repair in "
          f"flight; daemon starts: {sup.starts}; repairs in the stand-in's log: {len(ops)} "
          f"({sum(1 for o in ops if o['status'] == 'Succeeded')} succeeded); incidents "
          f"repaired again after a SIGKILL: {after_kill}")
    journal = collections.Counter(e for _, e in events)
    print("journal: " + ", ".join(f"{e} {journal[e]}" for e in (
        "restart_requested", "restart_succeeded", "restart_failed", "repair_settled",
        "repair_held") if journal[e]))
    at10 = next((s for s in sup.samples if s.at - began >= 600), None)
    end = sup.samples[-1] if sup.samples else None
    for label, s in (("at 10 min", at10), ("at the end", end)):
        print(f"daemon {label}: " + ("-" if s is None else
              f"RSS {s.rss_mb:.1f} MB, {s.fds} fds, {s.threads} threads (age {s.age:.0f} s)"))
    print("steady samples (each incarnation at 45 s): " + ", ".join(
        f"{s.rss_mb:.0f}MB/{s.fds}fd({s.sockets} sockets)/{s.threads}t" for s in sup.steady))
    print(f"machine: {platform.node()}, {platform.platform()}, "
          f"{platform.python_version()}; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    failed = any(r.violations for r in table)
    print("\nRESULT: " + ("FAIL" if failed else "ok"))
    return 1 if failed else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--vms", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=60.0)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rate", type=float, default=8.0,
                        help="faults a minute per 100 VMs (default 8)")
    parser.add_argument("--supervisor", choices=("auto", "systemd", "foreground"),
                        default="auto", help="the daemon as the user unit under a real "
                        "systemd user manager, or under the soak's own supervisor; auto: "
                        "systemd when one can be brought up")
    parser.add_argument("--keep", action="store_true", help="keep the working directory "
                        "(daemon.log, hooks.log, state/, chaos-record.json: faults, kills and "
                        "the stand-in's operations)")
    args = parser.parse_args()
    if args.keep:
        return run(args, Path(tempfile.mkdtemp(prefix="azlin-chaos-")))
    with tempfile.TemporaryDirectory(prefix="azlin-chaos-") as tmp:
        return run(args, Path(tmp))


if __name__ == "__main__":
    sys.exit(main())
