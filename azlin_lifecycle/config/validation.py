"""What a configuration key accepts, and the one check that applies it.

A :class:`Rule` is a test, the words that describe it in an error and a conversion
(e.g. a string to its enum). The builders (:func:`integer`, :func:`number`,
:func:`one_of`) and the constants (``BOOL``, ``TEXT``, ``STORAGE_URL`` ...) are the
vocabulary the settings in :mod:`.schema` are declared with: a dataclass field carries
its rule in its metadata (:func:`accepts`), and :func:`rules` reads them back.

:func:`check_table` validates one table against its rules; an error names the file, the
table, the key, the value and what is allowed (:func:`where` writes the first two).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from ..errors import LifecycleConfigError

GUID_RE = re.compile(r"^[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")


# --------------------------------------------------------------------------- rules
@dataclass(frozen=True)
class Rule:
    """What one key accepts: a test, a description for the error, a conversion."""

    allowed: str
    check: Callable[[Any], bool]
    convert: Callable[[Any], Any] = lambda value: value


def integer(lo: int, hi: int) -> Rule:
    return Rule(
        f"an integer from {lo} to {hi}",
        lambda v: isinstance(v, int) and not isinstance(v, bool) and lo <= v <= hi,
    )


def number(lo: float, hi: float) -> Rule:
    return Rule(
        f"a number from {lo:g} to {hi:g}",
        lambda v: isinstance(v, int | float) and not isinstance(v, bool) and lo <= v <= hi,
        float,
    )


def one_of(kind: type[StrEnum]) -> Rule:
    values = [m.value for m in kind]
    return Rule(
        "one of " + ", ".join(f'"{v}"' for v in values),
        lambda v: isinstance(v, str) and v in values,
        kind,
    )


def _hook_target_ok(value: Any) -> bool:
    """The form only; a notification URL's service is checked by :func:`hook_target_problem`."""
    if not isinstance(value, str) or not value:
        return False
    if value.startswith("https://"):
        return len(value) > len("https://")
    return value.startswith(("/", "~")) or "://" in value


def hook_target_problem(value: Any) -> str | None:
    """Why a notification URL (``slack://``, ``ntfys://`` …) cannot be used, never quoting
    it; None for anything else. Asks apprise — imported only here, for such a value."""
    if not isinstance(value, str):
        return None
    from ..adapters import notify

    return notify.problem(value) if notify.is_notification_url(value) else None


BOOL = Rule("true or false", lambda v: isinstance(v, bool))
TEXT = Rule("a non-empty string", lambda v: isinstance(v, str) and v.strip() != "")
OPTIONAL_TEXT = Rule("a string", lambda v: isinstance(v, str))
PORT = integer(1, 65535)
HOOK_TARGET = Rule(
    "an absolute path to an executable (may start with ~), an https:// URL (a JSON "
    "webhook) or a notification URL such as slack://, workflows:// (Microsoft Teams), "
    "ntfys://, mailtos://, pagerduty:// (see https://github.com/caronc/apprise/wiki)",
    _hook_target_ok,
)
GUID = Rule("a GUID such as 12345678-90ab-cdef-1234-567890abcdef",
            lambda v: isinstance(v, str) and GUID_RE.match(v) is not None)
HTTPS_URL = Rule(
    "an https:// URL",
    lambda v: isinstance(v, str) and v.startswith("https://") and len(v) > 8,
    lambda v: v.rstrip("/"),
)


def is_loopback_url(value: str) -> bool:
    host = urlsplit(value).hostname or ""
    return host == "localhost" or host == "::1" or host.startswith("127.")


def _storage_url_ok(value: Any) -> bool:
    if not isinstance(value, str):
        return False
    parts = urlsplit(value)
    if not parts.hostname or parts.scheme not in ("https", "http"):
        return False
    return parts.scheme == "https" or is_loopback_url(value)


STORAGE_URL = Rule(
    "the storage account's blob endpoint, https://ACCOUNT.blob.core.windows.net "
    "(http:// only on a loopback address, for Azurite)",
    _storage_url_ok,
    lambda v: v.rstrip("/"),
)
CONTAINER = Rule(
    "a container name: 3-63 lowercase letters, digits and single hyphens, starting with a "
    "letter or digit",
    lambda v: isinstance(v, str) and re.fullmatch(r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]",
                                                  v) is not None,
)
BLOB_NAME = Rule(
    "a blob name of 1-256 letters, digits, '-', '_', '.' or '/'",
    lambda v: isinstance(v, str) and re.fullmatch(r"[A-Za-z0-9_.][A-Za-z0-9_./-]{0,255}",
                                                  v) is not None,
)


def listen_address(value: Any) -> tuple[str, int] | None:
    """``(host, port)`` of a ``[metrics] listen`` value: "HOST:PORT" with HOST an IP
    address (IPv6 in brackets) or localhost, or a port alone for 127.0.0.1; else None."""
    if not isinstance(value, str):
        return None
    host, sep, port = value.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", value
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
        if ":" not in host:
            return None
    elif ":" in host:
        return None  # an IPv6 address needs its brackets: [::1]:9464
    if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
        return None
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            return None
    return host, int(port)


def is_loopback_host(host: str) -> bool:
    return host == "localhost" or ipaddress.ip_address(host).is_loopback


LISTEN = Rule(
    'an address to serve metrics on: "HOST:PORT" with HOST an IP address or localhost '
    '(e.g. "127.0.0.1:9464", "[::1]:9464"), or a port alone ("9464") for 127.0.0.1',
    lambda v: listen_address(v) is not None,
)
TEXTFILE = Rule(
    "an absolute path (may start with ~) of a file ending in .prom, for node_exporter's "
    "textfile collector",
    lambda v: isinstance(v, str) and v.startswith(("/", "~")) and v.endswith(".prom")
    and len(v.rsplit("/", 1)[-1]) > len(".prom"),
)


# --------------------------------------------------------------------------- fields
def accepts(rule: Rule, *, always_written: bool = False) -> dict[str, Any]:
    """A field's metadata: the rule of its TOML key; ``always_written`` renders it even
    at its default (the four keys the spec's example always shows for a VM)."""
    return {"rule": rule, "always_written": always_written}


def rules(kind: type[Any]) -> Mapping[str, Rule]:
    """The TOML keys of a section (or of a VM's table) and their rules, in field order."""
    return {f.name: f.metadata["rule"] for f in dataclasses.fields(kind) if "rule" in f.metadata}


# --------------------------------------------------------------------------- checks
def where(source: str, table: str) -> str:
    return f"{source} [{table}]" if table else source


def check_table(
    raw: Mapping[str, Any], rules: Mapping[str, Rule], source: str, table: str
) -> dict[str, Any]:
    """Validate ``raw`` against ``rules``; return the converted values."""
    out: dict[str, Any] = {}
    for key, value in raw.items():
        rule = rules.get(key)
        if rule is None:
            allowed = ", ".join(sorted(rules))
            raise LifecycleConfigError(
                f"{where(source, table)}: unknown key {key!r}; allowed keys: {allowed}"
            )
        if not rule.check(value):
            raise LifecycleConfigError(
                f"{where(source, table)}: {key} = {_show(value)} is not allowed: "
                f"expected {rule.allowed}"
            )
        out[key] = rule.convert(value)
    return out


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, dict):
        return "a table"
    return repr(value)
