"""azlin's own settings, read the way azlin reads them: its selected context and its config.

azlin keeps them under ``$AZLIN_CONFIG_DIR`` (else ``~/.azlin``):

* ``active-context`` names the selected context (whitespace trimmed; a missing or empty
  file selects none);
* ``contexts/<name>.toml`` is that context: ``subscription_id``, ``tenant_id``,
  ``resource_group``, ``region`` (and ``name``, else the file's). A value that is blank or
  not a string counts as unset, as for azlin. A selected context whose file is missing or
  not valid TOML is an error (:class:`~azlin_lifecycle.errors.AzlinSettingsError`), as it is
  for azlin: the user switched on purpose, so nothing may quietly use another subscription;
* ``config.toml`` has ``default_resource_group`` (azlin has no subscription key there).
  A file azlin could not read either is noted (``config_problem``), not raised: it
  matters only when its default resource group is the one needed.

The ``parse_*`` functions turn text into values and do no I/O; :func:`read_azlin_settings`
reads the files, again only when one of them changed. This module only reads: azlin
rewrites its files with the keys it knows, so nothing of ours is ever written there.
"""

from __future__ import annotations

import threading
import tomllib
from dataclasses import dataclass
from pathlib import Path

from . import paths
from .errors import AzlinSettingsError

CONTEXT_KEYS = ("subscription_id", "tenant_id", "resource_group", "region")


@dataclass(frozen=True)
class AzlinContext:
    """One azlin context (``azlin context create``), as azlin applies it."""

    name: str
    path: Path
    subscription_id: str | None = None
    tenant_id: str | None = None
    resource_group: str | None = None
    region: str | None = None


@dataclass(frozen=True)
class AzlinSettings:
    """What azlin would use: the selected context (None: none selected) and config.toml's
    ``default_resource_group``. ``config_problem`` says why config.toml could not be read."""

    context: AzlinContext | None = None
    default_resource_group: str | None = None
    config_path: Path | None = None
    config_problem: str | None = None


# --------------------------------------------------------------------------- parsing
def _text(value: object) -> str | None:
    """A setting's value as azlin takes it: a non-blank string, trimmed; else unset."""
    if isinstance(value, str) and value.strip():
        return value.strip()
    return None


def parse_active_context(text: str) -> str | None:
    """The context named by ``active-context``'s content; None when it names none."""
    return text.strip() or None


def parse_context(name: str, text: str, path: Path) -> AzlinContext:
    """A context file's content (``name``: the file's, used when it has no ``name`` key).
    Raises AzlinSettingsError naming ``path`` when it is not valid TOML."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise AzlinSettingsError(
            f"{path}: azlin context {name!r} is selected but its file is not valid TOML "
            f"({exc}); fix it, or select another context with 'azlin context use NAME'"
        ) from None
    values = {key: _text(data.get(key)) for key in CONTEXT_KEYS}
    return AzlinContext(name=_text(data.get("name")) or name, path=path, **values)


def parse_config(text: str) -> tuple[str | None, str | None]:
    """config.toml's ``default_resource_group``, and why the file is unusable (else None)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        return None, f"not valid TOML ({exc})"
    value = data.get("default_resource_group")
    if value is not None and not isinstance(value, str):
        return None, f"default_resource_group = {value!r} is not a string"
    return _text(value), None


# --------------------------------------------------------------------------- reading
_Stamp = tuple[int, int, int] | None  # (inode, size, mtime_ns) of a file; None: no file


@dataclass(frozen=True)
class _Read:
    marker: _Stamp
    name: str | None
    stamps: tuple[_Stamp, _Stamp]  # config.toml's, the context file's
    result: AzlinSettings | AzlinSettingsError


_cache_lock = threading.Lock()
_cache: dict[Path, _Read] = {}


def read_azlin_settings(directory: Path | None = None) -> AzlinSettings:
    """azlin's settings from ``directory`` (default: ``$AZLIN_CONFIG_DIR`` or ``~/.azlin``).

    The files are read again only when one of them changed (a check of every VM asks):
    otherwise this costs three ``stat`` calls. Raises AzlinSettingsError when a context
    is selected and its file is missing or broken."""
    directory = directory or paths.config_dir()
    marker = directory / paths.AZLIN_ACTIVE_CONTEXT
    config = directory / paths.AZLIN_CONFIG
    marker_stamp = _stamp(marker)
    with _cache_lock:
        cached = _cache.get(directory)
    if cached is not None and cached.marker == marker_stamp:
        name = cached.name
    else:
        name = _selected_name(marker)
    context = None if name is None else paths.azlin_context_path(name, directory)
    stamps = (_stamp(config), None if context is None else _stamp(context))
    if (cached is not None and cached.marker == marker_stamp and cached.name == name
            and cached.stamps == stamps):
        result = cached.result
    else:
        result = _load(config, name, context)
        with _cache_lock:
            _cache[directory] = _Read(marker_stamp, name, stamps, result)
    if isinstance(result, AzlinSettingsError):
        raise result
    return result


def forget_cache() -> None:
    """Read the files again on the next call."""
    with _cache_lock:
        _cache.clear()


def _stamp(path: Path) -> _Stamp:
    try:
        st = path.stat()
    except OSError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read(path: Path) -> str:
    return path.read_text(encoding="utf-8")


def _selected_name(marker: Path) -> str | None:
    try:
        return parse_active_context(_read(marker))
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise AzlinSettingsError(
            f"{marker}: cannot read which azlin context is selected ({_why(exc)})") from None


def _load(config: Path, name: str | None,
          context_path: Path | None) -> AzlinSettings | AzlinSettingsError:
    context: AzlinContext | None = None
    if name is not None and context_path is not None:
        try:
            context = parse_context(name, _read(context_path), context_path)
        except AzlinSettingsError as exc:
            return exc
        except (OSError, UnicodeDecodeError) as exc:
            return AzlinSettingsError(
                f"{context_path}: azlin context {name!r} is selected but its file cannot be "
                f"read ({_why(exc)}); see 'azlin context list', or select another with "
                "'azlin context use NAME'")
    try:
        group, problem = parse_config(_read(config))
    except FileNotFoundError:
        group, problem = None, None
    except (OSError, UnicodeDecodeError) as exc:
        group, problem = None, f"cannot be read ({_why(exc)})"
    return AzlinSettings(context=context, default_resource_group=group, config_path=config,
                         config_problem=problem)


def _why(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc) or type(exc).__name__
