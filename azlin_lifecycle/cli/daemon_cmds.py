"""daemon start|stop|restart|reload|status|logs|run, install, uninstall."""

from __future__ import annotations

import datetime as dt

import click

from .context import AppContext, pass_app
from .output import echo_fields, echo_json
from .shell_cmd import RC_FILES, load_line, user_shell


@click.group()
def daemon() -> None:
    """Control the monitoring daemon (the azlin-lifecycle systemd user service)."""


@daemon.command()
@pass_app
def start(app: AppContext) -> None:
    """Start the service; returns once the daemon is ready."""
    from ..controller import DaemonController

    DaemonController(app.config_path).start_daemon()
    click.echo("azlin-lifecycle started")


@daemon.command()
@click.option("--timeout", type=float, default=10, show_default=True,
              help="Seconds to wait for it to stop.")
@pass_app
def stop(app: AppContext, timeout: float) -> None:
    """Stop the service."""
    from ..controller import DaemonController

    DaemonController(app.config_path).stop_daemon(timeout=timeout)
    click.echo("azlin-lifecycle stopped")


@daemon.command()
@pass_app
def restart(app: AppContext) -> None:
    """Restart the service; returns once the daemon is ready again."""
    from ..controller import DaemonController

    DaemonController(app.config_path).restart_daemon()
    click.echo("azlin-lifecycle restarted")


@daemon.command()
@pass_app
def reload(app: AppContext) -> None:
    """Make the daemon reread its configuration (SIGHUP)."""
    from ..controller import DaemonController

    DaemonController(app.config_path).reload_daemon()
    click.echo("azlin-lifecycle reloaded its configuration")


@daemon.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def status(app: AppContext, as_json: bool) -> None:
    """Show whether the daemon runs, since when, and its status line."""
    from ..controller import DaemonController

    st = DaemonController(app.config_path).daemon_status()
    if as_json:
        echo_json(st)
        return
    state = f"{st.active_state} ({st.sub_state})"
    if not st.installed:
        state += " - not installed; run: azlin lifecycle install"
    echo_fields([
        ("service", state),
        ("pid", st.pid),
        ("since", f"{st.since:%Y-%m-%d %H:%M:%S %Z} ({_duration(st.uptime)})"
         if st.since and st.uptime is not None else None),
        ("status", st.status_text or None),
        ("restarts", st.n_restarts),
        ("last result", st.result),
        ("monitored VMs", ", ".join(st.monitored_vms) if st.monitored_vms
         else st.config_error or "none"),
    ])


def _duration(uptime: dt.timedelta) -> str:
    total = int(uptime.total_seconds())
    days, rest = divmod(total, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return f"up {days}d {hours}h"
    if hours:
        return f"up {hours}h {minutes}m"
    if minutes:
        return f"up {minutes}m {secs}s"
    return f"up {secs}s"


@daemon.command()
@click.option("-n", "--lines", type=click.IntRange(min=0), default=50, show_default=True,
              help="How many of the last entries to show.")
@click.option("-f", "--follow", is_flag=True, help="Keep printing new entries (Ctrl-C stops).")
@click.option("--vm", help="Only entries about this VM.")
@pass_app
def logs(app: AppContext, lines: int, follow: bool, vm: str | None) -> None:
    """Show the daemon's journal (journalctl --user -u azlin-lifecycle)."""
    from ..controller import DaemonController

    try:
        DaemonController(app.config_path).show_logs(lines=lines, follow=follow, vm=vm,
                                                    write=click.echo)
    except KeyboardInterrupt:
        return


@daemon.command()
@pass_app
def run(app: AppContext) -> None:
    """Run the daemon in this process (what the service runs; Ctrl-C stops it)."""
    from ..daemon import LifecycleDaemon

    LifecycleDaemon(app.config_path).start()
    exit_abandoning_workers()


def exit_abandoning_workers(code: int = 0) -> None:
    """End the process now, after the daemon stopped, without joining worker threads.

    A check blocked on the network would otherwise hold the interpreter's exit for its
    full timeout, past the unit's stop timeout. Nothing is lost: every state change is
    a committed SQLite transaction, and a repair's intent was recorded before it began.
    """
    import logging
    import os
    import sys

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


@click.command()
@click.option("--linger", is_flag=True,
              help="Keep the service running without a login session (logind lingering).")
@click.option("--now", is_flag=True, help="Also start it now.")
def install(linger: bool, now: bool) -> None:
    """Install, and enable, the systemd user service for this installation."""
    from ..install import install as do_install

    result = do_install(linger=linger, now=now)
    click.echo(f"Installed {result.unit_path}")
    click.echo(f"  ExecStart={result.exec_start}")
    if result.warning:
        click.echo(result.warning, err=True)
    click.echo("Enabled: it starts with your user manager"
               + (" (lingering on: also without a login session)" if linger else ""))
    click.echo("Started." if now else "Start it now with: azlin lifecycle daemon start")
    shell = user_shell()
    click.echo(f"'azlin lifecycle' beside azlin's own azlin: add {load_line(shell)} to "
               f"{RC_FILES[shell]}")


@click.command()
@click.option("--linger", is_flag=True, help="Also turn lingering off.")
def uninstall(linger: bool) -> None:
    """Stop and disable the service and remove its unit file."""
    from ..install import uninstall as do_uninstall

    removed = do_uninstall(linger=linger)
    click.echo(f"Removed {removed}" if removed else "The service was not installed")


COMMANDS = [daemon, install, uninstall]
