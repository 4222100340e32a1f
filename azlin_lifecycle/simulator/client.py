"""SimulatorClient: drive a fleet running in another process through its control API."""

from __future__ import annotations

import dataclasses
import http.client
import json
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from ..errors import SimulatorError
from ..models import VMMetrics
from .facts import FleetFacts
from .state import SshMode

INFO_FILE = "simulator.json"


class SimulatorClient(FleetFacts):
    def __init__(self, info: dict[str, Any], directory: Path) -> None:
        self.directory = directory
        self.arm_endpoint = str(info["arm_endpoint"])
        self.ca_path = Path(info["ca_path"])
        self.az_dir = Path(info["az_dir"])
        self.client_key = Path(info["client_key"])
        self.subscription_id = str(info["subscription_id"])
        self.resource_group = str(info["resource_group"])
        self.pid = int(info.get("pid", 0))
        self._token = str(info["control_token"])
        self._ports_cache: dict[str, int] = {str(k): int(v) for k, v in info["vms"].items()}

    @classmethod
    def from_dir(cls, directory: Path, wait: float = 5.0) -> SimulatorClient:
        """The simulator running in ``directory``; waits up to ``wait`` s for one that is
        still starting (``simulate run ... &`` followed at once by another command)."""
        directory = Path(directory)
        path = directory / INFO_FILE
        deadline = time.monotonic() + wait
        while not path.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        try:
            info = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise SimulatorError(
                f"no simulator is running in {directory} ({INFO_FILE} is missing); start one "
                f"with: azlin lifecycle simulate run --dir {directory}") from None
        except (OSError, ValueError) as exc:
            raise SimulatorError(f"{path}: cannot read: {exc}") from None
        return cls(info, directory)

    # ------------------------------------------------------------------ transport
    def _request(self, method: str, path: str, body: Any = None) -> Any:
        from .tls import client_context

        url = urlsplit(self.arm_endpoint)
        conn = http.client.HTTPSConnection(url.hostname or "127.0.0.1", url.port,
                                           context=client_context(self.ca_path), timeout=30)
        try:
            data = None if body is None else json.dumps(body).encode("utf-8")
            conn.request(method, f"/_simulator/{path}", body=data,
                         headers={"X-Simulator-Token": self._token,
                                  "Content-Type": "application/json"})
            response = conn.getresponse()
            payload = json.loads(response.read() or b"null")
        except (OSError, http.client.HTTPException, ValueError) as exc:
            raise SimulatorError(
                f"cannot reach the simulator at {self.arm_endpoint} ({exc}); is "
                f"'azlin lifecycle simulate run --dir {self.directory}' still running?") from None
        finally:
            conn.close()
        if response.status != 200:
            message = payload.get("error") if isinstance(payload, dict) else payload
            if isinstance(message, dict):
                message = message.get("message")
            raise SimulatorError(f"simulator refused {method} {path}: {message}")
        return payload

    def _ports(self) -> dict[str, int]:
        return dict(self._ports_cache)

    # ------------------------------------------------------------------ the fleet's methods
    def status(self) -> dict[str, Any]:
        status: dict[str, Any] = self._request("GET", "status")
        self._ports_cache = {vm["name"]: int(vm["ssh_port"]) for vm in status["vms"]}
        return status

    def power_state(self, name: str) -> str:
        for vm in self.status()["vms"]:
            if vm["name"] == name:
                return str(vm["power"])
        raise SimulatorError(f"no simulated VM named {name!r}")

    def set_power_state(self, name: str, state: str) -> None:
        self._request("POST", f"vms/{name}/power", {"state": state})

    def set_ssh_mode(self, name: str, mode: SshMode | str, slow_seconds: float = 5.0) -> None:
        self._request("POST", f"vms/{name}/ssh",
                      {"mode": str(SshMode(mode).value if isinstance(mode, SshMode) else mode),
                       "slow_seconds": slow_seconds})

    def set_guest(self, name: str, agent: str = "auto", app_health: str | None = None) -> None:
        self._request("POST", f"vms/{name}/guest", {"agent": agent, "app_health": app_health})

    def set_health(self, name: str, state: str, **details: Any) -> None:
        self._request("POST", f"vms/{name}/health", {"state": state, **details})

    def set_boot_diagnostics(self, name: str, mode: str) -> None:
        self._request("POST", f"vms/{name}/boot-diagnostics", {"mode": mode})

    def set_maintenance(self, name: str, starts_in: float | None, lasts: float = 3600.0) -> None:
        self._request("POST", f"vms/{name}/maintenance", {"starts_in": starts_in, "lasts": lasts})

    def set_approval(self, name: str, seconds: float) -> None:
        self._request("POST", f"vms/{name}/approval", {"seconds": seconds})

    def set_metrics(self, name: str, metrics: VMMetrics) -> None:
        self._request("POST", f"vms/{name}/metrics", dataclasses.asdict(metrics))

    def set_arm_fault(self, status: int, count: int = 1, retry_after: float | None = None,
                      accept: bool = False) -> None:
        self._request("POST", "arm-fault", {"status": status, "count": count,
                                            "retry_after": retry_after, "accept": accept})

    def set_bastion_mode(self, mode: str) -> None:
        """How the stand-in Bastion behaves (``simulate bastion MODE``)."""
        self._request("POST", "bastion", {"mode": mode})

    def set_arm_latency(self, seconds: float) -> None:
        self._request("POST", "arm-latency", {"seconds": seconds})

    def fail_next_operation(self, name: str, action: str = "restart",
                            code: str = "InternalExecutionError",
                            message: str = "An internal execution error occurred. Please retry "
                            "later.") -> None:
        self._request("POST", f"vms/{name}/fail-next",
                      {"action": action, "code": code, "message": message})

    def refuse_next_request(self, name: str, action: str = "start", *, status: int = 409,
                            code: str = "OperationNotAllowed", message: str = "",
                            details: list[dict[str, str]] | None = None) -> None:
        self._request("POST", f"vms/{name}/refuse-next",
                      {"action": action, "status": status, "code": code, "message": message,
                       "details": details})

    def hang_operations(self, name: str, action: str = "restart") -> None:
        self._request("POST", f"vms/{name}/hang", {"action": action})

    def clear_operation_faults(self, name: str) -> None:
        self._request("POST", f"vms/{name}/clear-faults", {})

    @property
    def arm_answers(self) -> dict[int, int]:
        """How many ARM answers had each HTTP status."""
        return {int(k): int(v) for k, v in self.status()["arm_answers"].items()}

    def set_public_ip(self, name: str, enabled: bool) -> None:
        """Give VM ``name`` a new public IP (True) or make it private-only (False)."""
        self._request("POST", f"vms/{name}/public-ip", {"enabled": enabled})

    def public_ip(self, name: str) -> str | None:
        for vm in self.status()["vms"]:
            if vm["name"] == name:
                return None if vm.get("public_ip") is None else str(vm["public_ip"])
        raise SimulatorError(f"no simulated VM named {name!r}")

    def operations(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._request("GET", "operations")
        return result

    def add_vms(self, count: int) -> list[str]:
        added: list[str] = self._request("POST", "vms", {"count": count})["added"]
        self.status()
        return added

    def create_vm(self, name: str | None = None, *, session: str | None = None,
                  tags: dict[str, str] | None = None) -> str:
        """Create a VM as azlin does (``azlin-vm-<UTC timestamp>``, tag ``azlin-session``)."""
        created = str(self._request("POST", "create-vm",
                                    {"name": name, "session": session, "tags": tags or {}})["name"])
        self.status()
        return created

    def delete_vm(self, name: str) -> None:
        self._request("POST", f"vms/{name}/delete", {})
