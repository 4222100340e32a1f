"""A real Prometheus server (Debian's ``prometheus``) scrapes the daemon's [metrics]
endpoint on 127.0.0.1 every second while a hung simulated VM is detected and restarted;
its HTTP API then shows the VM's check_success going 1 -> 0 -> 1 and one restart counted.

Everything runs on loopback: the stand-in Azure and SSH fleet, the daemon (in this
process), and Prometheus with a temporary config and storage, stopped afterwards.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from azlin_lifecycle.simulator import SimulatedFleet, SshMode
from tests.integration.conftest import require
from tests.support.inprocess import running_daemon
from tests.support.simulated import fleet_in_env
from tests.support.waiting import wait_for

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
SCRAPE_CONFIG = """
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: azlin-lifecycle
    static_configs:
      - targets: ["127.0.0.1:{port}"]
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Prometheus:
    """``prometheus`` on 127.0.0.1 with its config and storage under ``directory``."""

    def __init__(self, directory: Path, target_port: int) -> None:
        directory.mkdir()
        config = directory / "prometheus.yml"
        config.write_text(SCRAPE_CONFIG.format(port=target_port))
        self.port = free_port()
        self.log = (directory / "prometheus.log").open("wb")
        self.proc = subprocess.Popen(
            [PROMETHEUS, f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=self.log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        wait_for(self._ready, 30, "Prometheus to be ready")

    def _ready(self) -> bool:
        assert self.proc.poll() is None, f"prometheus exited with {self.proc.returncode}"
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/-/ready", timeout=2) as r:
                return bool(r.status == 200)
        except OSError:
            return False

    def api(self, path: str, **params: Any) -> Any:
        url = f"http://127.0.0.1:{self.port}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=10) as answer:
            body = json.load(answer)
        assert body["status"] == "success", body
        return body["data"]

    def value(self, query: str) -> float | None:
        """An instant query's single value (None: no series)."""
        result = self.api("query", query=query)["result"]
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.log.close()


@pytest.fixture
def fleet(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[SimulatedFleet]:
    with fleet_in_env(monkeypatch, tmp_path / "sim", 2, boot_seconds=2.0, operation_seconds=1.0) as f:
        yield f


def test_prometheus_sees_a_hung_vm_fail_get_restarted_once_and_recover(
        fleet: SimulatedFleet, tmp_path: Path, isolated_dirs: Path) -> None:
    require(Path(PROMETHEUS).exists(), "prometheus (Debian's package) is not installed")
    port = free_port()
    config = isolated_dirs / "lifecycle-config.toml"
    fleet.write_config(
        config, restart_policy="on-failure", check_interval_seconds=10,
        extra_toml={"daemon": {"ssh_timeout_seconds": 2.0},
                    "healing": {"grace_period_seconds": 5},
                    "metrics": {"listen": f"127.0.0.1:{port}"},
                    "vms": {vm: {"ssh_failure_threshold": 1} for vm in fleet.vm_names}})
    prometheus = Prometheus(tmp_path / "prometheus", port)
    try:
        with running_daemon(config):
            began = time.time()
            ok = 'azlin_lifecycle_vm_check_success{vm="vm-002",resource_group="rg-sim"}'
            wait_for(lambda: prometheus.value(ok) == 1.0, 30, "vm-002 healthy in Prometheus")
            assert prometheus.value('up{job="azlin-lifecycle"}') == 1.0

            fleet.set_ssh_mode("vm-002", SshMode.HUNG)
            wait_for(lambda: prometheus.value(ok) == 0.0, 30, "vm-002 failing in Prometheus")
            restarts = ('azlin_lifecycle_vm_repairs_total{vm="vm-002",action="restart",'
                        'result="succeeded"}')
            wait_for(lambda: prometheus.value(restarts) == 1.0, 40, "one restart counted")
            wait_for(lambda: prometheus.value(ok) == 1.0, 40, "vm-002 healthy again")
            time.sleep(2)  # a range query's last step lands on a sample of the healthy VM
            ended = time.time()
            assert prometheus.value(restarts) == 1.0
            assert prometheus.value('sum(azlin_lifecycle_vm_repairs_total)') == 1.0
            assert prometheus.value('azlin_lifecycle_vm_check_success{vm="vm-001"}') == 1.0
            assert prometheus.value('azlin_lifecycle_vm_restart_budget_remaining'
                                    '{vm="vm-002"}') == 2.0
            assert prometheus.value('sum(azlin_lifecycle_azure_requests_total{method="POST"})')
            assert prometheus.value("azlin_lifecycle_sweep_duration_seconds_count")
            assert prometheus.value("azlin_lifecycle_repairs_in_flight") == 0.0
            # The series as Prometheus stored it: healthy, then failing, then healthy.
            series = prometheus.api("query_range", query=ok, start=began, end=ended,
                                    step="1s")["result"]
            values = [float(v) for _, v in series[0]["values"]]
            changes = [v for i, v in enumerate(values) if i == 0 or v != values[i - 1]]
            assert changes == [1.0, 0.0, 1.0], values
            failures = prometheus.value(
                'max_over_time(azlin_lifecycle_vm_consecutive_failures{vm="vm-002"}[5m])')
            assert failures == 1.0
    finally:
        prometheus.stop()
