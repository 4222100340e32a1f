"""ParamikoSshProber against a real OpenSSH sshd and real sockets on 127.0.0.1."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from azlin_lifecycle.adapters.ssh.prober import ParamikoSshProber
from azlin_lifecycle.models import SshFault, VMTarget
from azlin_lifecycle.paths import known_hosts_path
from tests.support.sshd import SshServer, free_port, keygen

pytestmark = pytest.mark.sshd


@pytest.fixture
def prober() -> Iterator[ParamikoSshProber]:
    p = ParamikoSshProber()
    yield p
    p.close()


def target_for(server: SshServer, key: Path | None = None, port: int | None = None) -> VMTarget:
    return VMTarget(
        name="vm-1",
        subscription_id="sub",
        resource_group="rg",
        ssh_host=server.host,
        ssh_port=port or server.port,
        ssh_user=server.user,
        ssh_key=str(key or server.client_key),
    )


def test_metrics_from_a_real_shell_parse_to_real_numbers(
    sshd: SshServer, prober: ParamikoSshProber
) -> None:
    result = prober.probe(target_for(sshd), timeout=10)
    assert result.reachable, result.reason
    assert result.reason is None
    m = result.metrics
    assert m is not None
    for value in (m.cpu_percent, m.memory_percent, m.disk_percent):
        assert value is not None and 0.0 <= value <= 100.0
    assert m.load_1m is not None and m.load_5m is not None and m.load_15m is not None
    assert 0 < result.duration_seconds < 10


def test_first_contact_records_the_host_key(sshd: SshServer, prober: ParamikoSshProber) -> None:
    assert not known_hosts_path().exists()
    assert prober.probe(target_for(sshd), timeout=10).reachable
    kind, b64 = sshd.host_public_key()
    lines = known_hosts_path().read_text().splitlines()
    assert lines == [f"[127.0.0.1]:{sshd.port} {kind} {b64}"]
    assert known_hosts_path().stat().st_mode & 0o777 == 0o600
    # A second prober trusts the recorded key and writes nothing new.
    other = ParamikoSshProber()
    try:
        assert other.probe(target_for(sshd), timeout=10).reachable
    finally:
        other.close()
    assert known_hosts_path().read_text().splitlines() == lines


def test_changed_host_key_is_refused_and_never_recorded(
    sshd: SshServer, prober: ParamikoSshProber
) -> None:
    target = target_for(sshd)
    assert prober.probe(target, timeout=10).reachable
    before = known_hosts_path().read_bytes()
    sshd.restart(new_host_key=True)
    prober.forget(target)
    result = prober.probe(target, timeout=10)
    assert (result.reachable, result.reason) == (False, "host key changed")
    fresh = ParamikoSshProber()
    try:
        again = fresh.probe(target, timeout=10)
    finally:
        fresh.close()
    assert again.reason == "host key changed"
    assert known_hosts_path().read_bytes() == before


def test_closed_port_is_connection_refused(tmp_path: Path, prober: ParamikoSshProber) -> None:
    key = keygen(tmp_path / "k")
    target = VMTarget("vm", "s", "rg", "127.0.0.1", free_port(), "root", str(key))
    result = prober.probe(target, timeout=5)
    assert (result.reachable, result.reason) == (False, "connection refused")


def test_silent_listener_is_hung_and_the_probe_keeps_its_deadline(
    tmp_path: Path, prober: ParamikoSshProber
) -> None:
    key = keygen(tmp_path / "k")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(8)  # the kernel completes the TCP handshake; nobody ever speaks
        port = listener.getsockname()[1]
        target = VMTarget("vm", "s", "rg", "127.0.0.1", port, "root", str(key))
        started = time.monotonic()
        result = prober.probe(target, timeout=1.5)
        elapsed = time.monotonic() - started
    assert (result.reachable, result.reason) == (False, "timed out (hung)")
    assert elapsed < 1.5 + 1.0


def test_wrong_key_is_authentication_failed(
    sshd: SshServer, prober: ParamikoSshProber, tmp_path: Path
) -> None:
    stranger = keygen(tmp_path / "stranger")
    result = prober.probe(target_for(sshd, key=stranger), timeout=10)
    assert (result.reachable, result.reason) == (False, "authentication failed")


def test_missing_key_is_key_unreadable(
    sshd: SshServer, prober: ParamikoSshProber, tmp_path: Path
) -> None:
    result = prober.probe(target_for(sshd, key=tmp_path / "missing"), timeout=10)
    assert not result.reachable
    assert result.reason is not None
    assert result.fault is SshFault.KEY_UNREADABLE
    assert result.reason.startswith("private key missing or unreadable: ")


def test_second_probe_reuses_the_connection(sshd: SshServer, prober: ParamikoSshProber) -> None:
    target = target_for(sshd)
    first = prober.probe(target, timeout=10)
    transport = prober.cached_transport(target)
    second = prober.probe(target, timeout=10)
    assert first.reachable and second.reachable
    assert transport is not None and prober.cached_transport(target) is transport
    assert prober.connections_opened == 1
    prober.forget(target)
    assert prober.cached_transport(target) is None
    assert not transport.is_active()


def test_openssh_and_paramiko_sessions_use_aes_gcm(
        sshd: SshServer, prober: ParamikoSshProber) -> None:
    """AEAD first: its integrity check runs in OpenSSL, not in Python per packet."""
    target = target_for(sshd)
    assert prober.probe(target, timeout=10).reachable
    transport = prober.cached_transport(target)
    assert transport is not None
    assert (transport.local_cipher, transport.remote_cipher) == ("aes128-gcm@openssh.com",) * 2


def test_probe_after_sshd_restart_reconnects(sshd: SshServer, prober: ParamikoSshProber) -> None:
    target = target_for(sshd)
    assert prober.probe(target, timeout=10).reachable
    old = prober.cached_transport(target)
    sshd.restart()  # same host key; open sessions are killed like a VM reboot
    result = prober.probe(target, timeout=10)
    assert result.reachable, result.reason
    assert result.metrics is not None
    assert prober.connections_opened == 2
    assert prober.cached_transport(target) is not old


def test_non_zero_exit_is_reachable_without_metrics(
    sshd: SshServer, prober: ParamikoSshProber
) -> None:
    pub = sshd.client_key.with_suffix(".pub").read_text()
    sshd.authorized_keys.write_text(f'command="exit 3" {pub}')
    result = prober.probe(target_for(sshd), timeout=10)
    assert (result.reachable, result.reason, result.metrics) == (True, None, None)


def test_slow_command_is_command_timed_out_within_the_deadline(
    sshd: SshServer, prober: ParamikoSshProber
) -> None:
    pub = sshd.client_key.with_suffix(".pub").read_text()
    sshd.authorized_keys.write_text(f'command="sleep 30" {pub}')
    started = time.monotonic()
    result = prober.probe(target_for(sshd), timeout=2)
    assert (result.reachable, result.reason) == (False, "command timed out")
    assert time.monotonic() - started < 3


def test_concurrent_probes_of_one_vm_share_one_connection(
    sshd: SshServer, prober: ParamikoSshProber
) -> None:
    target = target_for(sshd)
    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(lambda _: prober.probe(target, timeout=20), range(5)))
    assert all(r.reachable for r in results), [r.reason for r in results]
    assert prober.connections_opened == 1
