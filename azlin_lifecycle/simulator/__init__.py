"""A stand-in Azure with simulated VMs, for tests, the demo, the benchmark and for
rehearsing policies and hooks safely.

``SimulatedFleet`` runs in-process: an HTTPS server speaking the ARM REST API for
``Microsoft.Compute/virtualMachines``, a stand-in ``az`` for ``AzureCliCredential``, and
a real SSH endpoint (paramiko) per VM on 127.0.0.1. ``SimulatorClient`` drives a fleet
running in another process (``azlin lifecycle simulate run``).
"""

from __future__ import annotations

from .client import SimulatorClient
from .fleet import SimulatedFleet
from .state import ACTIONS, POWER_STATES, SshMode

__all__ = ["ACTIONS", "POWER_STATES", "SimulatedFleet", "SimulatorClient", "SshMode"]
