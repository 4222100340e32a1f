"""demo: the whole lifecycle on a simulated fleet, in about a minute."""

from __future__ import annotations

import click


@click.command()
@click.option("--keep", is_flag=True, help="Keep the demo's files (config, state, logs).")
@click.option("--systemd/--foreground", "use_systemd", default=None,
              help="Run the daemon under the systemd user manager, or in the foreground "
                   "(default: systemd when reachable).")
@click.option("--ha", is_flag=True,
              help="Two monitors sharing a lease in Azurite; the leader is killed "
                   "mid-restart and the standby takes over (needs Azurite: make setup).")
def demo(keep: bool, use_systemd: bool | None, ha: bool) -> None:
    """Hang one of 3 simulated VMs and watch it be detected, restarted and healthy again."""
    if ha:
        from ..simulator.ha_demo import run_ha_demo

        raise SystemExit(run_ha_demo(keep=keep))
    from ..simulator.demo import run_demo

    raise SystemExit(run_demo(keep=keep, use_systemd=use_systemd))


COMMANDS = [demo]
