"""One monitor's election, as the daemon runs it (Leadership + BlobLeaseStore + the shared
ledger), in a process of its own for bench/failover.py. Prints ``leader EPOCH`` and
``standby EPOCH`` on every change of role."""

from __future__ import annotations

import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

from azlin_lifecycle.adapters.blob_lease import AZURITE_CREDENTIAL, BlobLeaseStore
from azlin_lifecycle.config import HaCredential, HaSettings
from azlin_lifecycle.leadership import Leadership, LeadershipView
from azlin_lifecycle.ledger import SharedLedger
from azlin_lifecycle.state import StateStore


def main() -> None:
    url, container, name, seconds = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
    settings = HaSettings(enabled=True, account_url=url, container=container,
                          credential=HaCredential.AZURITE, lease_seconds=seconds)
    lease = BlobLeaseStore(settings, AZURITE_CREDENTIAL, timeout=max(2.0, seconds / 6))
    last: list[str] = []

    def changed(view: LeadershipView) -> None:
        if not last or last[-1] != view.role:
            last.append(view.role)
            print(f"{view.role} {time.time():.3f}", flush=True)

    ledger: SharedLedger
    leadership = Leadership(lease, seconds=seconds, identity=name,
                            on_elected=lambda lease_id: (ledger.take_over(lease_id), None)[1],
                            on_change=changed)
    ledger = SharedLedger(lease, mirror=StateStore(Path(tempfile.mkdtemp()) / "state.db"),
                          identity=name, is_leader=leadership.is_leader, keep_seconds=86400)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    leadership.start()
    stop.wait()
    leadership.stop(release=True)  # as the daemon does when it stops


if __name__ == "__main__":
    main()
