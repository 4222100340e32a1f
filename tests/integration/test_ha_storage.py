"""The lease blob, the election and the shared ledger against a real Azurite, through the
real azure-storage-blob: what two monitors can and cannot do to each other."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from azlin_lifecycle.adapters.blob_lease import AZURITE_CREDENTIAL, BlobLeaseStore
from azlin_lifecycle.config import HaCredential, HaSettings, parse_toml
from azlin_lifecycle.leadership import Leadership, Role
from azlin_lifecycle.ledger import SharedLedger
from azlin_lifecycle.models import RepairAction, RepairOutcome
from azlin_lifecycle.ports import CoordinationError, LeaseLost, NotLeader
from azlin_lifecycle.simulator import SimulatedFleet
from azlin_lifecycle.simulator.azurite import Azurite, azurite_available
from azlin_lifecycle.state import StateStore
from azlin_lifecycle.wiring import build_lease_store
from tests.integration.conftest import require
from tests.support.tcp_forward import TcpForward
from tests.support.waiting import wait_for


@pytest.fixture(scope="module")
def azurite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Azurite]:
    require(azurite_available(), "Azurite is not installed (make setup installs it)")
    with Azurite(tmp_path_factory.mktemp("azurite") / "azurite.log") as storage:
        yield storage


def settings(url: str, container: str) -> HaSettings:
    return HaSettings(enabled=True, account_url=url, container=container,
                      credential=HaCredential.AZURITE, lease_seconds=15)


@pytest.fixture
def container() -> str:
    return "t" + uuid.uuid4().hex[:12]


def store(url: str, container: str, timeout: float = 2.0) -> BlobLeaseStore:
    return BlobLeaseStore(settings(url, container), AZURITE_CREDENTIAL, timeout=timeout)


def test_one_lease_one_holder_and_only_the_holder_writes(azurite: Azurite, container: str) -> None:
    a, b = store(azurite.account_url, container), store(azurite.account_url, container)
    la, lb = str(uuid.uuid4()), str(uuid.uuid4())
    assert a.acquire(la, 15)  # creates the container and the blob
    assert not b.acquire(lb, 15)
    assert a.acquire(la, 15)  # the holder's own acquire renews
    doc = a.read()
    etag = a.write(b'{"x":1}', lease_id=la, etag=doc.etag, metadata={"holder": "A"})
    assert b.holder().leased and b.holder().metadata == {"holder": "A"}
    with pytest.raises(LeaseLost, match="no longer this monitor's"):
        b.write(b"{}", lease_id=lb, etag=etag, metadata={})
    with pytest.raises(LeaseLost, match="ETag condition failed"):
        a.write(b"{}", lease_id=la, etag=doc.etag, metadata={})  # a stale ETag never wins
    with pytest.raises(LeaseLost, match="another monitor leads now"):
        b.renew(lb)
    assert a.read().content == b'{"x":1}'
    a.release(la)
    assert b.acquire(lb, 15)
    with pytest.raises(LeaseLost):
        a.renew(la)


def test_unreachable_and_silent_storage_fail_within_the_timeout(
        azurite: Azurite, container: str) -> None:
    with TcpForward(("127.0.0.1", azurite.port)) as link:
        url = f"http://127.0.0.1:{link.port}/devstoreaccount1"
        s = store(url, container, timeout=2.0)
        lease = str(uuid.uuid4())
        assert s.acquire(lease, 15)
        link.pause()
        began = time.monotonic()
        with pytest.raises(CoordinationError, match=r"gave no answer while renewing the lease .*limit 2s"):
            s.renew(lease)
        assert time.monotonic() - began < 3.5
        link.resume()
        s.renew(lease)
    closed = store("http://127.0.0.1:9/devstoreaccount1", container)
    with pytest.raises(CoordinationError, match=r"unreachable while taking the lease.*refused"):
        closed.acquire(lease, 15)


def elector(url: str, container: str, name: str, tmp: Path,
            lease_seconds: float = 15.0) -> tuple[Leadership, SharedLedger]:
    lease = store(url, container, timeout=0.5)
    ledger: SharedLedger
    leadership = Leadership(lease, seconds=lease_seconds, identity=name,
                            on_elected=lambda lid: ledger.take_over(lid) and None,
                            poll_seconds=0.3)
    ledger = SharedLedger(lease, mirror=StateStore(tmp / f"{name}.db"), identity=name,
                          is_leader=leadership.is_leader, keep_seconds=86400)
    return leadership, ledger


def test_failover_keeps_the_in_flight_repair_and_the_old_leader_cannot_write(
        azurite: Azurite, container: str, tmp_path: Path) -> None:
    """Lease 15 s (Blob storage's minimum), renewed every 5 s, calls time out after 0.5 s."""
    with TcpForward(("127.0.0.1", azurite.port)) as link:
        a, a_ledger = elector(f"http://127.0.0.1:{link.port}/devstoreaccount1", container,
                              "A", tmp_path)
        b, b_ledger = elector(azurite.account_url, container, "B", tmp_path)
        a.start()
        wait_for(a.is_leader, 10, "A leads")
        b.start()
        wait_for(lambda: b.view().leader == "A", 10, "B sees A lead")
        assert not b.is_leader() and b.view().role is Role.STANDBY
        with pytest.raises(NotLeader):
            b_ledger.begin_repair("vm-1", RepairAction.RESTART, dry_run=False,
                                  grace_until=time.time() + 600)
        rid = a_ledger.begin_repair("vm-1", RepairAction.RESTART, dry_run=False,
                                    grace_until=time.time() + 600)
        link.pause()  # A is cut off from storage, mid-repair
        cut = time.monotonic()
        wait_for(lambda: not a.is_leader(), 10, "A steps down")
        stepped_down = time.monotonic() - cut
        wait_for(b.is_leader, 20, "B leads")
        took_over = time.monotonic() - cut
        assert stepped_down < took_over
        assert stepped_down < 5.0 + 0.5 + 0.5  # at its next renewal, long before expiry
        assert took_over < 15.0 + 0.3 + 1.0  # one lease period and one poll
        # B read the ledger before leading: A's restart is interrupted, its grace stands.
        [rec] = b_ledger.repairs("vm-1")
        assert rec.outcome is RepairOutcome.INTERRUPTED
        assert b_ledger.grace_until("vm-1") > time.time() + 500
        with pytest.raises(NotLeader):
            a_ledger.end_repair(rid, success=True, error=None, grace_until=time.time() + 300)
        link.resume()
        wait_for(lambda: a.view().leader == "B", 10, "A sees B lead")
        assert not a.is_leader()
        assert b_ledger.repairs("vm-1")[0].outcome is RepairOutcome.INTERRUPTED
        b.stop(release=True)
        wait_for(a.is_leader, 10, "A leads again once B releases")
        a.stop()


def test_the_azure_login_reaches_storage_with_a_token_for_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """credential = "azure": the [azure] login (az, here the stand-in) gives a token for
    https://storage.azure.com; Azurite over HTTPS with OAuth checks its audience, issuer and
    lifetime. A missing login is one line that says to run az login."""
    require(azurite_available(), "Azurite is not installed (make setup installs it)")
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_path, key_path, ca_path = (tmp_path / name for name in ("cert.pem", "key.pem", "ca.pem"))
    cert.cert_chain_pems[0].write_to_path(str(cert_path))
    cert.private_key_pem.write_to_path(str(key_path))
    ca.cert_pem.write_to_path(str(ca_path))
    with SimulatedFleet(tmp_path / "sim", 1) as fleet, \
            Azurite(tmp_path / "azurite" / "azurite.log", tls=(cert_path, key_path)) as storage:
        for key, value in fleet.env().items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("REQUESTS_CA_BUNDLE", str(ca_path))  # trust Azurite's certificate
        config = parse_toml(f'[azure]\ncredential = "cli"\n[ha]\nenabled = true\n'
                            f'account_url = "{storage.account_url}"\n', "t.toml")
        assert config.ha.credential is HaCredential.AZURE
        lease_id = str(uuid.uuid4())
        lease = build_lease_store(config)
        assert lease.acquire(lease_id, 15)
        etag = lease.write(b"{}", lease_id=lease_id, etag=lease.read().etag, metadata={})
        assert lease.read().etag == etag
        cache = Path(os.environ["AZURE_CONFIG_DIR"]) / "msal_token_cache.json"
        assert "https://storage.azure.com/.default" in cache.read_text()  # az was asked
        fleet.set_logged_in(False)
        with pytest.raises(CoordinationError, match=r"no token while taking the lease: .*az login"):
            build_lease_store(config).acquire(str(uuid.uuid4()), 15)


def test_azurite_paused_the_leader_stops_before_its_lease_expires_and_leads_again_after(
        tmp_path: Path) -> None:
    """SIGSTOP on Azurite itself: every request hangs. The leader steps down at its next
    renewal's timeout, well before the lease expires; resumed, it takes its lease back."""
    require(azurite_available(), "Azurite is not installed (make setup installs it)")
    with Azurite(tmp_path / "azurite" / "azurite.log") as storage:
        a, _ = elector(storage.account_url, "paused", "A", tmp_path)
        a.start()
        try:
            wait_for(a.is_leader, 10, "A leads")
            storage.pause()
            paused = time.monotonic()
            wait_for(lambda: not a.is_leader(), 10, "A steps down")
            assert time.monotonic() - paused < 15 / 3 + 0.5 + 0.5  # renewal + its timeout
            assert "renewing the lease failed" in a.view().reason
            storage.resume()
            wait_for(a.is_leader, 10, "A leads again")
        finally:
            storage.resume()
            a.stop()
