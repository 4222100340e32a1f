"""Install the user unit for this installation: render, write, daemon-reload, enable.

The template is ``units/azlin-lifecycle.service`` (packaged as
``azlin_lifecycle/data/azlin-lifecycle.service``); ``install`` fills in ExecStart with
the Python that runs this code, so the unit survives whatever venv or pipx install
it came from, the writable paths with this user's config and state directories and the
Azure CLI's config dir, and ``PATH`` with the directory of the ``az`` this shell finds.
"""

from __future__ import annotations

import os
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import ControllerError

UNIT_NAME = paths.UNIT_NAME
PLACEHOLDERS = ("@EXEC_START@", "@READ_WRITE_PATHS@", "@ENVIRONMENT@")
# What the service runs with after az's directory: systemd's own default PATH.
SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
AZ_NOT_FOUND = ("warning: 'az' is not on this shell's PATH, so the service will not find it "
                "either: install the Azure CLI and re-run 'azlin lifecycle install' (not "
                "needed with credential = \"managed_identity\")")


def template_text() -> str:
    """The unit template: packaged data first, then the source checkout's units/."""
    candidates = [
        Path(__file__).resolve().parent / "data" / UNIT_NAME,
        Path(__file__).resolve().parent.parent / "units" / UNIT_NAME,
    ]
    for candidate in candidates:
        if candidate.is_file():
            return candidate.read_text()
    raise ControllerError(
        f"the unit template {UNIT_NAME} is missing from this installation "
        f"(looked in {', '.join(str(c.parent) for c in candidates)}); reinstall azlin-lifecycle"
    )


def user_unit_dir() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME")
    root = Path(base).expanduser() if base else Path.home() / ".config"
    return root / "systemd" / "user"


def unit_path() -> Path:
    return user_unit_dir() / UNIT_NAME


def _systemd_word(text: str) -> str:
    """Quote one word for a unit file: specifiers escaped, quoted if it has spaces."""
    text = text.replace("%", "%%")
    if any(c.isspace() or c in "\"'\\;" for c in text):
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def default_exec_start() -> str:
    """This interpreter running the CLI's ``daemon run`` (no reliance on PATH)."""
    return " ".join(
        _systemd_word(w) for w in (sys.executable, "-m", "azlin_lifecycle", "daemon", "run")
    )


def writable_dirs() -> list[Path]:
    """What the daemon writes: the config dir (config, known_hosts), its state dir, and
    the Azure CLI's config dir (``az`` writes logs, session and token cache on every call)."""
    return [paths.config_dir(), paths.state_dir(), paths.azure_config_dir()]


def textfile_dirs() -> list[Path]:
    """The directory of ``[metrics] textfile`` when the configuration sets one (node_exporter's
    textfile directory: the service rewrites the file there). Not created here: it belongs
    to node_exporter's set-up. A configuration that does not load adds nothing."""
    from .errors import LifecycleConfigError
    from .manager import LifecycleManager

    try:
        textfile = LifecycleManager().load().metrics.textfile
    except LifecycleConfigError:
        return []
    return [paths.expand(textfile).parent] if textfile else []


def az_dir() -> Path | None:
    """The directory of the ``az`` this process's PATH finds (as the user's shell would)."""
    found = shutil.which("az")
    return Path(found).absolute().parent if found else None


def service_path(az_directory: Path | None) -> str:
    """The service's PATH: ``az_directory`` (if any) before SAFE_PATH, without repeats."""
    first = [str(az_directory)] if az_directory is not None else []
    return ":".join(dict.fromkeys([*first, *SAFE_PATH.split(":")]))


def render_unit(exec_start: str | None = None, template: str | None = None) -> str:
    text = template if template is not None else template_text()
    missing = [p for p in PLACEHOLDERS if p not in text]
    if missing:
        raise ControllerError(f"the unit template lacks {', '.join(missing)}; reinstall "
                              "azlin-lifecycle")
    rw = " ".join(_systemd_word(f"-{d}") for d in writable_dirs() + textfile_dirs())
    env = [f"{name}={os.environ[name]}" for name in ("AZLIN_CONFIG_DIR", "XDG_STATE_HOME")
           if os.environ.get(name)]
    az = az_dir()
    env += [f"AZURE_CONFIG_DIR={paths.azure_config_dir()}", f"PATH={service_path(az)}"]
    env_line = "Environment=" + " ".join(_systemd_word(e) for e in env)
    command = exec_start or default_exec_start()
    text = (text.replace("@EXEC_START@", command)
            .replace("@READ_WRITE_PATHS@", rw)
            .replace("@ENVIRONMENT@", env_line))
    if lives_in_tmp([*command.split(), sys.prefix, str(Path(__file__).parent),
                     *map(str, writable_dirs() + textfile_dirs()), *([str(az)] if az else [])]):
        text = text.replace(
            "PrivateTmp=yes",
            "# This installation (or its config/state) lives under /tmp or /var/tmp,\n"
            "# which a private /tmp would hide from the service.\nPrivateTmp=no")
    return text


def lives_in_tmp(paths: list[str]) -> bool:
    """True if any of ``paths`` is under /tmp or /var/tmp (what PrivateTmp= replaces)."""
    roots = (Path("/tmp"), Path("/var/tmp"))
    for word in paths:
        if not word.startswith("/"):
            continue
        path = Path(word)
        for candidate in {path, path.resolve()}:
            if any(candidate == r or r in candidate.parents for r in roots):
                return True
    return False


@dataclass(frozen=True)
class InstallResult:
    unit_path: Path
    exec_start: str
    started: bool
    lingering: bool
    warning: str | None = None


def install(linger: bool = False, now: bool = False, *,
            exec_start: str | None = None) -> InstallResult:
    """Write the unit, reload systemd, enable it; ``now`` starts it, ``linger`` asks logind."""
    from .adapters.dbus import SystemdUserManager, set_user_linger

    command = exec_start or default_exec_start()
    text = render_unit(command)
    for directory in writable_dirs():
        # ReadWritePaths= can only open up directories that exist.
        directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    target = unit_path()
    with SystemdUserManager() as systemd:
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text)
        tmp.replace(target)
        systemd.daemon_reload()
        systemd.enable_unit_files([UNIT_NAME])
        if linger:
            set_user_linger(os.getuid(), True)
        if now:
            from .controller import DaemonController

            DaemonController(manager=systemd).start_daemon()
    return InstallResult(target, command, now, linger, None if az_dir() else AZ_NOT_FOUND)


def uninstall(linger: bool = False) -> Path | None:
    """Stop and disable the unit, remove its file, reload. Returns the removed path."""
    from .adapters.dbus import SystemdUserManager, set_user_linger

    target = unit_path()
    with SystemdUserManager() as systemd:
        props = systemd.properties(UNIT_NAME)
        if props.active_state not in ("inactive", "failed"):
            systemd.stop_unit(UNIT_NAME, timeout=30)
        if systemd.unit_file_state(UNIT_NAME):
            systemd.disable_unit_files([UNIT_NAME])
        existed = target.exists()
        target.unlink(missing_ok=True)
        systemd.daemon_reload()
        if linger:
            set_user_linger(os.getuid(), False)
    return target if existed else None

