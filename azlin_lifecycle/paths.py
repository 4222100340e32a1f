"""Where azlin-lifecycle keeps its files.

``AZLIN_CONFIG_DIR`` replaces ``~/.azlin`` (azlin's own convention) and
``XDG_STATE_HOME`` places the persisted state, as the XDG base directory spec says.
``AZURE_CONFIG_DIR`` replaces ``~/.azure``, as for the Azure CLI itself.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILE_NAME = "lifecycle-config.toml"
UNIT_NAME = "azlin-lifecycle.service"
# azlin's own files in the same directory (read by azlin_settings, never written)
AZLIN_CONFIG = "config.toml"
AZLIN_ACTIVE_CONTEXT = "active-context"
AZLIN_CONTEXTS = "contexts"


def config_dir() -> Path:
    override = os.environ.get("AZLIN_CONFIG_DIR")
    return Path(override).expanduser() if override else Path.home() / ".azlin"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def azlin_config_path() -> Path:
    """azlin's own config file (``default_resource_group``; it has no subscription)."""
    return config_dir() / AZLIN_CONFIG


def azlin_context_path(name: str, directory: Path | None = None) -> Path:
    """The file of azlin's context ``name`` (``contexts/<name>.toml``)."""
    return (directory or config_dir()) / AZLIN_CONTEXTS / f"{name}.toml"


def azlin_tunnel_registry_path() -> Path:
    """azlin's registry of the Bastion tunnels it keeps open (VM resource ID -> local port)."""
    return config_dir() / "tunnels" / "registry.json"


def azure_profile_path() -> Path:
    """The Azure CLI's account list (``subscriptions[]`` with ``isDefault``)."""
    override = os.environ.get("AZURE_CONFIG_DIR")
    base = Path(override).expanduser() if override else Path.home() / ".azure"
    return base / "azureProfile.json"


# azlin's private key search order (azlin's key_helpers PREFERRED_KEY_STEMS), under ~/.ssh.
AZLIN_KEY_NAMES = ("azlin_key", "id_ed25519_azlin", "id_ed25519", "id_rsa")


def azlin_key_candidates(home: Path | None = None) -> list[Path]:
    ssh_dir = (home or Path.home()) / ".ssh"
    return [ssh_dir / name for name in AZLIN_KEY_NAMES]


def known_hosts_path() -> Path:
    return config_dir() / "known_hosts"


def host_key_name(host: str, port: int) -> str:
    """The name OpenSSH gives ``host``:``port`` in a known_hosts file."""
    return host if port == 22 else f"[{host}]:{port}"


def state_dir() -> Path:
    base = os.environ.get("XDG_STATE_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".local" / "state"
    return root / "azlin-lifecycle"


def azure_config_dir() -> Path:
    """Where the Azure CLI keeps its files: ``$AZURE_CONFIG_DIR``, else ``~/.azure``."""
    override = os.environ.get("AZURE_CONFIG_DIR")
    return Path(override).expanduser() if override else Path.home() / ".azure"


def expand(path: str) -> Path:
    return Path(os.path.expandvars(path)).expanduser()
