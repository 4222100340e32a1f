"""The TOML configuration: frozen dataclasses, enums, and one validator.

Every value is validated on load and before every write. An error names the file,
the table (the VM), the key, the value and what is allowed, e.g.::

    ~/.azlin/lifecycle-config.toml [vms.web-1]: check_interval_seconds = 5 is not
    allowed: expected an integer from 10 to 86400

The package's modules, each with one job: :mod:`.validation` (what a key accepts:
rules and the check that applies them), :mod:`.schema` (the settings, each a dataclass
field carrying its default and its rule, and the checks across fields) and
:mod:`.toml_io` (parsing TOML text into a :class:`LifecycleConfig` and rendering it
back, reading the file). Writing the file, with locks, lives in
:mod:`azlin_lifecycle.manager`. The names other modules use are imported from here.
"""

from .schema import (
    DEFAULT_ARM_ENDPOINT,
    SECTIONS,
    VALID_HOOK_TYPES,
    VALID_RESTART_POLICIES,
    AzureSettings,
    CredentialKind,
    DaemonSettings,
    HaCredential,
    HaSettings,
    HealingSettings,
    HookSettings,
    HookType,
    LifecycleConfig,
    LogLevel,
    MetricsSettings,
    MonitoringConfig,
    RestartPolicy,
    check_vm_name,
)
from .toml_io import (
    from_dict,
    load_file,
    parse_toml,
    render_toml,
    to_dict,
    vm_from_dict,
    vm_to_dict,
)
from .validation import rules

__all__ = [
    "DEFAULT_ARM_ENDPOINT",
    "SECTIONS",
    "VALID_HOOK_TYPES",
    "VALID_RESTART_POLICIES",
    "AzureSettings",
    "CredentialKind",
    "DaemonSettings",
    "HaCredential",
    "HaSettings",
    "HealingSettings",
    "HookSettings",
    "HookType",
    "LifecycleConfig",
    "LogLevel",
    "MetricsSettings",
    "MonitoringConfig",
    "RestartPolicy",
    "check_vm_name",
    "from_dict",
    "load_file",
    "parse_toml",
    "render_toml",
    "rules",
    "to_dict",
    "vm_from_dict",
    "vm_to_dict",
]
