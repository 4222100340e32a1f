"""The message a notification hook sends: a short title and a body a person can read.

The body lists every key of the hook's context, whatever the event put there (an
incident's id, a repeat count, a digest's VMs …): the well-known ones first, the rest in
name order, so a key added to the context shows up without a change here.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Mapping

TITLE_PREFIX = "azlin-lifecycle"
FIRST = ("state", "previous_state", "reason", "action", "restart_result", "failure_count",
         "healing")
MAX_VALUE_CHARS = 500


def title(event: str, vm_name: str) -> str:
    """``azlin-lifecycle: web-1 on_failure``."""
    return f"{TITLE_PREFIX}: {vm_name} {event}"


def body(event: str, vm_name: str, context: Mapping[str, object], when: str) -> str:
    lines = [f"VM {vm_name}: {event} at {when}"]
    keys = [k for k in FIRST if k in context]
    keys += sorted(k for k in context if k not in FIRST)
    lines += [f"{key.replace('_', ' ')}: {_text(context[key])}" for key in keys]
    return "\n".join(lines)


def _text(value: object) -> str:
    if isinstance(value, enum.Enum):
        value = value.value
    if isinstance(value, dt.datetime):
        text = value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    elif isinstance(value, Mapping):
        text = ", ".join(f"{k}={_text(v)}" for k, v in value.items())
    elif isinstance(value, set | frozenset):
        text = ", ".join(sorted(_text(v) for v in value))
    elif isinstance(value, list | tuple):
        text = ", ".join(_text(v) for v in value)
    elif value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    else:
        text = str(value)
    text = " ".join(text.split())  # one line per key
    if len(text) > MAX_VALUE_CHARS:
        text = text[:MAX_VALUE_CHARS] + "…"
    return text
