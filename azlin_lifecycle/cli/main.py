"""The root command group and the one place where errors become exit codes."""

from __future__ import annotations

import logging
import os
import sys
import traceback
from collections.abc import Sequence
from pathlib import Path

import click

from ..errors import LifecycleError
from . import (
    config_cmds,
    daemon_cmds,
    demo_cmd,
    health_cmds,
    hook_cmds,
    postmortem_cmd,
    shell_cmd,
    simulate_cmds,
    status_cmd,
    vms,
)
from .context import AppContext

PROG = "azlin-lifecycle"


def _show_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    """``--version``: the package's ``__version__`` (an uninstalled tree says 0+unknown)."""
    if value and not ctx.resilient_parsing:
        from .. import __version__

        click.echo(f"{PROG}, version {__version__}")
        ctx.exit()


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--config", "config_path", type=click.Path(dir_okay=False, path_type=Path),
              envvar="AZLIN_LIFECYCLE_CONFIG",
              help="Configuration file (default: ~/.azlin/lifecycle-config.toml).")
@click.option("--debug", is_flag=True, help="Show tracebacks and debug logging.")
@click.option("--version", is_flag=True, expose_value=False, is_eager=True,
              callback=_show_version,
              help="Show the version and exit.")
@click.pass_context
def cli(ctx: click.Context, config_path: Path | None, debug: bool) -> None:
    """Health monitoring, self-healing and lifecycle hooks for Azure Linux VMs."""
    ctx.obj = AppContext(config_path=config_path, debug=debug)
    logging.basicConfig(
        level=logging.DEBUG if debug else logging.WARNING,
        format="%(levelname)s: %(message)s",
        stream=sys.stderr,
    )


for module in (vms, health_cmds, status_cmd, postmortem_cmd, hook_cmds, config_cmds, daemon_cmds,
               simulate_cmds, demo_cmd, shell_cmd):
    for command in module.COMMANDS:
        cli.add_command(command)


def main(argv: Sequence[str] | None = None, prog_name: str | None = None) -> None:
    """Run the CLI; exit 0 on success, 1 on an error, 2 on a usage error."""
    args = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in args or os.environ.get("AZLIN_LIFECYCLE_DEBUG") == "1"
    name = prog_name or os.environ.get("AZLIN_LIFECYCLE_PROG") or PROG
    try:
        cli.main(args=args, prog_name=name, standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except LifecycleError as exc:
        if debug:
            traceback.print_exc()
        click.echo(f"{name}: error: {exc}", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        sys.exit(130)
    except Exception as exc:
        if debug:
            traceback.print_exc()
        click.echo(
            f"{name}: unexpected error: {type(exc).__name__}: {exc} (rerun with --debug "
            "for the traceback)",
            err=True,
        )
        sys.exit(1)
    sys.exit(0)


if __name__ == "__main__":
    main()
