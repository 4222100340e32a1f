"""The lifecycle configuration and environment that point azlin-lifecycle at a fleet."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import from_dict, parse_toml
from ..errors import SimulatorError
from ..fsio import atomic_write

SSH_USER = "azureuser"
HEADER = ("# azlin-lifecycle configuration for a simulated fleet, written by "
          "'azlin lifecycle simulate'.\n\n")


def fleet_env(az_dir: Path, ca_path: Path) -> dict[str, str]:
    """This process's environment with the stand-in ``az`` first on PATH, the CA trusted,
    and the Azure CLI's config dir inside the simulator's own (the stand-in writes there
    as the real az does: never into the user's real ~/.azure)."""
    env = dict(os.environ)
    env["PATH"] = os.pathsep.join([str(az_dir), env.get("PATH", os.defpath)])
    env["REQUESTS_CA_BUNDLE"] = str(ca_path)
    env["AZURE_CONFIG_DIR"] = str(az_dir.parent / "azure")
    return env


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, Mapping) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def write_config(path: Path, *, subscription_id: str, resource_group: str, arm_endpoint: str,
                 ca_path: Path, client_key: Path, ports: Mapping[str, int],
                 restart_policy: str = "on-failure", check_interval_seconds: int = 10,
                 hooks: Mapping[str, str] | None = None,
                 extra_toml: Mapping[str, Any] | None = None,
                 resolve_ssh: bool = False) -> None:
    """Write a complete, validated lifecycle-config.toml for the fleet to ``path``.

    ``resolve_ssh``: leave ``ssh_host`` and ``ssh_user`` unset, so they are resolved from
    Azure (the VM's public IP and admin user), as for azlin's own VMs.
    """
    fixed = {} if resolve_ssh else {"ssh_host": "127.0.0.1", "ssh_user": SSH_USER}
    doc: dict[str, Any] = {
        "azure": {"subscription_id": subscription_id, "resource_group": resource_group,
                  "arm_endpoint": arm_endpoint, "ca_bundle": str(ca_path), "credential": "cli"},
        "vms": {
            name: {"enabled": True, "check_interval_seconds": check_interval_seconds,
                   "restart_policy": restart_policy, **fixed, "ssh_port": port,
                   "ssh_key": str(client_key),
                   **({"hooks": dict(hooks)} if hooks else {})}
            for name, port in ports.items()
        },
    }
    if extra_toml:
        doc = _merge(doc, extra_toml)
    import tomli_w

    from_dict(doc, str(path))  # raises LifecycleConfigError naming the bad key
    text = HEADER + tomli_w.dumps(doc)
    parse_toml(text, str(path))
    try:
        atomic_write(path, text.encode("utf-8"))
    except OSError as exc:
        raise SimulatorError(f"{path}: cannot write the configuration ({exc.strerror})") from None
