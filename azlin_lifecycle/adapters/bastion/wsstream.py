"""A Bastion tunnel's WebSocket as the socket paramiko's ``Transport`` reads and writes.

The WebSocket itself is websocket-client's (the library the Azure CLI's ``bastion``
extension uses): this module opens it on a TLS connection made within the deadline
(:func:`open_websocket`) and adapts it (:class:`WebSocketStream`): ``send`` sends one binary
frame, ``recv`` hands out the payload of the frames received, ``settimeout`` is paramiko's
poll interval, ``shutdown``/``close`` end it.

How the tunnel ended decides whose side it is on (the real service's close codes are not
documented; this is what the stand-in does and what the tests pin):

* a close of ours (a probe's deadline, a dropped connection): nobody's fault;
* a close frame with code 1000 (normal): the VM's end closed, as a TCP FIN would: EOF;
* another close code, the TLS connection ending without a close frame, a send that stalls:
  Bastion dropped the tunnel, the monitor's side (``failure`` says so).

``recv`` returns ``b""`` (EOF) in every case, as a socket would: paramiko then ends the
connection quietly, and the prober asks ``failure`` whose side it was.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from ...ports import TunnelFailure
from ..ssh.deadline import DeadlineWatchdog, seconds_left
from .connection import guarded, unreachable
from .tlschannel import TlsChannel

if TYPE_CHECKING:
    import websocket

NORMAL_CLOSE = 1000
CLOSE_SEND_TIMEOUT = 1.0


def open_websocket(name: str, tls: TlsChannel, url: str, deadline: float,
                   watchdog: DeadlineWatchdog) -> websocket.WebSocket:
    """The WebSocket handshake on ``tls`` before ``deadline``; ``url`` is a secret."""
    import websocket

    ws = websocket.WebSocket(skip_utf8_validation=True, enable_multithread=True)
    try:
        with guarded(watchdog, deadline, tls):
            tls.settimeout(seconds_left(deadline))
            ws.connect(url, socket=tls, timeout=seconds_left(deadline), redirect_limit=0)  # type: ignore[no-untyped-call]
    except websocket.WebSocketBadStatusException as exc:
        raise unreachable(name, f"refused the WebSocket (HTTP {exc.status_code})") from None
    except (OSError, websocket.WebSocketException):
        with contextlib.suppress(OSError):
            tls.close()
        what = ("did not open the WebSocket in time" if time.monotonic() >= deadline
                else "broke off the WebSocket handshake")
        raise unreachable(name, what) from None
    return ws


class WebSocketStream:
    """An open tunnel, socket-like; ``on_close(failed)`` runs once when it closes."""

    def __init__(self, ws: websocket.WebSocket, name: str,
                 on_close: Callable[[bool], None] = lambda failed: None) -> None:
        self._ws = ws
        self._name = name
        self._on_close = on_close
        self._pending = b""
        self._lock = threading.Lock()
        self._ours = False  # we closed it (deadline, drop, forget)
        self._ended = False  # it ended (EOF given out)
        self._failure: TunnelFailure | None = None
        self._notified = False

    # ------------------------------------------------------------------ socket-like
    def send(self, data: bytes) -> int:
        import websocket

        if self._ours or self._ended:
            raise BrokenPipeError("the tunnel is closed")
        try:
            self._ws.send_bytes(data)
        except websocket.WebSocketTimeoutException:
            # A frame may be half sent: the stream cannot be trusted any more.
            self._fail("stopped taking data (a send stalled)")
            raise BrokenPipeError("the tunnel stalled") from None
        except (OSError, websocket.WebSocketException):
            self._fail("dropped the tunnel")
            raise BrokenPipeError("the tunnel was dropped") from None
        return len(data)

    def recv(self, size: int) -> bytes:
        import websocket

        while not self._pending:
            if self._ours or self._ended:
                return b""
            try:
                opcode, data = self._ws.recv_data()
            except websocket.WebSocketTimeoutException:
                raise TimeoutError("timed out") from None  # paramiko polls again
            except (OSError, websocket.WebSocketException):
                self._fail("dropped the tunnel")
                return b""
            if opcode == websocket.ABNF.OPCODE_CLOSE:
                code = _close_code(data)
                if code != NORMAL_CLOSE:
                    self._fail(f"closed the tunnel (WebSocket close code {code})")
                self._ended = True
                return b""
            self._pending = data if isinstance(data, bytes) else str(data).encode()
        chunk, self._pending = self._pending[:size], self._pending[size:]
        return chunk

    def settimeout(self, timeout: float | None) -> None:
        with contextlib.suppress(OSError):
            self._ws.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._ws.gettimeout()

    def shutdown(self, how: int) -> None:
        self._ours = True
        sock = self._ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(how)

    def close(self) -> None:
        with self._lock:
            first = not self._notified
            self._notified = True
            clean = not self._ended and self._failure is None and not self._ours
            self._ours = True
        if clean and self._ws.lock.acquire(blocking=False):  # not behind a stalled send
            self._ws.lock.release()
            with contextlib.suppress(Exception):
                self._ws.settimeout(CLOSE_SEND_TIMEOUT)
                self._ws.send_close()
        sock = self._ws.sock
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()
        if first:
            self._on_close(self._failure is not None)

    @property
    def _closed(self) -> bool:  # paramiko's Transport looks at this
        return self._ours or self._ended

    @property
    def failure(self) -> TunnelFailure | None:
        return self._failure

    # ------------------------------------------------------------------ internals
    def _fail(self, what: str) -> None:
        with self._lock:
            if self._ours or self._failure is not None:
                return
            self._failure = unreachable(self._name, what)
            self._ended = True


def _close_code(payload: bytes | str) -> int:
    data = payload.encode() if isinstance(payload, str) else payload
    return int.from_bytes(data[:2], "big") if len(data) >= 2 else NORMAL_CLOSE
