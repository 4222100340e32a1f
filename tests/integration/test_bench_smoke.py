"""The shipped benchmarks still run and print their tables (their figures are in the README;
this checks the scripts work, not the figures)."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_cli_startup_benchmark_prints_its_table() -> None:
    out = subprocess.run([sys.executable, str(ROOT / "bench" / "cli_startup.py"), "-n", "1"],
                         capture_output=True, text=True, timeout=120, check=True).stdout
    assert "median ms" in out and "config validate" in out


def test_fleet_benchmark_quick_run_prints_its_table(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "fleet.py"), "--quick"],
                            capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for row in ("cold sweep wall", "sequential baseline wall", "speedup vs baseline (warm)",
                "daemon idle RSS", "detection (hung -> on_failure)",
                "[metrics] on: RSS added at 100 VMs"):
        assert row in out, row


def test_soak_benchmark_prints_a_row_per_sweep() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "soak.py"), "3", "2"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line.split() for line in result.stdout.splitlines()[1:]]
    assert [row[0] for row in rows] == ["1", "2"]
    assert all(float(row[1]) > 10 for row in rows)  # the daemon's RSS in MB


def test_ssh_probe_cost_benchmark_prints_its_table() -> None:
    """Each way's row with two positive figures; fabric's rows only when it is installed,
    else the line that says how to add them."""
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "ssh_probe_cost.py"), "-n", "3"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    ways = ["ParamikoSshProber.probe (this project)", "paramiko SSHClient.exec_command",
            "paramiko SSHClient.exec_command + TCP_NODELAY"]
    fabric_ways = ["fabric Connection.run", "fabric Connection.run + TCP_NODELAY"]
    has_fabric = importlib.util.find_spec("fabric") is not None
    for way in ways + (fabric_ways if has_fabric else []):
        row = next((line for line in lines if line.startswith(way + "  ")), None)
        assert row is not None, way
        cpu, wall = (float(x) for x in row[len(way):].split())
        assert cpu > 0 and wall > 0, row
    assert any(line.startswith("fabric Connection.run") for line in lines) is has_fabric
    assert ("pip install fabric" in result.stdout) is not has_fabric


def test_failover_benchmark_prints_its_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "failover.py"), "--runs", "1"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    for row in ("failover after SIGKILL of the leader", "failover after a clean stop",
                "leader cut off from storage: it stops repairing after"):
        line = next(line for line in result.stdout.splitlines() if line.startswith(row))
        seconds = re.search(r"\s(\d+\.\d) s\s", line)
        assert seconds is not None and float(seconds.group(1)) > 0, line


def test_bastion_benchmark_prints_its_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "bastion.py"), "--vms", "4",
                             "--warm", "1", "--no-reference"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    for row in ("cold sweep wall (new tunnels)", "warm sweep wall (median)",
                "warm client CPU per check", "extra RSS per kept tunnel + connection"):
        assert row in result.stdout, row
    assert re.search(r"healthy, cold / warm +4 / 4 of 4", result.stdout), result.stdout
    assert re.search(r"token exchanges / tunnels / deletes +4 / 4 / 4", result.stdout)


def test_metrics_cost_benchmark_prints_its_figures() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "metrics_cost.py"), "--quick"],
                            capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    off = next(line for line in lines if line.startswith("[metrics] off"))
    assert "0, 0, 0.0 MB" in off and off.rstrip().endswith("the switch started, off")
    on = next(line for line in lines if line.startswith("[metrics] on: RSS added at 100 VMs"))
    assert re.search(r"\s\d+\.\d\d MB\s", on), on
    assert any(line.startswith("[metrics] scrape at 100 VMs") for line in lines)


def test_notify_cost_benchmark_prints_its_table() -> None:
    result = subprocess.run([sys.executable, str(ROOT / "bench" / "notify_cost.py"),
                             "--runs", "1"], capture_output=True, text=True, timeout=300,
                            cwd=ROOT)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = result.stdout.splitlines()
    without = [line for line in lines if line.startswith("without")]
    assert len(without) == 1 and without[0].rstrip().endswith("no")  # apprise not loaded
    assert any("first message sent to the ntfy stand-in" in line for line in lines)
