"""check and history: one health check now, and what the checks saw."""

from __future__ import annotations

import click

from ..errors import HealthCheckError
from ..models import HealthStatus, SshFault
from .context import AppContext, pass_app
from .output import ago, echo_fields, echo_json, echo_table


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}%"


@click.command()
@click.argument("vm")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def check(app: AppContext, vm: str, as_json: bool) -> None:
    """Check VM now (Azure power state, then SSH) and print the result.

    Exit 1 when it is unhealthy. When Azure says the VM's subscription or resource
    group does not exist (or cannot be read), that is the one line printed."""
    from ..wiring import HealthMonitor

    monitor = HealthMonitor(app.manager().config_path)
    try:
        status = monitor.check_vm_health(vm)
    finally:
        monitor.close()
    if status.fault is SshFault.AZURE_SCOPE and not as_json:  # wrong subscription or group
        raise HealthCheckError(f"{vm}: {status.reason}")
    if as_json:
        echo_json(status.to_record())
    else:
        _print_status(status)
    if not status.healthy:
        raise SystemExit(1)


def _print_status(s: HealthStatus) -> None:
    m = s.metrics
    echo_fields(
        [
            ("vm", s.vm_name),
            ("health", "healthy" if s.healthy else f"UNHEALTHY: {s.reason}"),
            ("power state", s.state.value),
            ("provisioning", s.provisioning_state),
            ("vm agent", s.agent_status),
            ("ssh", (("reachable" if s.ssh_reachable else "unreachable")
                     + (f" ({s.ssh_via})" if s.ssh_reachable and s.ssh_via else ""))
             if s.ssh_checked else "not tried (VM not running)"),
            ("consecutive failures", s.ssh_failures),
            ("cpu / memory / disk", "-" if m is None else
             f"{_pct(m.cpu_percent)} / {_pct(m.memory_percent)} / {_pct(m.disk_percent)}"),
            ("load (1/5/15 min)", "-" if m is None or m.load_1m is None else
             f"{m.load_1m} {m.load_5m} {m.load_15m}"),
            ("checked", f"{s.timestamp:%Y-%m-%d %H:%M:%S} UTC in {s.check_duration_seconds:.2f}s"),
        ]
    )


@click.command()
@click.argument("vm")
@click.option("-n", "--lines", "limit", type=click.IntRange(1, 100000), default=20,
              show_default=True, help="How many of the newest checks.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--plot", is_flag=True,
              help="Chart check duration, failures, CPU, memory and disk (on a terminal; "
                   "else a plain table with a duration bar).")
@pass_app
def history(app: AppContext, vm: str, limit: int, as_json: bool, plot: bool) -> None:
    """Show the recorded health checks of VM (newest last)."""
    from ..state import StateStore

    if plot and as_json:
        raise click.UsageError("--plot and --json cannot be used together")
    cfg = app.manager().load()
    store = StateStore(history_size=cfg.daemon.history_size)
    try:
        records = store.history(vm, limit)
    finally:
        store.close()
    if as_json:
        echo_json([r.to_record() for r in records])
        return
    if not records:
        click.echo(f"No checks recorded for {vm} yet.")
        return
    if plot:
        _plot(vm, records)
        return
    echo_table(
        ["TIME (UTC)", "HEALTH", "STATE", "FAILURES", "CPU", "MEM", "DISK", "REASON"],
        [
            [
                f"{r.timestamp:%Y-%m-%d %H:%M:%S}",
                "healthy" if r.healthy else "unhealthy",
                r.state.value,
                r.ssh_failures,
                _pct(r.metrics.cpu_percent) if r.metrics else "-",
                _pct(r.metrics.memory_percent) if r.metrics else "-",
                _pct(r.metrics.disk_percent) if r.metrics else "-",
                r.reason or "",
            ]
            for r in records
        ],
    )
    click.echo(f"({len(records)} checks; newest {ago(records[-1].timestamp)})")


def _plot(vm: str, records: list[HealthStatus]) -> None:
    import shutil
    import sys

    from .plot import chart, plain

    if not sys.stdout.isatty():
        lines = plain(vm, records)
    else:
        encoding = (getattr(sys.stdout, "encoding", None) or "ascii").lower()
        lines = chart(vm, records, shutil.get_terminal_size().columns,
                      unicode=encoding.replace("-", "") == "utf8", color=True)
    click.echo("\n".join(lines))


COMMANDS = [check, history]
