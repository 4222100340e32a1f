"""Every command the README shows is run by a test: the blocks are executed as written.

``console`` blocks hold commands (``$ ...``). Each block is claimed below by the test that
runs it; a new block that no test claims fails ``test_every_console_block_is_run``.
The ``sh`` blocks of the install section (.deb, pipx) are what ``make package`` runs in
tests/packaging; the hook script example is run here, by ``hook test``.
The only change made to a block before running it: ``/tmp/azlin-sim`` becomes a private
temporary directory, so parallel runs cannot collide.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from azlin_lifecycle.simulator import SimulatedFleet

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
BIN = Path(sys.executable).parent

# First command of a block -> where it runs.
CLAIMS = {
    "make demo-ha": "test_make_demo_ha_block",
    "make demo": "test_make_demo_block (and `make test` is what .ci/run runs)",
    "azlin lifecycle enable web-1": "test_using_block",
    "azlin lifecycle simulate run --vms 2 --private": "test_rehearse_bastion_block",
    "azlin lifecycle simulate run": "test_rehearse_block",
    ".venv/bin/azlin-lifecycle install --now": "tests/systemd/test_readme_systemd.py",
}


def blocks(language: str) -> list[str]:
    text = README.read_text()
    return re.findall(rf"^```{language}\n(.*?)^```$", text, flags=re.S | re.M)


def console_blocks() -> dict[str, list[str]]:
    """First command -> the block's commands."""
    out = {}
    for body in blocks("console"):
        cmds = [line[2:].split("  #")[0].rstrip() for line in body.splitlines()
                if line.startswith("$ ")]
        out[cmds[0]] = cmds
    return out


def claimed(first: str) -> str | None:
    return next((k for k in CLAIMS if first.startswith(k)), None)


def block(prefix: str) -> list[str]:
    return next(cmds for first, cmds in console_blocks().items() if first.startswith(prefix))


def run_script(lines: list[str], env: dict[str, str], cwd: Path,
               timeout: float = 240) -> subprocess.CompletedProcess[str]:
    script = "set -e\n" + "\n".join(lines) + "\n"
    return subprocess.run(["bash", "-c", script], env=env, cwd=cwd, text=True,
                          capture_output=True, timeout=timeout)


def base_env(home: Path) -> dict[str, str]:
    return {**os.environ, "HOME": str(home), "PATH": f"{BIN}:{os.environ['PATH']}",
            "AZLIN_CONFIG_DIR": str(home / ".azlin"),
            "XDG_STATE_HOME": str(home / ".local" / "state")}


def test_every_console_block_is_run() -> None:
    found = console_blocks()
    assert found, "the README shows no commands?"
    unclaimed = [first for first in found if claimed(first) is None]
    assert not unclaimed, f"README blocks no test runs: {unclaimed}"
    assert "make test" in block("make demo")
    assert "make test" in (ROOT / ".ci" / "run").read_text()
    systemd_test = ROOT / "tests" / "systemd" / "test_readme_systemd.py"
    assert "install --now" in systemd_test.read_text()


def test_rehearse_block(tmp_path: Path) -> None:
    sim = tmp_path / "azlin-sim"
    lines = [line.replace("/tmp/azlin-sim", str(sim)) for line in block(
        "azlin lifecycle simulate run")]
    lines.append("kill %1 && wait")  # the simulator started with & in the first line
    result = run_script(lines, base_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "healthy" in result.stdout and "vm-002 is unhealthy" in result.stdout
    assert "UNHEALTHY: SSH timed out (hung)" in result.stdout
    assert re.search(r"vm-002\s+running\s+\S+\s+hung", result.stdout), result.stdout


def test_rehearse_bastion_block(tmp_path: Path) -> None:
    sim = tmp_path / "azlin-bastion"
    lines = [line.replace("/tmp/azlin-bastion", str(sim)) for line in block(
        "azlin lifecycle simulate run --vms 2 --private")]
    lines.append("kill %1 && wait")
    result = run_script(lines, base_env(tmp_path), tmp_path)
    assert result.returncode == 0, result.stderr + result.stdout
    out = result.stdout
    assert re.search(r"health\s+healthy", out), out
    assert re.search(r"ssh\s+reachable \(Bastion azlin-bastion-eastus\)", out), out
    assert ("UNHEALTHY: SSH Bastion unreachable: azlin-bastion-eastus answered the token "
            "exchange with HTTP 500") in out, out
    assert re.search(r"consecutive failures\s+0\n", out), out
    assert "vm-002: the Bastion's fault, not counted" in out


def test_using_block(tmp_path: Path) -> None:
    """The 'Using it' commands, with web-1 a simulated VM in resource group my-rg."""
    home = tmp_path
    env = base_env(home)
    hook_body = next(b for b in blocks("sh") if "page-me" in b)
    (home / "bin").mkdir()
    hook = home / "bin" / "page-me"
    hook.write_text(hook_body)
    hook.chmod(0o755)
    with SimulatedFleet(tmp_path / "sim", 0, resource_group="my-rg") as fleet:
        fleet.add_vm("web-1")
        env.update({"PATH": f"{fleet.az_dir}:{env['PATH']}",
                    "REQUESTS_CA_BUNDLE": str(fleet.ca_path)})
        # Where web-1 is (simulated): the Azure endpoint and its SSH address.
        fleet.write_config(home / ".azlin" / "lifecycle-config.toml", restart_policy="never")
        result = run_script(block("azlin lifecycle enable web-1"), env, home)
        assert result.returncode == 0, result.stderr + result.stdout
        out = result.stdout
        assert "Monitoring web-1: every 10s, restart policy on-failure" in out
        assert re.search(r"health\s+healthy", out) and re.search(r"power state\s+running", out)
        assert re.search(r"cpu / memory / disk\s+\d+% / \d+% / \d+%", out)
        assert "daemon: unknown" in out or "daemon:" in out
        # The Troubleshooting advice: test the hook.
        tested = run_script(["azlin lifecycle hook test web-1 on_failure"], env, home)
        assert tested.returncode == 0, tested.stderr
    alerts = (home / ".azlin" / "alerts.log").read_text()
    assert "on_failure web-1: test from azlin lifecycle hook test (failure 3)" in alerts


def test_make_demo_block() -> None:
    if os.environ.get("AZLIN_LIFECYCLE_IN_MAKE_DEMO"):
        pytest.skip("already inside make demo")
    env = {**os.environ, "AZLIN_LIFECYCLE_IN_MAKE_DEMO": "1"}
    env.pop("DBUS_SESSION_BUS_ADDRESS", None)
    result = subprocess.run(["make", "demo"], cwd=ROOT, env=env, text=True,
                            capture_output=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert "vm-002 healthy again; on_healthy hook fired" in result.stdout
    assert "restart requested from Azure" in result.stdout
    assert "every check of vm-002 went through: Bastion azlin-bastion-" in result.stdout


def test_make_demo_ha_block() -> None:
    assert block("make demo-ha") == ["make demo-ha"]
    result = subprocess.run(["make", "demo-ha"], cwd=ROOT, text=True, capture_output=True,
                            timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "leads, mon-" in out and "stands by" in out
    assert re.search(r"took the lease (\d+\.\d)s after the kill", out)
    assert "Restarts requested from Azure: 1 (a failover never repeats one)" in out
    assert "interrupted by a failover" in out  # the new leader's journal line, shown

