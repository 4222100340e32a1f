"""Azurite (the Azure Storage emulator) on 127.0.0.1: the stand-in storage account of the HA
demo, tests and benchmark, as the stand-in Azure is the ARM one.

Installed by ``make setup`` (scripts/install-azurite) into .venv/azurite (found beside the
running interpreter's venv, or at ``$AZURITE_BLOB``, or on PATH). Started on a free
loopback port, its data on disk (a restart keeps leases and blobs), with its telemetry
off (without ``--disableTelemetry`` it looks up an Application Insights host at start-up).
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

from ..adapters.blob_lease import AZURITE_ACCOUNT
from ..errors import LifecycleError

LISTENING = re.compile(r"listens on (https?://127\.0\.0\.1:(\d+))")


def azurite_binary() -> Path | None:
    """Where ``azurite-blob`` is: $AZURITE_BLOB, the venv's own (make setup), or PATH."""
    if os.environ.get("AZURITE_BLOB"):
        return Path(os.environ["AZURITE_BLOB"])
    beside = Path(sys.prefix) / "azurite" / "node_modules" / ".bin" / "azurite-blob"
    if beside.exists():
        return beside
    found = shutil.which("azurite-blob")
    return Path(found) if found else None


def azurite_available() -> bool:
    binary = azurite_binary()
    return binary is not None and binary.exists()


class Azurite:
    """``with Azurite(log) as storage:`` then ``storage.account_url``.

    ``tls=(cert, key)``: HTTPS with OAuth (``--oauth basic``: Azurite checks a bearer
    token's audience, issuer and lifetime, not its signature), as an account reached with
    an Azure login; without it, plain HTTP and the published account key only."""

    def __init__(self, log: Path, tls: tuple[Path, Path] | None = None) -> None:
        self.log = log
        self.tls = tls
        self.port = 0
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def account_url(self) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"

    def __enter__(self) -> Azurite:
        self.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def start(self) -> None:
        """Start (again, on the same port after a stop); returns once it listens."""
        binary = azurite_binary()
        if binary is None or not binary.exists():
            raise LifecycleError("Azurite is not installed: run `make setup` in the checkout "
                                 "(it installs it into .venv/azurite), or set AZURITE_BLOB")
        self.log.parent.mkdir(parents=True, exist_ok=True)
        out = self.log.open("ab")
        self.proc = subprocess.Popen(
            [str(binary), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--location", str(self.log.parent / "azurite-data"), "--disableTelemetry",
             "--silent", "--skipApiVersionCheck",
             *(["--cert", str(self.tls[0]), "--key", str(self.tls[1]), "--oauth", "basic"]
               if self.tls else [])],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        out.close()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            found = LISTENING.findall(self.log.read_text(errors="replace"))
            if found and (self.port == 0 or int(found[-1][1]) == self.port):
                self.port = int(found[-1][1])
                return
            if self.proc.poll() is not None:
                raise LifecycleError(f"Azurite exited: {_last_line(self.log)}")
            time.sleep(0.05)
        raise LifecycleError(f"Azurite did not start in 30 s: {_last_line(self.log)}")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGCONT)
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def pause(self) -> None:
        """Stop answering (SIGSTOP): requests hang as in a network partition."""
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGCONT)


def _last_line(log: Path) -> str:
    lines = log.read_text(errors="replace").strip().splitlines()
    return f"{lines[-1] if lines else 'no output'} (log: {log})"
