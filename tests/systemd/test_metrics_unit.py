"""[metrics] under the installed, sandboxed unit: the daemon serves on 127.0.0.1 and
rewrites a textfile in a directory that ``install`` opened for it (the rest of home stays
read-only); the unit still verifies and scores <= 4.0 in ``systemd-analyze --user
security``. The test scrapes from outside the sandbox, as Prometheus would."""

from __future__ import annotations

import re
import socket
import stat
import time
import urllib.request
from collections.abc import Iterator

import pytest

from tests.support.real_unit import (
    UNIT,
    SimulatorProcess,
    install_unit,
    uninstall_unit,
)
from tests.support.user_session import UserSession


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def metrics_unit(session: UserSession) -> Iterator[tuple[UserSession, int]]:
    fleet = SimulatorProcess(session, name="sim-metrics", vms=2).start()
    port = free_port()
    textfile_dir = session.home / "node-exporter"
    try:
        session.run_as_user(["mkdir", "-p", "-m", "0755", str(textfile_dir)], check=True)
        fleet.write_config(session.home / ".azlin" / "lifecycle-config.toml", extra_toml={
            "metrics": {"listen": f"127.0.0.1:{port}",
                        "textfile": str(textfile_dir / "azlin.prom"),
                        "textfile_interval_seconds": 5}})
        install_unit(session, dropin=f"[Service]\nEnvironment=PATH={fleet.bin_dir}:/usr/bin:/bin\n")
        yield session, port
    finally:
        session.systemctl("stop", UNIT, check=False)
        uninstall_unit(session)
        fleet.stop()
        session.run_as_user(["rm", "-rf", str(textfile_dir)])


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as answer:
        return str(answer.read().decode())


def test_the_sandboxed_daemon_serves_on_loopback_and_writes_its_textfile(
        metrics_unit: tuple[UserSession, int]) -> None:
    session, port = metrics_unit
    home = session.home
    unit = (home / ".config/systemd/user" / UNIT).read_text()
    assert re.search(rf"^ReadWritePaths=.* -{home}/node-exporter$", unit, re.M), unit
    verify = session.run_as_user(["systemd-analyze", "--user", "verify",
                                  str(home / ".config/systemd/user" / UNIT)])
    assert (verify.returncode, verify.stderr.strip()) == (0, ""), verify.stderr
    security = session.run_as_user(["systemd-analyze", "--user", "security", UNIT])
    score = re.search(r"Overall exposure level for \S+: (\d+\.\d+)", security.stdout)
    assert score, security.stdout[-500:]
    print(f"systemd-analyze --user security {UNIT} (with [metrics]): {score.group(1)}")
    assert float(score.group(1)) <= 4.0, security.stdout

    session.systemctl("reset-failed", UNIT, check=False)
    session.systemctl("start", UNIT)
    textfile = home / "node-exporter" / "azlin.prom"
    text = ""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            text = scrape(port)
        except OSError:
            text = ""
        if text.count("azlin_lifecycle_vm_check_success{") == 2 and textfile.exists():
            break
        time.sleep(0.5)
    assert re.findall(r'^azlin_lifecycle_vm_check_success\{resource_group="rg-sim",'
                      r'vm="vm-00[12]"\} 1\.0$', text, re.M), text[-2000:]
    assert stat.S_IMODE(textfile.stat().st_mode) == 0o644
    assert textfile.stat().st_uid == session.uid
    assert "# TYPE azlin_lifecycle_vm_check_success gauge" in textfile.read_text()
    session.systemctl("stop", UNIT)
    with pytest.raises(OSError):
        scrape(port)
