"""postmortem: what boot diagnostics caught of a VM just before its repairs."""

from __future__ import annotations

from typing import Any

import click

from .output import echo_json, echo_table


@click.command()
@click.argument("vm")
@click.option("--list", "as_list", is_flag=True, help="Every kept capture, newest first.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("-n", "--lines", type=click.IntRange(1), default=40, show_default=True,
              help="How many of the serial log's last lines to show.")
def postmortem(vm: str, as_list: bool, as_json: bool, lines: int) -> None:
    """Show the newest post-mortem of VM (the serial log's last lines, taken before its
    last restart or redeploy), or every kept one with --list."""
    from .. import paths
    from .. import postmortem as pm

    kept = pm.listing(pm.root(paths.state_dir()), vm)
    tail = _last_lines(kept[0].serial_log, lines) if kept and not as_list else None
    if as_json:
        data: dict[str, Any] = {"vm": vm, "postmortems": [p.to_json() for p in kept]}
        if tail is not None:
            data["serial_log_tail"] = tail
        echo_json(data)
        return
    if not kept:
        click.echo(f"No post-mortems of {vm}: one is taken before each restart or redeploy "
                   "while [healing] capture_serial_log is on (the default).")
        return
    if as_list:
        echo_table(["TIME", "BEFORE", "SERIAL LOG", "SCREENSHOT", "WHAT WAS CAUGHT"],
                   [[p.info.get("time") or p.directory.name, p.info.get("action") or "-",
                     "yes" if p.serial_log else "-", "yes" if p.screenshot else "-",
                     p.info.get("note") or "-"] for p in kept])
        return
    newest = kept[0]
    info = newest.info
    click.echo(f"{vm}: post-mortem of {info.get('time') or newest.directory.name}, before the "
               f"{info.get('action') or 'repair'} ({len(kept)} kept)")
    if info.get("reason"):
        click.echo(f"why: {info['reason']}")
    click.echo(f"caught: {info.get('note') or '-'}")
    click.echo(f"directory: {newest.directory}")
    if newest.screenshot:
        click.echo(f"screenshot: {newest.screenshot}")
    if tail is not None:
        click.echo(f"--- serial log {newest.serial_log}, last {lines} lines ---")
        click.echo(tail, nl=not tail.endswith("\n"))


def _last_lines(path: Any, count: int) -> str | None:
    if path is None:
        return None
    try:
        text = path.read_bytes().replace(b"\0", b"").decode("utf-8", "replace")
    except OSError:
        return None
    return "".join(text.splitlines(keepends=True)[-count:])


COMMANDS = [postmortem]
