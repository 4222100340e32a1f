"""A post-mortem from boot diagnostics: a VM's serial log and screenshot, within a time box.

1. ``POST .../retrieveBootDiagnosticsData?sasUriExpirationTimeInMinutes=N`` (azure-mgmt-
   compute's ``retrieve_boot_diagnostics_data``, through :class:`~.compute.ArmCompute`'s
   client and retrying ``call``) answers two SAS URLs. With managed boot diagnostics (the
   default) this is the only way to the blobs; with boot diagnostics off Azure refuses it
   (409): that is "no capture", never a failure of the repair.
2. The serial log's last :data:`SERIAL_BYTES`: a ``HEAD`` for its length, then one ``GET``
   with ``Range: bytes=START-`` (Blob storage serves explicit ranges; a suffix range is not
   documented for it). The host writes the log from the VM's serial port, so it holds what
   a hung guest printed (hung-task traces, panics, OOM kills) when SSH cannot.
3. The screenshot (one ``GET``, at most :data:`SCREENSHOT_BYTES`).

Everything shares one deadline: each request's connect and every read wait only for what
is left of it, and a body that trickles is cut at the deadline. The caller
(:class:`~.signals.ArmSignals`) runs this on a thread of its own and stops waiting at the
deadline in any case (a name lookup is not bounded by socket timeouts).

SAS URLs are secrets: they are never logged and never put in an error or a file; errors
name the blob ("serial log", "screenshot") and the HTTP status only. Plain ``http.client``
carries the blob requests, so no library logs their URLs either.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from ...fsio import atomic_write
from ...models import VMTarget
from ...ports import AzureOperationError
from ...signals import Capture
from .errors import error_code, error_message

if TYPE_CHECKING:
    from .compute import ArmCompute

SERIAL_BYTES = 1 << 20  # the serial log's last 1 MB
SCREENSHOT_BYTES = 8 << 20
SAS_MINUTES = 5  # how long the SAS URLs Azure hands out stay valid (1-1440)
CHUNK = 64 << 10
ENABLE_HINT = ("az vm boot-diagnostics enable --name VM --resource-group RG, then the log "
               "fills from the next boot")


class _Expired(Exception):
    """The capture's deadline passed."""


class _BlobError(Exception):
    """A blob request answered what we cannot use; the message names no URL."""


@dataclass(frozen=True)
class BlobUris:
    serial_log: str | None
    screenshot: str | None


def retrieve_uris(compute: ArmCompute, target: VMTarget, deadline: float) -> BlobUris:
    """The POST: SAS URLs of the serial log and the screenshot."""
    from azure.core.exceptions import HttpResponseError

    client = compute.client(target.subscription_id)
    what = f"boot diagnostics of {target.name}"
    try:
        result = compute.call(
            what, lambda kw: client.virtual_machines.retrieve_boot_diagnostics_data(
                target.resource_group, target.name,
                sas_uri_expiration_time_in_minutes=SAS_MINUTES, **kw),
            max(deadline - time.monotonic(), 0.1), deadline)
    except HttpResponseError as exc:  # 404, 400 (call leaves them to callers)
        raise AzureOperationError(f"{what}: {error_message(exc)}", error_code(exc)) from None
    return BlobUris(result.serial_console_log_blob_uri, result.console_screenshot_blob_uri)


def capture(compute: ArmCompute, target: VMTarget, directory: Path, deadline: float,
            cancelled: threading.Event) -> Capture:
    """Retrieve and download into ``directory`` until ``deadline`` (monotonic)."""
    began = time.monotonic()
    try:
        uris = retrieve_uris(compute, target, deadline)
    except AzureOperationError as exc:
        return _none(directory, _why_none(exc), began)
    context = ssl.create_default_context(cafile=compute.settings.ca_bundle)
    saved: dict[str, Path] = {}
    problems: list[str] = []
    for kind, uri in (("serial log", uris.serial_log), ("screenshot", uris.screenshot)):
        if not uri:
            problems.append(f"Azure gave no {kind} URL")
            continue
        try:
            if kind == "serial log":
                body = _tail(uri, context, deadline, SERIAL_BYTES)
                name = "serial.log"
            else:
                body = _get(uri, context, deadline, SCREENSHOT_BYTES)
                name = "screenshot" + (PurePosixPath(urlsplit(uri).path).suffix or ".bmp")
        except _Expired:
            problems.append(f"the {kind} did not arrive within the time box")
            break
        except (OSError, http.client.HTTPException, ValueError, _BlobError) as exc:
            problems.append(f"{kind}: {_describe(exc)}")
            continue
        if cancelled.is_set():
            break
        path = directory / name
        atomic_write(path, body)  # mode 0600: a serial log can hold what the guest printed
        saved[kind] = path
    took = time.monotonic() - began
    sizes = ", ".join(f"{kind} {_size(path.stat().st_size)}" for kind, path in saved.items())
    if saved:
        note = f"{sizes} in {took:.1f} s" + (f" ({'; '.join(problems)})" if problems else "")
    else:
        note = "no capture: " + ("; ".join(problems) or "nothing to download")
    return Capture(directory, saved.get("serial log"), saved.get("screenshot"), note,
                   seconds=took)


def _why_none(exc: AzureOperationError) -> str:
    text = str(exc)
    if "diagnostic" in text.lower() or exc.code in ("OperationNotAllowed", "Conflict"):
        return f"no capture: boot diagnostics are off ({ENABLE_HINT})"
    return f"no capture: {text}"


def _none(directory: Path, note: str, began: float) -> Capture:
    return Capture(directory, None, None, note, seconds=time.monotonic() - began)


def _left(deadline: float) -> float:
    left = deadline - time.monotonic()
    if left <= 0:
        raise _Expired()
    return left


def _open(uri: str, context: ssl.SSLContext, deadline: float, method: str,
          headers: dict[str, str]) -> tuple[http.client.HTTPSConnection, socket.socket,
                                            http.client.HTTPResponse]:
    """Send one request; the connection, its socket (kept: http.client lets go of it once
    the response owns it) and the response's head, all within the deadline."""
    parts = urlsplit(uri)
    if parts.scheme != "https" or not parts.hostname:
        raise _BlobError("not an https URL")
    conn = http.client.HTTPSConnection(parts.hostname, parts.port or 443, context=context,
                                       timeout=min(_left(deadline), 10.0))
    try:
        conn.request(method, parts.path + (f"?{parts.query}" if parts.query else ""),
                     headers={"x-ms-version": "2021-08-06", **headers})
        sock = conn.sock
        assert sock is not None
        sock.settimeout(_left(deadline))
        return conn, sock, conn.getresponse()
    except TimeoutError:
        conn.close()
        raise _Expired() from None
    except BaseException:
        conn.close()
        raise


def _get(uri: str, context: ssl.SSLContext, deadline: float, limit: int,
         headers: dict[str, str] | None = None) -> bytes:
    """The body (at most ``limit`` bytes), each read waiting only for what is left."""
    conn, sock, response = _open(uri, context, deadline, "GET", headers or {})
    parts: list[bytes] = []
    total = 0
    try:
        if response.status not in (200, 206):
            raise _BlobError(f"HTTP {response.status}")
        while total < limit:
            sock.settimeout(_left(deadline))
            try:
                chunk = response.read(min(CHUNK, limit - total))
            except TimeoutError:
                raise _Expired() from None
            if not chunk:
                break
            parts.append(chunk)
            total += len(chunk)
    finally:
        response.close()
        conn.close()
    return b"".join(parts)


def _tail(uri: str, context: ssl.SSLContext, deadline: float, limit: int) -> bytes:
    """The blob's last ``limit`` bytes: its length from a HEAD, then a ranged GET."""
    conn, _, response = _open(uri, context, deadline, "HEAD", {})
    response.close()
    conn.close()
    if response.status != 200:
        raise _BlobError(f"HTTP {response.status}")
    length = int(response.getheader("Content-Length") or 0)
    if length == 0:
        return b""
    start = max(0, length - limit)
    body = _get(uri, context, deadline, limit, {"Range": f"bytes={start}-{length - 1}"})
    return body.rstrip(b"\0")  # a page blob's unwritten end reads as zeros


def _describe(exc: BaseException) -> str:
    """An error in words, without the URL (its SAS token is a secret): our own message, or
    the exception's type (another's text, e.g. http.client's InvalidURL, may quote it)."""
    if isinstance(exc, _BlobError):
        return str(exc)
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not trusted ({exc.verify_message})"
    reason = getattr(exc, "strerror", None)
    return type(exc).__name__ + (f" ({reason})" if reason else "")


def _size(n: int) -> str:
    return f"{n / (1 << 20):.1f} MB" if n >= 1 << 20 else f"{max(1, n // 1024)} KB" \
        if n >= 1024 else f"{n} B"
