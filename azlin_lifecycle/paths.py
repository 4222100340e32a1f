"""Where azlin-lifecycle keeps its files.

``AZLIN_CONFIG_DIR`` replaces ``~/.azlin`` (azlin's own convention) and
``XDG_STATE_HOME`` places the persisted state, as the XDG base directory spec says.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_FILE_NAME = "lifecycle-config.toml"
UNIT_NAME = "azlin-lifecycle.service"


def config_dir() -> Path:
    override = os.environ.get("AZLIN_CONFIG_DIR")
    return Path(override).expanduser() if override else Path.home() / ".azlin"


def config_path() -> Path:
    return config_dir() / CONFIG_FILE_NAME


def azlin_config_path() -> Path:
    """azlin's own config file (default resource group, subscription)."""
    return config_dir() / "config.toml"


def known_hosts_path() -> Path:
    return config_dir() / "known_hosts"


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
