"""What the stand-in Azure knows of its VMs beyond their power state, set by hand:
Resource Health, boot diagnostics and their blobs, planned maintenance, the guest's
Scheduled Events approval wait, and a POST refused with ARM's error details. Mixed into
:class:`~.fleet.SimulatedFleet`; the answers themselves are :mod:`.signals_api`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from ..errors import SimulatorError
from .state import ArmError

if TYPE_CHECKING:
    from .blobs import BlobServer
    from .state import FleetState, SimVM


class PlatformControls:
    """Mixed into :class:`~.fleet.SimulatedFleet`, which provides ``state``, ``_vm`` and
    ``_blobs`` (declared here for the type checker only)."""

    _blobs: BlobServer | None

    if TYPE_CHECKING:
        @property
        def state(self) -> FleetState: ...

        def _vm(self, name: str) -> SimVM: ...

    def _blob(self, name: str, kind: str) -> bytes | None:
        from .signals_api import screenshot, serial_log

        with self.state.lock:
            vm = self.state.find(name)
            return None if vm is None else serial_log(vm) if kind == "serial" else screenshot()

    def _blobs_hang(self, name: str) -> bool:
        vm = self.state.find(name)
        return vm is not None and vm.boot_diagnostics == "hang"

    @property
    def blobs(self) -> BlobServer:
        """The boot diagnostics' Blob storage (its requests, the SAS tokens it issued)."""
        if self._blobs is None:
            raise SimulatorError("the simulated fleet is not started; call start() first")
        return self._blobs

    def set_health(self, name: str, state: str, *, annotation: str | None = None,
                   context: str | None = None, category: str | None = None,
                   reason_type: str | None = None, summary: str | None = None,
                   eta_minutes: float | None = None) -> None:
        """What Resource Health answers for VM ``name``: available, unavailable, degraded,
        unknown (with an annotation, its context and category follow from it), or auto
        (follow the power state again; a platform outage set before becomes
        ``recentlyResolved``)."""
        from .signals_api import health_properties

        self._vm(name)
        try:
            props = health_properties(state, annotation, context, category, reason_type,
                                      summary, eta_minutes)
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None
        self.state.set_health(name, props)

    def reset_platform(self, name: str) -> None:
        """What Azure knows of VM ``name`` back to its start: Resource Health follows the
        power state (no recent outage), boot diagnostics on, no maintenance, no approval."""
        self._vm(name)
        self.state.set_health(name, None, resolved=False)
        self.state.set_platform(name, boot_diagnostics="on", maintenance=None,
                                approval_seconds=0.0)

    def set_boot_diagnostics(self, name: str, mode: str) -> None:
        """on, off (retrieveBootDiagnosticsData answers 409), or hang (its blobs never answer)."""
        from .signals_api import BOOT_DIAGNOSTICS

        if mode not in BOOT_DIAGNOSTICS:
            raise SimulatorError(f"unknown boot diagnostics mode {mode!r}; use one of "
                                 + ", ".join(BOOT_DIAGNOSTICS))
        self._vm(name)
        self.state.set_platform(name, boot_diagnostics=mode)

    def set_maintenance(self, name: str, starts_in: float | None,
                        lasts: float = 3600.0) -> None:
        """A planned-maintenance window (``instanceView.maintenanceRedeployStatus``) from
        ``starts_in`` seconds from now, ``lasts`` seconds long; None: none scheduled."""
        self._vm(name)
        window = None if starts_in is None else (time.time() + starts_in,
                                                 time.time() + starts_in + lasts)
        self.state.set_platform(name, maintenance=window)

    def set_approval(self, name: str, seconds: float) -> None:
        """A restart or redeploy of VM ``name`` waits ``seconds`` after Azure accepted it
        (the guest's approval of its Scheduled Event) before the VM goes down."""
        self._vm(name)
        self.state.set_platform(name, approval_seconds=float(seconds))

    def refuse_next_request(self, name: str, action: str = "start", *, status: int = 409,
                            code: str = "OperationNotAllowed",
                            message: str = "Operation could not be completed as it results "
                            "in exceeding approved quota.",
                            details: list[dict[str, str]] | None = None) -> None:
        """The next POST of ``action`` on VM ``name`` answers ``status`` with this error
        (``details``: ARM's ``error.details[]``, each ``{code, message, target}``) and takes
        no effect."""
        self._vm(name)
        try:
            self.state.refuse_next_request(name, action, ArmError(status, code, message,
                                                                  details))
        except ValueError as exc:
            raise SimulatorError(str(exc)) from None
