"""config validate / config path."""

from __future__ import annotations

from pathlib import Path

import click

from ..config import load_file
from ..errors import LifecycleConfigError
from .context import AppContext, pass_app


@click.group(name="config")
def config_group() -> None:
    """Inspect the configuration file."""


@config_group.command()
@pass_app
def path(app: AppContext) -> None:
    """Print the path of the configuration file."""
    click.echo(str(app.manager().config_path))


@config_group.command()
@click.argument("file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@pass_app
def validate(app: AppContext, file: Path | None) -> None:
    """Check FILE (default: the configuration file) without changing it."""
    target = file or app.manager().config_path
    if not target.exists():
        raise LifecycleConfigError(f"{target}: no such file")
    config = load_file(target)
    enabled = len(config.enabled_vms())
    click.echo(f"{target}: valid ({len(config.vms)} VMs, {enabled} enabled)")


COMMANDS = [config_group]
