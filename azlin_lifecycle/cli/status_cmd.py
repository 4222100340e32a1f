"""status: the daemon (from systemd), then every monitored VM (from the state store)."""

from __future__ import annotations

import datetime as dt
from typing import TYPE_CHECKING, Any

import click

from ..errors import ControllerError
from ..models import clock_utc
from .context import AppContext, pass_app
from .discover import discovered
from .output import ago, echo_json, echo_table

if TYPE_CHECKING:
    from ..state import StateStore


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show the daemon, then each VM: state, last check, failures, last repair, holds."""
    from ..controller import DaemonController
    from ..state import StateStore

    config = app.manager().load()
    daemon: dict[str, Any]
    controller = DaemonController(app.config_path)
    try:
        st = controller.daemon_status()
        daemon = {"active_state": st.active_state, "sub_state": st.sub_state,
                  "running": st.running, "pid": st.pid,
                  "uptime_seconds": None if st.uptime is None else st.uptime.total_seconds(),
                  "status_text": st.status_text, "n_restarts": st.n_restarts,
                  "installed": st.installed}
    except ControllerError as exc:
        daemon = {"running": None, "error": str(exc)}
    finally:
        controller.close()
    store = StateStore(history_size=config.daemon.history_size)
    try:
        latest = store.latest()
        repairs = store.last_repairs()
        holds = store.all_healing_states()
        facts = store.daemon_facts()
        progress = {vm: _progress(store, vm, hold.phase) for vm, hold in holds.items()
                    if hold.phase and (r := repairs.get(vm)) is not None
                    and r.outcome == "in_flight"}
    finally:
        store.close()
    found = discovered(config, facts)  # the VMs [discovery] found, at the daemon's last listing
    rows: list[dict[str, Any]] = []
    for vm, cfg in sorted(found.config.vms.items()):
        s = latest.get(vm)
        r = repairs.get(vm)
        hold = holds.get(vm)
        rows.append({
            "vm": vm,
            "source": found.sources.get(vm, "config"),
            "enabled": cfg.enabled,
            "policy": cfg.restart_policy.value + (" (dry run)" if cfg.dry_run else ""),
            "state": s.state.value if s else None,
            "healthy": s.healthy if s else None,
            "needs_you": s.needs_you if s else False,
            "reason": s.reason if s else None,
            "ssh_via": s.ssh_via if s else None,
            "last_check": s.timestamp if s else None,
            "failures": s.ssh_failures if s else None,
            "last_repair": None if r is None else {
                "action": r.action.value, "outcome": r.outcome, "at": r.started_at,
                "error": r.error},
            "held_back": hold.held_reason if hold else None,
            "repair_progress": progress.get(vm),
            "azure_evidence": hold.evidence if hold else None,
        })
    if as_json:
        echo_json({"daemon": daemon, "last_daemon_status": facts.get("status_text"),
                   "breaker_open": facts.get("breaker_open", False),
                   "leadership": facts.get("ha") if config.ha.enabled else None,
                   "discovery": None if config.discovery is None else {
                       "enabled": config.discovery.enabled, "line": found.line(),
                       "resource_groups": list(config.discovery.resource_groups),
                       "tags": list(config.discovery.tags),
                       "discovered": sorted(v for v, s in found.sources.items()
                                            if s == "discovery"),
                       "listed_at": found.facts.get("listed_at"),
                       "error": found.facts.get("error")},
                   "vms": rows})
        return
    _print_daemon(daemon, facts)
    if config.ha.enabled:
        click.echo(_leadership_text(facts.get("ha")))
    if line := found.line():
        click.echo(line)
    click.echo("")
    if not rows:
        click.echo("No VMs configured. Add one with: azlin lifecycle enable VM")
        return
    now = dt.datetime.now(dt.UTC)
    echo_table(
        ["VM", "STATE", "HEALTH", "LAST CHECK", "FAILURES", "LAST REPAIR", "POLICY"],
        [[row["vm"] + ("" if row["enabled"] else " (disabled)")
          + (" (discovered)" if row["source"] == "discovery" else ""),
          row["state"] or "-",
          _health_text(row),
          ago(row["last_check"], now),
          "-" if row["failures"] is None else row["failures"],
          _repair_text(row["last_repair"], now),
          row["policy"]] for row in rows],
    )
    for row in rows:
        if row["healthy"] is False and row["reason"]:
            prefix = "needs you: " if row["needs_you"] else ""
            click.echo(f"{row['vm']}: {prefix}{row['reason']}")
        if row["repair_progress"]:
            click.echo(f"{row['vm']}: {row['repair_progress']}")
        if row["held_back"]:
            click.echo(f"{row['vm']}: healing held back: {row['held_back']}")
        repair = row["last_repair"]
        if repair and repair["outcome"] == "failed" and repair["error"]:
            click.echo(f"{row['vm']}: last repair failed: {repair['error'].splitlines()[0]}"
                       + (" (more in status --json)" if "\n" in repair["error"] else ""))
        if row["azure_evidence"] and row["healthy"] is False:
            click.echo(f"{row['vm']}: Azure's view at the last repair decision: "
                       f"{row['azure_evidence']}")


def _progress(store: StateStore, vm: str, phase: dict[str, Any]) -> str | None:
    """A repair in flight that Azure accepted: started yet, by the VM's checks?"""
    from ..signals import repair_progress

    try:
        accepted = float(phase["accepted"])
    except (KeyError, TypeError, ValueError):
        return None
    history = store.history(vm, limit=50)
    before = [s for s in history if s.timestamp.timestamp() < accepted]
    after = [s for s in history if s.timestamp.timestamp() >= accepted]
    return repair_progress(str(phase.get("action", "repair")), accepted,
                           before[-1] if before else None, after[-1] if after else None,
                           dt.datetime.now(dt.UTC).timestamp())


def _leadership_text(ha: dict[str, Any] | None) -> str:
    """Who leads, since when, and the lease's expiry, as the daemon last wrote them."""
    if not ha:
        return "leadership: unknown (the daemon has not taken part in an election yet)"
    line = f"leadership: {ha['role']} since {clock_utc(ha['since'])}"
    if ha["role"] == "leader":
        line += f" ({ha.get('leader')})"
        if ha.get("expires"):
            line += f"; lease expires {clock_utc(ha['expires'])} unless renewed"
        return line
    line += f"; {ha['reason']}"
    return line


def _health_text(row: dict[str, Any]) -> str:
    if row["healthy"] is None:
        return "-"
    if row["healthy"]:
        return "healthy"
    return "NEEDS YOU" if row["needs_you"] else "UNHEALTHY"


def _repair_text(repair: dict[str, Any] | None, now: dt.datetime) -> str:
    if repair is None:
        return "never"
    return f"{repair['action']} {repair['outcome']} {ago(repair['at'], now)}"


def _print_daemon(daemon: dict[str, Any], facts: dict[str, Any]) -> None:
    if daemon.get("error"):
        click.echo(f"daemon: unknown ({daemon['error']})")
        if facts.get("status_text"):
            click.echo(f"last status it wrote: {facts['status_text']}")
        return
    state = f"{daemon['active_state']} ({daemon['sub_state']})"
    if not daemon["installed"]:
        state += "; not installed (azlin lifecycle install)"
    elif daemon["running"] and daemon["uptime_seconds"] is not None:
        state += f", pid {daemon['pid']}, up {int(daemon['uptime_seconds'])}s"
    click.echo(f"daemon: {state}")
    if daemon["n_restarts"]:
        click.echo(f"restarted by systemd {daemon['n_restarts']} times")
    text = daemon["status_text"] or facts.get("status_text")
    if text:
        click.echo(f"status: {text}")


COMMANDS = [status]
