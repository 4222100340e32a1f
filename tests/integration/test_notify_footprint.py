"""apprise is loaded only for a notification URL: a daemon whose hooks are scripts and
https:// webhooks never imports it (bench/notify_cost.py measures what it costs)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

PROGRAM = r"""
import json, sys
from pathlib import Path
from azlin_lifecycle.wiring import build_hooks, load_adapter_libraries
load_adapter_libraries()
import azlin_lifecycle.daemon
from azlin_lifecycle.config import load_file
from azlin_lifecycle.cli.output import shown_target
config = load_file(Path(sys.argv[1]))
hooks = build_hooks(config, lambda vm: config.vms[vm].hooks)
ran = [hooks.execute_hook(kind, "web-1", {"reason": "footprint"}).success
       for kind in sorted(config.vms["web-1"].hooks)]
shown = [shown_target(t) for t in config.vms["web-1"].hooks.values()]
hooks.shutdown()
print(json.dumps({"ran": ran, "apprise": sorted(m for m in sys.modules
                                                if m.split(".")[0] == "apprise")[:3]}))
"""

CONFIG = """
[vms.web-1]
enabled = true
check_interval_seconds = 60
restart_policy = "never"
ssh_failure_threshold = 3

[vms.web-1.hooks]
on_failure = "{script}"
on_healthy = "https://127.0.0.1:9/services/T0/B0/secret"
"""


def loaded(tmp_path: Path, extra: str = "") -> dict[str, list[object]]:
    script = tmp_path / "page-me"
    script.write_text("#!/bin/sh\nexit 0\n")
    script.chmod(0o700)
    config = tmp_path / "config.toml"
    config.write_text(CONFIG.format(script=script) + extra)
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(config)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    result: dict[str, list[object]] = json.loads(done.stdout)
    return result


def test_without_a_notification_url_apprise_is_never_imported(tmp_path: Path) -> None:
    seen = loaded(tmp_path)
    assert seen["ran"] == [True, False]  # the script ran; nobody listens on port 9
    assert seen["apprise"] == []


@pytest.mark.parametrize("target", ["ntfy://127.0.0.1:9/topic",  # loopback only: it is sent
                                    "gotify://127.0.0.1:9/AppToken"])
def test_a_notification_url_brings_it_in(tmp_path: Path, target: str) -> None:
    seen = loaded(tmp_path, f'on_restart = "{target}"\n')
    assert seen["apprise"] != []  # the check above could tell
