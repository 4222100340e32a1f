"""A tiny Type=notify service for the systemd tests: READY, STATUS, watchdog, reload, events.

It uses the project's own sd_notify adapter and event logging, so the unit, the
controller and the journal path can be tested without the real daemon.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path

from azlin_lifecycle.adapters import systemd as sd
from azlin_lifecycle.events import Event, log_event

log = logging.getLogger("azlin_lifecycle.test_service")
stop = threading.Event()
hup = threading.Event()
wake = threading.Event()

def on_signal(flag: threading.Event) -> None:
    flag.set()
    wake.set()

def main() -> int:
    sd.setup_logging("DEBUG")
    signal.signal(signal.SIGTERM, lambda _s, _f: on_signal(stop))
    signal.signal(signal.SIGHUP, lambda _s, _f: on_signal(hup))
    args = sys.argv[1:]
    if "fail" in args:
        log_event(log, Event.CONFIG_RELOAD_FAILED, "test service refuses to start",
                  level=logging.ERROR, reason="asked to fail")
        return 3
    state = Path(os.environ.get("HOME", "/tmp")) / ".azlin" / "test-service-wrote"
    state.write_text(str(os.getpid()))
    for arg in args:
        if arg.startswith("slow="):
            time.sleep(float(arg.removeprefix("slow=")))
    ping = sd.watchdog_interval()
    log_event(log, Event.DAEMON_STARTED, "test service started", vm="vm-a",
              health_state="healthy", failure_count=0)
    sd.ready(f"test service: watchdog every {ping}s")
    while not stop.is_set():
        wake.wait(ping or 1.0)
        wake.clear()
        if hup.is_set():
            hup.clear()
            sd.reloading()
            # Like the daemon: say which version of the config file was read.
            config = Path(os.environ["HOME"]) / ".azlin" / "lifecycle-config.toml"
            mtime = config.stat().st_mtime_ns if config.exists() else None
            if (Path(os.environ["HOME"]) / ".azlin" / "reject-reload").exists():
                log_event(log, Event.CONFIG_RELOAD_FAILED, "test service: bad config",
                          level=logging.ERROR, reason="reject-reload exists",
                          config_mtime_ns=mtime)
            else:
                log_event(log, Event.CONFIG_RELOADED, "test service reloaded",
                          config_mtime_ns=mtime)
            sd.ready("test service: reloaded")
        sd.watchdog()
    sd.stopping()
    log_event(log, Event.DAEMON_STOPPING, "test service stopping")
    return 0

if __name__ == "__main__":
    sys.exit(main())
