"""What a hook target is — a script, our https:// JSON webhook, or a notification URL
(apprise's slack://, ntfys:// …) — and how it may be shown: the one place that decides,
for the executor, the CLI and the config's errors.

Cheap to import: neither adapter module imports anything heavy at module level.
"""

from __future__ import annotations

from typing import Literal

from .adapters import notify, webhook

TargetKind = Literal["script", "webhook", "notify"]


def kind_of(target: str) -> TargetKind:
    if target.startswith("https://"):
        return "webhook"
    return "notify" if notify.is_notification_url(target) else "script"


def redacted(target: str) -> str:
    """A hook target as logs, errors and the CLI show it: a script's path as it is, a
    webhook only by its host (:func:`.adapters.webhook.redacted`), a notification URL
    by its scheme and network host (:func:`.adapters.notify.redacted`)."""
    how = kind_of(target)
    if how == "webhook":
        return webhook.redacted(target)
    return notify.redacted(target) if how == "notify" else target
