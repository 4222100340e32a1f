"""The README's "Metrics for Prometheus": its table names exactly the families the daemon
exposes, its TOML loads, and Prometheus's own promtool accepts the scrape config and
runs the alerting rules on series of a failing VM and of a daemon that stopped sweeping."""

from __future__ import annotations

import re
import shutil
import subprocess
import threading
from pathlib import Path
from types import SimpleNamespace

import pytest
from prometheus_client.registry import CollectorRegistry

from azlin_lifecycle.adapters.prometheus import Sources
from azlin_lifecycle.adapters.prometheus.collector import EventCounts, FleetCollector
from azlin_lifecycle.config import LifecycleConfig, parse_toml
from azlin_lifecycle.fleet_book import FleetBook
from azlin_lifecycle.leadership import LeadershipView, Role
from azlin_lifecycle.state import StateStore
from tests.integration.conftest import require

README = Path(__file__).resolve().parents[2] / "README.md"


def section() -> str:
    text = README.read_text()
    return text.split("## Metrics for Prometheus\n", 1)[1].split("\n## ", 1)[0]


def blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def test_the_table_names_every_family_the_daemon_exposes(tmp_path: Path) -> None:
    documented = re.findall(r"^\| `(azlin_lifecycle_[a-z_]+)` \| (\w+) \|", section(), re.M)
    store = StateStore(tmp_path / "state.db")
    try:
        ha = SimpleNamespace(view=lambda: LeadershipView(Role.LEADER, 0.0, "x"))
        registry = CollectorRegistry(auto_describe=False)
        registry.register(FleetCollector(Sources(FleetBook(store), threading.Lock(), store, ha),  # type: ignore[arg-type]
                                         LifecycleConfig, EventCounts()))
        exposed = [(m.name + ("_total" if m.type == "counter" else ""), m.type)
                   for m in registry.collect()]
    finally:
        store.close()
    # last_sweep_timestamp appears after the first sweep; the rest always.
    exposed.append(("azlin_lifecycle_last_sweep_timestamp_seconds", "gauge"))
    assert sorted(documented) == sorted(exposed)


def test_the_toml_loads(caplog: pytest.LogCaptureFixture) -> None:
    [example] = blocks(section(), "toml")
    config = parse_toml(example, "README")
    assert config.metrics.address == ("127.0.0.1", 9464)
    assert config.metrics.textfile == "/var/lib/prometheus/node-exporter/azlin-lifecycle.prom"
    configuration = README.read_text().split("## Configuration\n", 1)[1]
    assert parse_toml(blocks(configuration, "toml")[0], "README").metrics.enabled is False


RULE_TESTS = """
rule_files: [rules.yml]
evaluation_interval: 1m
tests:
  - interval: 1m
    input_series:
      - series: 'azlin_lifecycle_vm_check_success{vm="web-1",resource_group="rg"}'
        values: '1 1 0x14'
      - series: 'azlin_lifecycle_vm_power_state{vm="web-1",resource_group="rg",state="running"}'
        values: '1x16'
      - series: 'azlin_lifecycle_vm_power_state{vm="web-1",resource_group="rg",state="stopped"}'
        values: '0x16'
      - series: 'azlin_lifecycle_vm_check_success{vm="off-1",resource_group="rg"}'
        values: '0x16'
      - series: 'azlin_lifecycle_vm_power_state{vm="off-1",resource_group="rg",state="stopped"}'
        values: '1x16'
      - series: 'azlin_lifecycle_last_sweep_timestamp_seconds'
        values: '0+60x5 300x11'
    alert_rule_test:
      - eval_time: 11m
        alertname: AzlinVmFailing
      - eval_time: 13m
        alertname: AzlinVmFailing
        exp_alerts:
          - exp_labels: {severity: page, vm: web-1, resource_group: rg}
            exp_annotations:
              summary: "web-1 (rg) has failed its health checks for 10 minutes"
      - eval_time: 9m
        alertname: AzlinLifecycleNotSweeping
      - eval_time: 16m
        alertname: AzlinLifecycleNotSweeping
        exp_alerts:
          - exp_labels: {severity: page}
            exp_annotations:
              summary: "azlin-lifecycle has not checked any VM for 5 minutes (stopped, stuck, or not scraped)"
"""


def test_promtool_accepts_the_scrape_config_and_runs_the_rules(tmp_path: Path) -> None:
    require(shutil.which("promtool") is not None, "promtool (Debian's prometheus) is missing")
    yaml = blocks(section(), "yaml")
    scrape = next(b for b in yaml if "scrape_configs" in b)
    rules = next(b for b in yaml if "groups:" in b)
    (tmp_path / "prometheus.yml").write_text(scrape)
    (tmp_path / "rules.yml").write_text(rules)
    (tmp_path / "tests.yml").write_text(RULE_TESTS)
    for argv in (["check", "config", "--syntax-only", "prometheus.yml"],
                 ["check", "rules", "rules.yml"], ["test", "rules", "tests.yml"]):
        done = subprocess.run(["promtool", *argv], cwd=tmp_path, capture_output=True,
                              text=True, timeout=60)
        assert done.returncode == 0, f"promtool {' '.join(argv)}:\n{done.stdout}{done.stderr}"
