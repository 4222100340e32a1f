"""SimulatedFleet: a stand-in Azure (ARM over HTTPS) plus one real SSH endpoint per VM, and
optionally a stand-in Azure Bastion (:mod:`.bastion`) for VMs without a public IP."""

from __future__ import annotations

import datetime as dt
import secrets
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from ..config import check_vm_name
from ..errors import SimulatorError
from ..models import VMMetrics
from . import armjson
from .arm_api import DENIABLE, ArmApi
from .azcli import LOGGED_OUT_FLAG, write_az
from .bastion import BastionMode, SimBastion
from .facts import FleetFacts
from .network import SimNetwork, VmAddresses
from .platform_controls import PlatformControls
from .scheduler import Scheduler
from .state import APP_HEALTH_STATES, ArmError, FleetState, GuestAgent, SimVM, SshMode

if TYPE_CHECKING:
    from .arm_server import ArmHttpsServer
    from .blobs import BlobServer
    from .ssh_server import SshHub


class SimulatedFleet(FleetFacts, PlatformControls):
    """Start with ``with SimulatedFleet(workdir, 3) as fleet:`` (or start()/stop()).

    ``private`` (the default, as azlin makes its VMs since April 2026): new VMs get no
    public IP, only a private one that does not answer from here; False gives each a
    public IP. ``bastion``: run a stand-in Azure Bastion in the resource group (None: when
    ``private``), through which private VMs are reached.
    """

    def __init__(self, workdir: Path, vm_count: int = 3, *, resource_group: str = "rg-sim",
                 subscription_id: str = "00000000-0000-0000-0000-0000000000aa",
                 name_prefix: str = "vm-", boot_seconds: float = 5.0,
                 operation_seconds: float = 1.0, page_size: int = 50,
                 retry_after: int | None = None, command_seconds: float = 0.0,
                 private: bool = True, bastion: bool | None = None,
                 recorded_pace: bool = False) -> None:
        self.private = private
        self.with_bastion = private if bastion is None else bastion
        self.workdir = Path(workdir)
        self.vm_count = vm_count
        self.resource_group = resource_group
        self.subscription_id = subscription_id
        self.name_prefix = name_prefix
        self.boot_seconds = boot_seconds
        self.operation_seconds = operation_seconds
        self.page_size = page_size
        self.retry_after = retry_after  # Retry-After on 202s and InProgress polls; None: none
        self.recorded_pace = recorded_pace  # else Retry-After per action, as ARM was recorded
        self.command_seconds = command_seconds  # the metrics command's run time on a VM
        self.control_token = secrets.token_urlsafe(16)
        self.az_dir = self.workdir / "bin"
        self.client_key = self.workdir / "client_key"
        self.ca_path = self.workdir / "ca.pem"
        self.arm_endpoint = ""
        self._scheduler: Scheduler | None = None
        self._state: FleetState | None = None
        self._hub: SshHub | None = None
        self._server: ArmHttpsServer | None = None
        self._api: ArmApi | None = None
        self._bastion: SimBastion | None = None
        self._blobs: BlobServer | None = None
        self._add_lock = threading.Lock()
        self._network = SimNetwork()

    # ------------------------------------------------------------------ lifecycle
    def start(self) -> SimulatedFleet:
        if self._server is not None:
            return self
        from .arm_server import ArmHttpsServer
        from .blobs import BlobServer
        from .control import make_control
        from .keys import HostKeys, ensure_client_key, public_blob
        from .ssh_server import SshHub
        from .tls import make_tls

        try:
            self.workdir.mkdir(parents=True, exist_ok=True)
            write_az(self.az_dir, self.workdir, self.subscription_id)
            tls = make_tls(self.workdir)
            ensure_client_key(self.client_key)
            self._scheduler = Scheduler()
            self._scheduler.start()
            self._state = FleetState(self._scheduler, resource_group=self.resource_group,
                                     boot_seconds=self.boot_seconds,
                                     operation_seconds=self.operation_seconds,
                                     on_ssh_change=self._ssh_changed)
            self._hub = SshHub(HostKeys(self.workdir / "host-key-seed"),
                               public_blob(self.client_key), self._scheduler,
                               command_seconds=self.command_seconds)
            self.add_vms(self.vm_count)
            self._hub.start()
            self._api = ArmApi(self._state, subscription_id=self.subscription_id,
                               page_size=self.page_size, retry_after=self.retry_after,
                               control=make_control(self))
            self._api.control_token = self.control_token
            self._api.network = self._network
            self._api.recorded_pace = self.recorded_pace
            self._api.on_delete = lambda name: self.hub.apply(name, SshMode.REFUSED, 0.0)
            self._blobs = BlobServer(tls.server_context(), self._blob, self._blobs_hang)
            self._blobs.start()
            self._api.blobs = self._blobs
            self._server = ArmHttpsServer(self._api, tls.server_context())
            self._server.start()
            if self.with_bastion:
                self._bastion = SimBastion(
                    self._state, subscription_id=self.subscription_id,
                    location=armjson.LOCATION, context=tls.server_context(),
                    audiences=(self._api.base_url, "https://management.azure.com"),
                    vm_port=self._vm_port)
                self._api.bastion = self._bastion
        except OSError as exc:
            self.stop()
            raise SimulatorError(f"cannot start the simulator in {self.workdir}: {exc}") from None
        self.arm_endpoint = self._api.base_url
        return self

    def stop(self) -> None:
        if self._bastion is not None:
            self._bastion.stop()
            self._bastion = None
        if self._server is not None:
            self._server.stop()
            self._server = None
        if self._blobs is not None:
            self._blobs.stop()
            self._blobs = None
        if self._hub is not None:
            self._hub.stop()
            self._hub = None
        if self._scheduler is not None:
            self._scheduler.stop()
            self._scheduler = None

    def __enter__(self) -> SimulatedFleet:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # ------------------------------------------------------------------ internals
    @property
    def state(self) -> FleetState:
        if self._state is None:
            raise SimulatorError("the simulated fleet is not started; call start() first")
        return self._state

    @property
    def hub(self) -> SshHub:
        if self._hub is None:
            raise SimulatorError("the simulated fleet is not started; call start() first")
        return self._hub

    @property
    def api(self) -> ArmApi:
        if self._api is None:
            raise SimulatorError("the simulated fleet is not started; call start() first")
        return self._api

    def _ssh_changed(self, vm: SimVM) -> None:
        if self._network.observe(vm):
            self.hub.set_alias(vm.name, self._addresses(vm.name).public_ip)
        self.hub.apply(vm.name, vm.ssh_effective, vm.slow_seconds)

    def _vm_port(self, name: str) -> int | None:
        vm = self.state.find(name)
        return None if vm is None else vm.ssh_port

    def _ports(self) -> dict[str, int]:
        return {vm.name: vm.ssh_port for vm in self.state.all()}

    def _vm(self, name: str) -> SimVM:
        try:
            return self.state.require(name)
        except ArmError:
            raise SimulatorError(f"no simulated VM named {name!r}") from None

    # ------------------------------------------------------------------ control
    def add_vms(self, count: int, private: bool | None = None) -> list[str]:
        """Add ``count`` running VMs (named on from the last one); return their names.
        ``private``: without a public IP (None: the fleet's default)."""
        with self._add_lock:
            first = self.state.added + 1
            return [self._add(f"{self.name_prefix}{n:03d}", private)
                    for n in range(first, first + count)]

    def add_vm(self, name: str, private: bool | None = None) -> str:
        """Add one running VM called ``name`` (e.g. to match a configuration's names)."""
        check_vm_name(name)
        with self._add_lock:
            if self.state.find(name) is not None:
                raise SimulatorError(f"a simulated VM named {name!r} exists already")
            return self._add(name, private)

    def create_vm(self, name: str | None = None, *, session: str | None = None,
                  tags: Mapping[str, str] | None = None, private: bool | None = None) -> str:
        """Create a running VM as azlin does: named ``azlin-vm-<UTC timestamp>`` unless
        ``name`` is given, tagged ``azlin-session=<session, else its name>`` plus ``tags``."""
        with self._add_lock:
            if name is None:
                name = f"azlin-vm-{dt.datetime.now(dt.UTC):%Y%m%d-%H%M%S%f}"
            check_vm_name(name)
            if self.state.find(name) is not None:
                raise SimulatorError(f"a simulated VM named {name!r} exists already")
            return self._add(name, private, {"azlin-session": session or name, **(tags or {})})

    def delete_vm(self, name: str) -> None:
        """Delete a VM (what an ARM DELETE of it does): gone from ARM, its SSH refused."""
        try:
            self.state.remove_vm(name)
        except ArmError:
            raise SimulatorError(f"no simulated VM named {name!r}") from None
        self.hub.apply(name, SshMode.REFUSED, 0.0)

    def _add(self, name: str, private: bool | None = None,
             tags: Mapping[str, str] | None = None) -> str:
        state, hub = self.state, self.hub
        port = hub.add(name, _metrics_reader(state, name))
        vm = state.add_vm(name, port)
        if tags is not None:
            vm.tags = dict(tags)
        entry = self._network.add(name, vm.index)
        if self.private if private is None else private:
            entry = self._network.set_public(name, False)
        hub.set_alias(name, entry.public_ip)
        hub.apply(name, vm.ssh_effective, vm.slow_seconds)
        return name

    def power_state(self, name: str) -> str:
        return self._vm(name).power

    def provisioning_state(self, name: str) -> str:
        return self._vm(name).provisioning

    def set_power_state(self, name: str, state: str) -> None:
        self._vm(name)
        try:
            self.state.set_power_state(name, state)
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None

    def set_ssh_mode(self, name: str, mode: SshMode | str, slow_seconds: float = 5.0) -> None:
        self._vm(name)
        try:
            parsed = SshMode(mode)
        except ValueError:
            raise SimulatorError(f"unknown SSH mode {mode!r}; use one of "
                                 + ", ".join(m.value for m in SshMode)) from None
        self.state.set_ssh_mode(name, parsed, slow_seconds)

    def set_guest(self, name: str, agent: GuestAgent | str = GuestAgent.AUTO,
                  app_health: str | None = None) -> None:
        """What the VM's agent and Application Health extension report to Azure."""
        self.state.set_guest(name, _guest_agent(agent), _app_health(app_health))

    def set_metrics(self, name: str, metrics: VMMetrics) -> None:
        self._vm(name)
        self.state.set_metrics(name, metrics)

    def public_ip(self, name: str) -> str | None:
        """VM ``name``'s public IP now (its SSH answers there too), None when it has none."""
        return self._addresses(name).public_ip

    def private_ip(self, name: str) -> str:
        """VM ``name``'s private IP (a loopback address where nothing listens)."""
        return self._addresses(name).private_ip

    def set_public_ip(self, name: str, enabled: bool) -> None:
        """Give VM ``name`` a new public IP (True) or make it private-only (False)."""
        vm = self._vm(name)
        with self.state.lock:
            entry = self._network.set_public(vm.name, enabled)
            self.hub.set_alias(vm.name, entry.public_ip)

    def _addresses(self, name: str) -> VmAddresses:
        entry = self._network.get(self._vm(name).name)
        if entry is None:
            raise SimulatorError(f"no simulated VM named {name!r}")
        return entry

    @property
    def bastion(self) -> SimBastion:
        """The stand-in Azure Bastion (a fleet made with ``bastion=True`` or ``private``)."""
        if self._bastion is None:
            raise SimulatorError("this simulated fleet has no Bastion; start it with "
                                 "bastion=True (simulate run --bastion)")
        return self._bastion

    def set_bastion_mode(self, mode: BastionMode | str) -> None:
        """How the stand-in Bastion behaves (a fault, or ``up``)."""
        try:
            parsed = BastionMode(mode)
        except ValueError:
            raise SimulatorError(f"unknown Bastion mode {mode!r}; use one of "
                                 + ", ".join(m.value for m in BastionMode)) from None
        self.bastion.set_mode(parsed)

    def set_arm_fault(self, status: int, count: int = 1, retry_after: float | None = None,
                      accept: bool = False) -> None:
        """The next ``count`` ARM requests answer ``status`` (429, 500, ...); with
        ``accept`` they take effect all the same (an action starts)."""
        self.api.faults.set_fault(status, count, retry_after, accept)

    def deny_reads(self, scope: str | None) -> None:
        """Take the login's role away: on the ``"subscription"`` (every ARM request under
        it answers 403 AuthorizationFailed) or the ``"resource_group"`` (its requests do,
        and the subscription's listing leaves its VMs out, as ARM lists only what the
        caller may read); None gives it back."""
        if scope is not None and scope not in DENIABLE:
            raise SimulatorError(f"deny_reads: {scope!r} is not one of {', '.join(DENIABLE)}")
        self.api.denied = scope

    def set_arm_latency(self, seconds: float) -> None:
        self.api.faults.latency = max(0.0, float(seconds))

    def fail_next_operation(self, name: str, action: str = "restart",
                            code: str = "InternalExecutionError",
                            message: str = "An internal execution error occurred. Please retry "
                            "later.") -> None:
        self._vm(name)
        try:
            self.state.fail_next_operation(name, action, code, message)
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None

    def hang_operations(self, name: str, action: str = "restart") -> None:
        """Every later ``action`` on VM ``name`` stays InProgress (until cleared)."""
        self._vm(name)
        try:
            self.state.hang_operations(name, action)
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None

    def clear_operation_faults(self, name: str) -> None:
        self._vm(name)
        self.state.clear_operation_faults(name)

    def operations(self) -> list[dict[str, Any]]:
        return self.state.operations()

    def set_logged_in(self, logged_in: bool) -> None:
        """Make the stand-in ``az`` behave as logged in (default) or logged out."""
        flag = self.workdir / LOGGED_OUT_FLAG
        if logged_in:
            flag.unlink(missing_ok=True)
        else:
            flag.touch()

    def host_public_key(self, name: str, changed: bool = False) -> str:
        """``ssh-ed25519 AAAA...`` that VM ``name`` presents (``changed``: in HOST_KEY_CHANGED)."""
        self._vm(name)
        return self.hub.host_keys.public_line(name, changed)

    @property
    def arm_requests(self) -> int:
        return self.api.requests_served

    @property
    def arm_answers(self) -> dict[int, int]:
        """How many ARM answers had each HTTP status (control API calls not counted)."""
        return dict(self.api.answers)

    def status(self) -> dict[str, Any]:
        with self.state.lock:
            vms = [{"name": vm.name, "power": vm.power, "provisioning": vm.provisioning,
                    "booted": vm.booted, "ssh_mode": vm.ssh_mode.value, "agent": vm.agent.value,
                    "agent_ready": vm.agent_ready, "app_health": vm.app_health,
                    "health": (vm.health or {}).get("availabilityState", "auto"),
                    "boot_diagnostics": vm.boot_diagnostics,
                    "maintenance": vm.maintenance, "approval_seconds": vm.approval_seconds,
                    "ssh": vm.ssh_effective.value, "ssh_port": vm.ssh_port,
                    **self._network.describe(vm.name),
                    "operation": None if vm.current is None else vm.current.action}
                   for vm in self.state.all()]
        faults = self.api.faults
        return {"arm_endpoint": self.arm_endpoint, "vms": vms,
                "arm_requests": self.api.requests_served,
                "arm_answers": {str(k): v for k, v in sorted(self.api.answers.items())},
                "ssh_connections": self.hub.connection_count(),
                "arm_fault": {"status": faults.status, "remaining": faults.count,
                              "retry_after": faults.retry_after, "accept": faults.accept},
                "arm_latency": faults.latency,
                "bastion": None if self._bastion is None else self._bastion.describe()}


def _metrics_reader(state: FleetState, name: str) -> Callable[[], VMMetrics]:
    return lambda: state.require(name).metrics


def _guest_agent(value: GuestAgent | str) -> GuestAgent:
    try:
        return GuestAgent(value)
    except ValueError:
        raise SimulatorError(f"unknown agent state {value!r}; use one of "
                             + ", ".join(a.value for a in GuestAgent)) from None


def _app_health(value: str | None) -> str | None:
    if value is not None and value not in APP_HEALTH_STATES:
        raise SimulatorError(f"unknown application health {value!r}; use one of "
                             + ", ".join(APP_HEALTH_STATES) + " (or none)")
    return value
