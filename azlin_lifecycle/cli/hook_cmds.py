"""hook set / clear: attach scripts or webhooks to lifecycle events."""

from __future__ import annotations

import click

from ..config import VALID_HOOK_TYPES
from .context import AppContext, pass_app

HOOK_TYPE = click.Choice(VALID_HOOK_TYPES)


@click.group(name="hook")
def hook_group() -> None:
    """Set, clear and test lifecycle hooks."""


@hook_group.command(name="set")
@click.argument("vm")
@click.argument("hook_type", metavar="TYPE", type=HOOK_TYPE)
@click.argument("target")
@pass_app
def set_hook(app: AppContext, vm: str, hook_type: str, target: str) -> None:
    """Run TARGET (an executable's absolute path, or an https:// URL) on TYPE events of VM."""
    app.manager().set_hook(vm, hook_type, target)
    click.echo(f"{vm}: {hook_type} -> {target}")


@hook_group.command(name="clear")
@click.argument("vm")
@click.argument("hook_type", metavar="TYPE", type=HOOK_TYPE)
@pass_app
def clear_hook(app: AppContext, vm: str, hook_type: str) -> None:
    """Remove the TYPE hook of VM."""
    app.manager().clear_hook(vm, hook_type)
    click.echo(f"{vm}: {hook_type} hook cleared")


COMMANDS = [hook_group]
