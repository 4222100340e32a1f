"""What a fleet and a client of a running fleet both offer: names, ports, config, env."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import SimulatorError
from . import configfile


class FleetFacts(ABC):
    """What a running fleet offers, in-process (SimulatedFleet) or remote (SimulatorClient)."""

    arm_endpoint: str
    ca_path: Path
    az_dir: Path
    client_key: Path
    subscription_id: str
    resource_group: str

    @abstractmethod
    def _ports(self) -> dict[str, int]:
        """VM name -> SSH port on 127.0.0.1."""

    @property
    def vm_names(self) -> list[str]:
        return list(self._ports())

    def ssh_port(self, name: str) -> int:
        ports = self._ports()
        if name not in ports:
            raise SimulatorError(f"no simulated VM named {name!r}; the fleet has "
                                 f"{', '.join(list(ports)[:5])}{' ...' if len(ports) > 5 else ''}")
        return ports[name]

    def env(self) -> dict[str, str]:
        """This process's environment with the stand-in ``az`` first on PATH and
        ``REQUESTS_CA_BUNDLE`` set to the simulator's CA."""
        return configfile.fleet_env(self.az_dir, self.ca_path)

    def write_config(self, path: Path, *, restart_policy: str = "on-failure",
                     check_interval_seconds: int = 10, hooks: dict[str, str] | None = None,
                     extra_toml: Mapping[str, Any] | None = None,
                     resolve_ssh: bool = False) -> None:
        """Write a complete lifecycle-config.toml monitoring every VM of the fleet
        (``resolve_ssh``: SSH host and user left to be resolved from Azure)."""
        configfile.write_config(
            Path(path), subscription_id=self.subscription_id,
            resource_group=self.resource_group, arm_endpoint=self.arm_endpoint,
            ca_path=self.ca_path, client_key=self.client_key, ports=self._ports(),
            restart_policy=restart_policy, check_interval_seconds=check_interval_seconds,
            hooks=hooks, extra_toml=extra_toml, resolve_ssh=resolve_ssh)
