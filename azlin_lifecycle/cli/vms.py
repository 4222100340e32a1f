"""enable, disable, list, show: which VMs are monitored and how."""

from __future__ import annotations

from typing import Any

import click

from ..config import (
    VALID_HOOK_TYPES,
    VALID_RESTART_POLICIES,
    LifecycleConfig,
    MonitoringConfig,
    check_vm_name,
    vm_from_dict,
    vm_to_dict,
)
from ..errors import LifecycleConfigError
from ..manager import MonitoringStatus
from .context import AppContext, pass_app
from .output import echo_fields, echo_json, echo_table, shown_target

OPTION_FIELDS = {
    "interval": "check_interval_seconds",
    "policy": "restart_policy",
    "threshold": "ssh_failure_threshold",
    "subscription": "subscription_id",
    "ssh_host": "ssh_host",
    "ssh_port": "ssh_port",
    "ssh_user": "ssh_user",
    "ssh_key": "ssh_key",
    "dry_run": "dry_run",
    "bastion": "bastion",
}

DEFAULT = MonitoringConfig()  # the help's defaults come from the config's own table

RESOLVED = "(resolved from Azure)"


def parse_hook_option(values: tuple[str, ...]) -> dict[str, str]:
    hooks: dict[str, str] = {}
    for item in values:
        kind, sep, target = item.partition("=")
        if not sep or not target:
            raise click.BadParameter(
                f"{item!r}: expected TYPE=TARGET, e.g. on_failure=/usr/local/bin/alert",
                param_hint="--hook",
            )
        hooks[kind] = target
    return hooks


@click.command()
@click.argument("vm", required=False)
@click.option("--all", "every", is_flag=True,
              help="Every VM of the resource groups (--resource-group, repeatable; default "
              "azlin's), now and later, with these settings: writes [discovery].")
@click.option("--tag", "tags", multiple=True, metavar="KEY[=VALUE]",
              help="With --all: only VMs carrying this tag (repeatable; all must match).")
@click.option("--interval", type=int, help="Seconds between checks (at least 10; "
              f"default {DEFAULT.check_interval_seconds}).")
@click.option("--policy", type=click.Choice(VALID_RESTART_POLICIES),
              help=f"Restart policy (default {DEFAULT.restart_policy.value}).")
@click.option("--threshold", type=int,
              help="Consecutive SSH failures before on-failure restarts "
                   f"(default {DEFAULT.ssh_failure_threshold}).")
@click.option("--resource-group", "resource_groups", multiple=True,
              help="Azure resource group (default: [azure], else azlin's context, else its "
              "default_resource_group); with --all, repeatable.")
@click.option("--subscription", help="Azure subscription ID (default: [azure], else azlin's "
              "context, else the Azure CLI's default).")
@click.option("--ssh-host", help="Host or IP to check over SSH (default: resolved from Azure: "
              "the public IP, else the private IP or the VM's Azure Bastion).")
@click.option("--ssh-port", type=int, help=f"SSH port (default {DEFAULT.ssh_port}).")
@click.option("--ssh-user", help="SSH user (default: the VM's admin user from Azure).")
@click.option("--ssh-key", help="SSH private key (default: the first of ~/.ssh/azlin_key, "
              "id_ed25519_azlin, id_ed25519, id_rsa).")
@click.option("--bastion", metavar="NAME|ID",
              help="The Azure Bastion to reach a private VM through: a name in the VM's "
              "resource group, or a resource ID (default: [azure] bastion, else the resource "
              "group's Bastion in the VM's region, as azlin finds it).")
@click.option("--dry-run/--no-dry-run", default=None, help="Observe only: log 'would restart'.")
@click.option("--hook", "hooks", multiple=True, metavar="TYPE=TARGET",
              help=f"Set a hook ({', '.join(VALID_HOOK_TYPES)}); repeatable.")
@pass_app
def enable(app: AppContext, /, vm: str | None, every: bool, tags: tuple[str, ...],
           resource_groups: tuple[str, ...], hooks: tuple[str, ...], **options: Any) -> None:
    """Monitor VM (or, with --all, every VM of the resource groups). Settings not given keep
    their current (or default) values."""
    changes = {OPTION_FIELDS[k]: v for k, v in options.items() if v is not None}
    new_hooks = parse_hook_option(hooks)
    if every:
        _enable_all(app, vm, tags, resource_groups, new_hooks, changes)
        return
    if vm is None or tags or len(resource_groups) > 1:
        raise click.UsageError("Missing argument 'VM' (one VM with at most one "
                               "--resource-group; or --all, with any --resource-group and "
                               "--tag, for every VM of the resource groups)")
    if resource_groups:
        changes["resource_group"] = resource_groups[0]
    manager = app.manager()

    def change(cfg: Any) -> Any:
        current = vm_to_dict(cfg.vms.get(vm) or MonitoringConfig())
        merged = {**current, **changes, "enabled": True}
        merged["hooks"] = {**current.get("hooks", {}), **new_hooks}
        return cfg.with_vm(vm, vm_from_dict(check_vm_name(vm), merged, "command line"))

    new = manager.update(change)
    settings = new.vms[vm]
    click.echo(
        f"Monitoring {vm}: every {settings.check_interval_seconds}s, "
        f"restart policy {settings.restart_policy.value}, "
        f"threshold {settings.ssh_failure_threshold}"
        + (", dry run" if settings.dry_run else "")
    )


def _enable_all(app: AppContext, vm: str | None, tags: tuple[str, ...],
                resource_groups: tuple[str, ...], hooks: dict[str, str],
                changes: dict[str, Any]) -> None:
    from .discover import enable_all

    if vm is not None or "ssh_host" in changes:
        raise click.UsageError("--all is every VM of the resource groups: give no VM name "
                               "and no --ssh-host")
    own = {"resource_groups": list(resource_groups) or None, "tags": list(tags) or None}
    enable_all(app, {**changes, **own, "hooks": hooks})


@click.command()
@click.argument("vm", required=False)
@click.option("--all", "every", is_flag=True, help="Turn [discovery] off (its settings kept).")
@pass_app
def disable(app: AppContext, vm: str | None, every: bool) -> None:
    """Stop monitoring VM (its settings are kept). A VM that [discovery] found gets a
    [vms.VM] table with enabled = false, which leaves it out."""
    if every == (vm is not None):
        raise click.UsageError("give one VM, or --all to turn [discovery] off")
    if vm is None:
        from .discover import disable_all

        disable_all(app)
        return
    manager = app.manager()
    config = manager.load()
    if vm not in config.vms and config.discovery is not None:
        manager.update(lambda cfg: cfg.with_vm(vm, MonitoringConfig(enabled=False)))
        click.echo(f"{vm} left out of [discovery] ([vms.{vm}] enabled = false; "
                   f"'enable {vm}' monitors it with its own settings)")
        return
    manager.disable_monitoring(vm)
    click.echo(f"Monitoring of {vm} disabled (settings kept; 'enable {vm}' resumes it)")


@click.command(name="list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.option("--all", "show_all", is_flag=True, help="Include VMs whose monitoring is disabled.")
@pass_app
def list_vms(app: AppContext, as_json: bool, show_all: bool) -> None:
    """List monitored VMs: those of [vms.X] tables, and those [discovery] found (as the
    daemon last listed them; SOURCE says which)."""
    from .discover import read_discovered

    found = read_discovered(app.manager().load())
    statuses = [MonitoringStatus(name, vm.enabled, vm) for name, vm
                in sorted(found.config.vms.items()) if show_all or vm.enabled]
    if as_json:
        echo_json([{"vm_name": s.vm_name, "source": found.sources.get(s.vm_name, "config"),
                    **_vm_json(s.config)} for s in statuses])
        return
    line = found.line()
    if not statuses:
        click.echo(line or "No VMs are monitored. Add one with: azlin lifecycle enable VM "
                   "(or every VM of a resource group: enable --all)")
        return
    echo_table(
        ["VM", "SOURCE", "ENABLED", "INTERVAL", "POLICY", "THRESHOLD", "DRY-RUN", "HOOKS"],
        [
            [
                s.vm_name,
                found.sources.get(s.vm_name, "config"),
                "yes" if s.enabled else "no",
                f"{s.config.check_interval_seconds}s",
                s.config.restart_policy.value,
                s.config.ssh_failure_threshold,
                "yes" if s.config.dry_run else "no",
                ",".join(sorted(s.config.hooks)) or "-",
            ]
            for s in statuses
        ],
    )
    if line:
        click.echo(line)


def _vm_json(vm: MonitoringConfig) -> dict[str, Any]:
    from .output import to_jsonable

    data: dict[str, Any] = to_jsonable(vm)
    # Like the text: a webhook's or notification URL's secret is in the file only.
    data["hooks"] = {kind: shown_target(target) for kind, target in vm.hooks.items()}
    return data


@click.command()
@click.argument("vm")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@pass_app
def show(app: AppContext, vm: str, as_json: bool) -> None:
    """Show the monitoring settings of VM."""
    manager = app.manager()
    status = manager.get_monitoring_status(vm)
    cfg = status.config
    if as_json:
        echo_json({"vm_name": vm, **_vm_json(cfg)})
        return
    group, subscription = _in_force(manager.load(), vm)
    echo_fields(
        [
            ("vm", vm),
            ("enabled", "yes" if cfg.enabled else "no"),
            ("check_interval_seconds", cfg.check_interval_seconds),
            ("restart_policy", cfg.restart_policy.value),
            ("ssh_failure_threshold", cfg.ssh_failure_threshold),
            ("dry_run", "yes" if cfg.dry_run else "no"),
            ("resource_group", cfg.resource_group or group),
            ("subscription_id", cfg.subscription_id or subscription),
            ("ssh_host", cfg.ssh_host or RESOLVED),
            ("ssh_port", cfg.ssh_port),
            ("ssh_user", cfg.ssh_user or RESOLVED),
            ("ssh_key", cfg.ssh_key or "(azlin's search order: ~/.ssh/azlin_key, ...)"),
            ("bastion", cfg.bastion or "(the [azure] one, else the resource group's in the "
                                       "VM's region)"),
        ]
        + [(f"hook {k}", shown_target(v)) for k, v in sorted(cfg.hooks.items())]
    )


def _in_force(config: LifecycleConfig, vm: str) -> tuple[str, str]:
    """The resource group and subscription a VM that sets neither is checked in, and where
    each comes from ([azure], azlin's context, the Azure CLI's default), or why none is."""
    from ..targets import resolve_target  # reads azlin's files: only for show

    try:
        target = resolve_target(config, vm)
    except LifecycleConfigError as exc:
        return (f"(none: {exc})",) * 2
    return (f"{target.resource_group} (from {target.resource_group_from})",
            f"{target.subscription_id} (from {target.subscription_from})")


def check_vm_configured(app: AppContext, vm: str) -> MonitoringConfig:
    cfg = app.manager().load().vms.get(vm)
    if cfg is None:
        raise LifecycleConfigError(
            f"VM {vm!r} is not configured; add it with: azlin lifecycle enable {vm}"
        )
    return cfg


COMMANDS = [enable, disable, list_vms, show]
