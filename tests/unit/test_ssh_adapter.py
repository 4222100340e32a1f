"""Pure logic of the SSH adapter: reason classification, known_hosts, the watchdog."""

from __future__ import annotations

import socket
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import paramiko
import pytest

from azlin_lifecycle.adapters.ssh.deadline import DeadlineWatchdog
from azlin_lifecycle.adapters.ssh.faults import Phase, classify_failure
from azlin_lifecycle.adapters.ssh.known_hosts import HostKeyChanged, KnownHosts
from azlin_lifecycle.models import SshFault
from azlin_lifecycle.paths import host_key_name

F = SshFault


@pytest.mark.parametrize(
    ("exc", "phase", "passed", "fault", "reason"),
    [
        (ConnectionRefusedError(111, "Connection refused"), Phase.CONNECT, False, F.REFUSED,
         "connection refused"),
        (TimeoutError("timed out"), Phase.CONNECT, False, F.CONNECT_TIMEOUT, "timed out"),
        (OSError(113, "No route to host"), Phase.CONNECT, False, F.NETWORK_DOWN,
         "monitor's network unreachable (No route to host)"),
        (OSError(101, "Network is unreachable"), Phase.CONNECT, False, F.NETWORK_DOWN,
         "monitor's network unreachable (Network is unreachable)"),
        (socket.gaierror(-2, "Name or service not known"), Phase.CONNECT, False,
         F.NAME_RESOLUTION, "name resolution failed"),
        (socket.gaierror(-3, "Temporary failure in name resolution"), Phase.CONNECT, False,
         F.NAME_RESOLUTION, "name resolution failed"),
        (paramiko.SSHException("Error reading SSH protocol banner"), Phase.HANDSHAKE, False,
         F.HUNG, "timed out (hung)"),
        (paramiko.SSHException("No existing session"), Phase.HANDSHAKE, False, F.HUNG,
         "timed out (hung)"),
        (paramiko.SSHException("Negotiation failed."), Phase.HANDSHAKE, True, F.HUNG,
         "timed out (hung)"),
        (paramiko.SSHException("Timeout opening channel."), Phase.SESSION, False, F.HUNG,
         "timed out (hung)"),
        (paramiko.AuthenticationException("Authentication failed."), Phase.AUTH, False,
         F.AUTH_FAILED, "authentication failed"),
        (paramiko.BadAuthenticationType("Bad authentication type", ["password"]), Phase.AUTH,
         False, F.AUTH_FAILED, "authentication failed"),
        (paramiko.PasswordRequiredException("Private key file is encrypted"), Phase.CONNECT,
         False, F.KEY_UNREADABLE, "private key missing or unreadable: it needs a passphrase"),
        (paramiko.AuthenticationException("Authentication timeout."), Phase.AUTH, False, F.HUNG,
         "timed out (hung)"),
        (HostKeyChanged("x"), Phase.HANDSHAKE, False, F.HOST_KEY_CHANGED, "host key changed"),
        (TimeoutError(), Phase.COMMAND, False, F.COMMAND_TIMEOUT, "command timed out"),
        (paramiko.SSHException("Channel closed."), Phase.COMMAND, True, F.COMMAND_TIMEOUT,
         "command timed out"),
        (ConnectionResetError(104, "Connection reset by peer"), Phase.HANDSHAKE, False,
         F.CONNECTION_LOST, "connection lost"),
        (paramiko.SSHException("Incompatible version (1.5 instead of 2.0)"), Phase.HANDSHAKE,
         False, F.OTHER, "ssh error: Incompatible version (1.5 instead of 2.0)"),
    ],
)
def test_classify_failure(exc: BaseException, phase: Phase, passed: bool, fault: SshFault,
                          reason: str) -> None:
    assert classify_failure(exc, phase, passed) == (fault, reason)


def test_only_guest_side_faults_count_toward_a_restart() -> None:
    guest = {f for f in SshFault if f.guest_side}
    assert guest == {F.REFUSED, F.CONNECT_TIMEOUT, F.HUNG, F.CONNECTION_LOST,
                     F.COMMAND_TIMEOUT}
    needs_you = {f for f in SshFault if f.needs_you}
    assert needs_you == set(SshFault) - guest - {F.NOT_APPLICABLE}


def test_banner_eof_is_a_lost_connection_not_hung() -> None:
    try:
        try:
            raise EOFError()
        except EOFError as eof:
            raise paramiko.SSHException("Error reading SSH protocol banner") from eof
    except paramiko.SSHException as exc:
        assert classify_failure(exc, Phase.HANDSHAKE, False) == (F.CONNECTION_LOST,
                                                                 "connection lost")


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> list[paramiko.PKey]:
    base = tmp_path_factory.mktemp("keys")
    out = []
    for i in range(3):
        path = base / f"k{i}"
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
        out.append(paramiko.PKey.from_path(path))
    return out


def test_bad_host_key_exception_is_host_key_changed(keys: list[paramiko.PKey]) -> None:
    exc = paramiko.BadHostKeyException("h", keys[0], keys[1])
    assert classify_failure(exc, Phase.HANDSHAKE, False) == (F.HOST_KEY_CHANGED,
                                                             "host key changed")


def test_host_key_name() -> None:
    assert host_key_name("vm1.example", 22) == "vm1.example"
    assert host_key_name("127.0.0.1", 2222) == "[127.0.0.1]:2222"


def test_known_hosts_accepts_new_then_pins(tmp_path: Path, keys: list[paramiko.PKey]) -> None:
    first, second = keys[0], keys[1]
    hosts = KnownHosts(tmp_path / "kh" / "known_hosts")
    hosts.verify("[127.0.0.1]:2200", first)
    hosts.verify("[127.0.0.1]:2200", first)
    assert hosts.path.read_text() == f"[127.0.0.1]:2200 ssh-ed25519 {first.get_base64()}\n"
    with pytest.raises(HostKeyChanged):
        hosts.verify("[127.0.0.1]:2200", second)
    # A key written by another process is seen (the cache follows the file).
    other = KnownHosts(hosts.path)
    other.verify("[127.0.0.1]:2201", second)
    with pytest.raises(HostKeyChanged):
        hosts.verify("[127.0.0.1]:2201", first)
    assert len(hosts.path.read_text().splitlines()) == 2


def _first_contacts(count: int, hosts_of: Callable[[], KnownHosts],
                    keys: list[paramiko.PKey]) -> list[BaseException]:
    """``count`` threads each record host ``[127.0.0.1]:3000+i`` at the same moment; what
    they raised."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def record(i: int) -> None:
        hosts = hosts_of()
        barrier.wait()
        try:
            hosts.verify(f"[127.0.0.1]:{3000 + i}", keys[i % 3])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(i,)) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_first_contacts_all_land(tmp_path: Path, keys: list[paramiko.PKey]) -> None:
    path = tmp_path / "known_hosts"
    # one KnownHosts per thread: no shared in-memory state, only the file
    assert _first_contacts(24, lambda: KnownHosts(path), keys) == []
    check = paramiko.HostKeys(str(path))
    for i in range(24):
        entry = check.lookup(f"[127.0.0.1]:{3000 + i}")
        assert entry is not None and entry["ssh-ed25519"] == keys[i % 3]


def test_watchdog_runs_only_uncancelled_actions_at_their_deadline() -> None:
    dog = DeadlineWatchdog()
    fired: list[tuple[str, float]] = []
    start = time.monotonic()
    try:
        dog.watch(start + 0.3, lambda: fired.append(("late", time.monotonic() - start)))
        token = dog.watch(start + 0.1, lambda: fired.append(("cancelled", 0.0)))
        dog.watch(start + 0.15, lambda: fired.append(("early", time.monotonic() - start)))
        dog.cancel(token)
        time.sleep(0.5)
    finally:
        dog.stop()
    assert [name for name, _ in fired] == ["early", "late"]
    assert 0.14 <= fired[0][1] < 0.3
    assert 0.29 <= fired[1][1] < 0.5


def test_a_slow_reread_never_hides_keys_recorded_meanwhile(
        tmp_path: Path, keys: list[paramiko.PKey], monkeypatch: pytest.MonkeyPatch) -> None:
    """One shared KnownHosts, first contacts in parallel, file re-reads slowed down: a
    re-read that started before a write must not replace the newer in-memory view."""
    from azlin_lifecycle.adapters.ssh import known_hosts

    parse = known_hosts._parse_known_hosts

    def slow_parse(text: str) -> Any:
        time.sleep(0.005)
        return parse(text)

    monkeypatch.setattr(known_hosts, "_parse_known_hosts", slow_parse)
    hosts = KnownHosts(tmp_path / "known_hosts")
    assert _first_contacts(64, lambda: hosts, keys) == []
    assert len(hosts.path.read_text().splitlines()) == 64
