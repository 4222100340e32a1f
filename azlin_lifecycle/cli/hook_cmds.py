"""hook set / clear / test: attach scripts, webhooks or notification URLs to lifecycle
events, and try them."""

from __future__ import annotations

import dataclasses
import logging

import click

from ..config import VALID_HOOK_TYPES
from ..errors import HookExecutionError
from .context import AppContext, pass_app
from .output import echo_fields, echo_json, shown_target

HOOK_TYPE = click.Choice(VALID_HOOK_TYPES)
SHOW_CHARS = 2000

# What `hook test` passes: the keys the daemon sets for the various events.
SAMPLE_CONTEXT: dict[str, object] = {
    "failure_count": 3,
    "reason": "test from azlin lifecycle hook test",
    "state": "running",
    "previous_state": "running",
    "restart_result": "success",
    "action": "restart",
    "hook_test": 1,
}


@click.group(name="hook")
def hook_group() -> None:
    """Set, clear and test lifecycle hooks."""


@hook_group.command(name="set")
@click.argument("vm")
@click.argument("hook_type", metavar="TYPE", type=HOOK_TYPE)
@click.argument("target")
@click.option("--no-check", is_flag=True,
              help="Save a script path without checking the script (exists, executable, safe).")
@pass_app
def set_hook(app: AppContext, vm: str, hook_type: str, target: str, no_check: bool) -> None:
    """Run TARGET on TYPE events of VM: an executable's absolute path, an https:// URL (a JSON
    webhook), or a notification URL (slack://, ntfys://, mailtos:// … — apprise's)."""
    from ..hook_targets import kind_of

    if not no_check and kind_of(target) == "script":
        from ..hooks import validate_hook_script

        validate_hook_script(target)
    app.manager().set_hook(vm, hook_type, target)
    click.echo(f"{vm}: {hook_type} -> {shown_target(target)}")


@hook_group.command(name="clear")
@click.argument("vm")
@click.argument("hook_type", metavar="TYPE", type=HOOK_TYPE)
@pass_app
def clear_hook(app: AppContext, vm: str, hook_type: str) -> None:
    """Remove the TYPE hook of VM."""
    app.manager().clear_hook(vm, hook_type)
    click.echo(f"{vm}: {hook_type} hook cleared")


@hook_group.command(name="test")
@click.argument("vm")
@click.argument("hook_type", metavar="TYPE", type=HOOK_TYPE)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
@pass_app
def test_hook(app: AppContext, vm: str, hook_type: str, as_json: bool) -> None:
    """Run VM's TYPE hook once with sample values (FAILURE_COUNT=3, HOOK_TEST=1, ...)."""
    from ..hooks import HookExecutor

    manager = app.manager()
    config = manager.load()
    hooks = manager.get_monitoring_status(vm).config.hooks
    if hook_type not in hooks:
        raise HookExecutionError(
            f"VM {vm!r} has no {hook_type} hook; set one with: "
            f"azlin lifecycle hook set {vm} {hook_type} PATH_OR_URL"
        )
    executor = HookExecutor(lambda _name: hooks, config.hooks)
    # The result is printed below; the executor's own log line would only repeat it.
    hook_log = logging.getLogger("azlin_lifecycle.hooks")
    level = hook_log.level
    if not app.debug:
        hook_log.setLevel(logging.ERROR)
    try:
        result = executor.execute_hook(hook_type, vm, SAMPLE_CONTEXT)
    finally:
        hook_log.setLevel(level)
    if as_json:
        echo_json(dataclasses.replace(result, target=shown_target(result.target or "")))
    else:
        code: object = result.exit_code
        if result.kind in ("webhook", "notify"):
            code = (f"HTTP {result.http_status}" if result.http_status
                    else "sent" if result.success else None)
        echo_fields([
            ("hook", f"{vm} {hook_type} -> {shown_target(result.target or '')}"),
            ("success", "yes" if result.success else "no"),
            ("status" if result.kind in ("webhook", "notify") else "exit code", code),
            ("duration", f"{result.duration_seconds:.2f}s"),
            ("timed out", "yes" if result.timed_out else "no"),
        ])
        for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
            if text:
                click.echo(f"--- {name}" + (" (truncated by the output cap)"
                                            if result.truncated else ""))
                click.echo(_shorten(text))
    if not result.success:
        raise HookExecutionError(f"{vm} {hook_type} hook failed: {result.error}")


def _shorten(text: str) -> str:
    text = text.rstrip("\n")
    if len(text) <= SHOW_CHARS:
        return text
    return f"{text[:SHOW_CHARS]}\n... ({len(text) - SHOW_CHARS} more characters not shown)"


COMMANDS = [hook_group]
