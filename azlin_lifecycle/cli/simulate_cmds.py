"""simulate: run the stand-in Azure with simulated VMs, and drive a running one.

``simulate run`` serves until Ctrl-C/SIGTERM; the other commands talk to it through the
directory it was started with (``--dir``), so they work from another terminal.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .output import echo_json, echo_table

if TYPE_CHECKING:
    from ..simulator import SimulatorClient

DIR_OPTION = click.option(
    "--dir", "directory", type=click.Path(file_okay=False, path_type=Path), required=True,
    help="The simulator's work directory (holds simulator.json, the CA, the az stand-in).")
SSH_MODES = ("up", "refused", "hung", "auth_fail", "host_key_changed", "slow")
POWER = ("starting", "running", "stopping", "stopped", "deallocating", "deallocated")
ACTIONS = ("restart", "start", "powerOff", "deallocate", "redeploy")
BASTION_MODES = ("up", "tunneling_disabled", "basic", "developer", "missing", "elsewhere",
                 "exchange_401", "exchange_403", "exchange_500", "drop", "refuse", "down",
                 "hang")  # simulator.bastion.BastionMode (not imported: the CLI starts fast)


def _client(directory: Path) -> SimulatorClient:
    from ..simulator import SimulatorClient

    return SimulatorClient.from_dir(directory)


@click.group(name="simulate")
def simulate_group() -> None:
    """A stand-in Azure with simulated VMs (ARM over HTTPS, real SSH), to rehearse
    policies and hooks safely on this machine."""


@simulate_group.command()
@DIR_OPTION
@click.option("--vms", type=click.IntRange(1, 5000), default=3, show_default=True,
              help="How many VMs (vm-001, vm-002, ...).")
@click.option("--boot-seconds", type=click.FloatRange(0), default=5.0, show_default=True,
              help="Seconds from restart/start until SSH answers again.")
@click.option("--operation-seconds", type=click.FloatRange(0), default=1.0, show_default=True,
              help="Seconds a restart/start/powerOff/... operation stays InProgress.")
@click.option("--resource-group", default="rg-sim", show_default=True)
@click.option("--retry-after", type=click.IntRange(0), default=None,
              help="Retry-After seconds on 202s and InProgress polls (default: none, as "
              "real ARM may send none).")
@click.option("--private/--public", default=True, show_default=True,
              help="VMs without a public IP (their private IP does not answer from here), "
              "reached through the stand-in Bastion, as azlin makes them; --public gives "
              "each VM a public IP.")
@click.option("--bastion/--no-bastion", default=None,
              help="Run a stand-in Azure Bastion in the resource group (default: with "
              "--private).")
@click.option("--recorded-pace", is_flag=True,
              help="Retry-After per action as real ARM was recorded (start: 10 s on the 202, "
              "9 s on each poll; deallocate: 10 and 36 s; restart, powerOff, redeploy: none).")
def run(directory: Path, vms: int, boot_seconds: float, operation_seconds: float,
        resource_group: str, retry_after: int | None, private: bool,
        bastion: bool | None, recorded_pace: bool) -> None:
    """Run the simulator until Ctrl-C or SIGTERM; writes DIR/simulator.json."""
    from ..simulator import SimulatedFleet
    from ..simulator.runner import serve_forever

    fleet = SimulatedFleet(directory, vms, resource_group=resource_group,
                           boot_seconds=boot_seconds, operation_seconds=operation_seconds,
                           retry_after=retry_after, private=private, bastion=bastion,
                           recorded_pace=recorded_pace)

    def ready(fleet: SimulatedFleet, seconds: float) -> None:
        click.echo(f"Simulating {len(fleet.vm_names)} VMs in resource group "
                   f"{fleet.resource_group} (ready in {seconds:.2f}s)")
        click.echo(f"ARM endpoint: {fleet.arm_endpoint}  CA: {fleet.ca_path}")
        click.echo(f"Stand-in az:  {fleet.az_dir}/az  SSH key: {fleet.client_key}")
        click.echo(f"Write a config: azlin lifecycle simulate config PATH --dir {directory}")
        click.echo("Stop with Ctrl-C.")
        sys.stdout.flush()

    serve_forever(fleet, ready)


@simulate_group.command()
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def status(directory: Path, as_json: bool) -> None:
    """Show every simulated VM: power, provisioning, SSH mode and port."""
    data = _client(directory).status()
    if as_json:
        echo_json(data)
        return
    echo_table(["VM", "POWER", "PROVISIONING", "SSH", "MODE", "PORT", "OPERATION"],
               [[vm["name"], vm["power"], vm["provisioning"], vm["ssh"], vm["ssh_mode"],
                 vm["ssh_port"], vm["operation"] or "-"] for vm in data["vms"]])
    fault = data["arm_fault"]
    click.echo(f"ARM {data['arm_endpoint']}: {data['arm_requests']} requests, "
               f"latency {data['arm_latency']}s, "
               + (f"fault {fault['status']} x{fault['remaining']}" if fault["remaining"]
                  else "no fault pending"))
    bastion = data.get("bastion")
    if bastion:
        click.echo(f"Bastion {bastion['name']} ({bastion['sku']}, {bastion['location']}) "
                   f"at {bastion['dns_name']}: {bastion['mode']}, {bastion['open_tunnels']} "
                   f"tunnels open, {bastion['exchanges']} token exchanges")


@simulate_group.command()
@DIR_OPTION
@click.argument("vm")
@click.argument("mode", type=click.Choice(SSH_MODES))
@click.option("--slow-seconds", type=click.FloatRange(0), default=5.0, show_default=True,
              help="Reply delay in the slow mode.")
def ssh(directory: Path, vm: str, mode: str, slow_seconds: float) -> None:
    """Set how VM's SSH endpoint behaves while the VM runs."""
    _client(directory).set_ssh_mode(vm, mode, slow_seconds)
    click.echo(f"{vm}: SSH {mode}")


@simulate_group.command()
@DIR_OPTION
@click.argument("vm")
@click.argument("state", type=click.Choice(POWER))
def power(directory: Path, vm: str, state: str) -> None:
    """Set VM's power state directly (cancels an operation in progress)."""
    _client(directory).set_power_state(vm, state)
    click.echo(f"{vm}: power state {state}")


@simulate_group.command()
@DIR_OPTION
@click.argument("vm")
@click.argument("state", type=click.Choice(("available", "unavailable", "degraded", "unknown",
                                           "auto")))
@click.option("--annotation", help="e.g. VirtualMachineHostCrashed, "
              "VirtualMachinePossiblyDegradedDueToHardwareFailure (its context and category "
              "follow).")
@click.option("--context", help='"Platform Initiated", "Customer Initiated", ...')
@click.option("--category", help="Planned or Unplanned.")
@click.option("--reason-type", help="Unplanned, Planned, UserInitiated.")
@click.option("--eta-minutes", type=click.FloatRange(0), help="resolutionETA from now.")
def health(directory: Path, vm: str, state: str, annotation: str | None, context: str | None,
           category: str | None, reason_type: str | None, eta_minutes: float | None) -> None:
    """Set what Azure Resource Health answers for VM (auto: follow its power state)."""
    _client(directory).set_health(vm, state, annotation=annotation, context=context,
                                  category=category, reason_type=reason_type,
                                  eta_minutes=eta_minutes)
    click.echo(f"{vm}: Resource Health {state}" + (f" ({annotation})" if annotation else ""))


@simulate_group.command(name="boot-diagnostics")
@DIR_OPTION
@click.argument("vm")
@click.argument("mode", type=click.Choice(("on", "off", "hang")))
def boot_diagnostics(directory: Path, vm: str, mode: str) -> None:
    """Turn VM's boot diagnostics on or off, or make its blobs hang (never answer)."""
    _client(directory).set_boot_diagnostics(vm, mode)
    click.echo(f"{vm}: boot diagnostics {mode}")


@simulate_group.command()
@DIR_OPTION
@click.argument("vm")
@click.option("--starts-in", type=click.FloatRange(), default=0.0, show_default=True,
              help="Seconds from now to the maintenance window's start.")
@click.option("--lasts", type=click.FloatRange(1), default=3600.0, show_default=True,
              help="The window's length in seconds.")
@click.option("--clear", is_flag=True, help="No maintenance scheduled.")
def maintenance(directory: Path, vm: str, starts_in: float, lasts: float, clear: bool) -> None:
    """Schedule planned maintenance for VM (instanceView.maintenanceRedeployStatus)."""
    _client(directory).set_maintenance(vm, None if clear else starts_in, lasts)
    click.echo(f"{vm}: " + ("no maintenance scheduled" if clear else
                            f"maintenance window in {starts_in:g} s for {lasts:g} s"))


@simulate_group.command()
@DIR_OPTION
@click.argument("vm")
@click.argument("seconds", type=click.FloatRange(0))
def approval(directory: Path, vm: str, seconds: float) -> None:
    """Make VM's restarts and redeploys wait SECONDS after Azure accepts them (the guest's
    approval of its Scheduled Event; 0: none)."""
    _client(directory).set_approval(vm, seconds)
    click.echo(f"{vm}: restarts wait {seconds:g} s for approval")


@simulate_group.command(name="public-ip")
@DIR_OPTION
@click.argument("vm")
@click.argument("setting", type=click.Choice(("new", "none")))
def public_ip(directory: Path, vm: str, setting: str) -> None:
    """Give VM a new public IP, or none (private-only: reachable only through a tunnel)."""
    client = _client(directory)
    client.set_public_ip(vm, setting == "new")
    address = client.public_ip(vm)
    click.echo(f"{vm}: public IP {address}" if address else f"{vm}: private-only (no public IP)")


@simulate_group.command(name="bastion")
@DIR_OPTION
@click.argument("mode", type=click.Choice(BASTION_MODES), metavar="MODE")
def bastion_cmd(directory: Path, mode: str) -> None:
    """Set how the stand-in Azure Bastion behaves: up, or a fault. In ARM:
    tunneling_disabled, basic, developer (SKU), missing, elsewhere (another region). Its
    data plane: exchange_401/403/500 (the token exchange), drop (tunnels cut mid-session),
    refuse (WebSocket answered 503), down (connections refused), hang (TCP accepted, then
    silence)."""
    _client(directory).set_bastion_mode(mode)
    click.echo(f"Bastion: {mode}")


@simulate_group.command(name="arm-fault")
@DIR_OPTION
@click.option("--status", "status_code", type=click.IntRange(400, 599), default=429,
              show_default=True, help="HTTP status of the failing answers.")
@click.option("--count", type=click.IntRange(0), default=1, show_default=True,
              help="How many of the next ARM requests fail (0 clears).")
@click.option("--retry-after", type=click.FloatRange(0), default=None,
              help="Retry-After seconds to send with them.")
@click.option("--latency", type=click.FloatRange(0), default=None,
              help="Also delay every ARM answer by this many seconds.")
@click.option("--accept", is_flag=True,
              help="Let the failing requests take effect (an action starts) and fail only "
              "the answer.")
def arm_fault(directory: Path, status_code: int, count: int, retry_after: float | None,
              latency: float | None, accept: bool) -> None:
    """Make the next ARM requests fail (429 with Retry-After, 500, ...)."""
    client = _client(directory)
    client.set_arm_fault(status_code, count, retry_after, accept)
    if latency is not None:
        client.set_arm_latency(latency)
    click.echo(f"next {count} ARM requests answer {status_code}"
               + (f" (Retry-After {retry_after:g}s)" if retry_after is not None else "")
               + (" after taking effect" if accept else "")
               + (f"; latency {latency:g}s" if latency is not None else ""))


@simulate_group.command(name="fail-next")
@DIR_OPTION
@click.argument("vm")
@click.option("--action", type=click.Choice(ACTIONS), default="restart", show_default=True)
@click.option("--code", default="InternalExecutionError", show_default=True)
@click.option("--message", default="An internal execution error occurred. Please retry later.")
@click.option("--hang", is_flag=True, help="Never finish instead (until 'power' resets it).")
def fail_next(directory: Path, vm: str, action: str, code: str, message: str,
              hang: bool) -> None:
    """Make VM's next ACTION operation fail (or hang forever)."""
    client = _client(directory)
    if hang:
        client.hang_operations(vm, action)
        click.echo(f"{vm}: every {action} will stay InProgress")
    else:
        client.fail_next_operation(vm, action, code, message)
        click.echo(f"{vm}: the next {action} fails with {code}")


@simulate_group.command()
@DIR_OPTION
@click.argument("vm")
@click.option("--action", type=click.Choice(ACTIONS), default="start", show_default=True)
@click.option("--status", "status_code", type=click.IntRange(400, 599), default=409,
              show_default=True)
@click.option("--code", default="OperationNotAllowed", show_default=True)
@click.option("--message", required=True, help="error.message (may span lines).")
@click.option("--detail", "details", multiple=True, metavar="CODE:MESSAGE",
              help="An entry of error.details[] (repeatable).")
def refuse(directory: Path, vm: str, action: str, status_code: int, code: str, message: str,
           details: tuple[str, ...]) -> None:
    """Refuse VM's next ACTION request at once (e.g. 409 OperationNotAllowed with details)."""
    parsed = [dict(zip(("code", "message"), d.split(":", 1), strict=True)) if ":" in d
              else {"code": code, "message": d} for d in details]
    _client(directory).refuse_next_request(vm, action, status=status_code, code=code,
                                           message=message, details=parsed or None)
    click.echo(f"{vm}: the next {action} request answers {status_code} {code}")


@simulate_group.command()
@DIR_OPTION
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def operations(directory: Path, as_json: bool) -> None:
    """List every action requested through ARM, with its outcome."""
    ops = _client(directory).operations()
    if as_json:
        echo_json(ops)
        return
    if not ops:
        click.echo("No operations requested yet.")
        return
    echo_table(["VM", "ACTION", "STATUS", "SECONDS", "ERROR"],
               [[op["vm"], op["action"], op["status"], _took(op), op["error_code"] or "-"]
                for op in ops])


def _took(op: dict[str, Any]) -> str:
    return "-" if op["ended"] is None else f"{op['ended'] - op['started']:.1f}"


@simulate_group.command()
@DIR_OPTION
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--policy", type=click.Choice(("never", "on-failure", "always")),
              default="on-failure", show_default=True)
@click.option("--interval", type=click.IntRange(10), default=10, show_default=True)
@click.option("--resolve-ssh", is_flag=True,
              help="Leave SSH host and user unset: resolved from Azure (public IP, admin user).")
def config(directory: Path, path: Path, policy: str, interval: int, resolve_ssh: bool) -> None:
    """Write a lifecycle configuration monitoring every simulated VM to PATH."""
    client = _client(directory)
    client.status()
    client.write_config(path, restart_policy=policy, check_interval_seconds=interval,
                        resolve_ssh=resolve_ssh)
    click.echo(f"Wrote {path} ({len(client.vm_names)} VMs). Use it with: "
               f"azlin lifecycle --config {path} ...; the az stand-in is in {client.az_dir}")


COMMANDS = [simulate_group]
