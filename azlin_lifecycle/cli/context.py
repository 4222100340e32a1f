"""Shared command-line state: which config file, and the objects built from it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import click

from ..manager import LifecycleManager


@dataclass
class AppContext:
    config_path: Path | None = None
    debug: bool = False

    def manager(self) -> LifecycleManager:
        return LifecycleManager(self.config_path)


pass_app = click.make_pass_decorator(AppContext, ensure=True)
