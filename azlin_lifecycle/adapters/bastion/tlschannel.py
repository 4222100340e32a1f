"""TLS that one thread may read while another writes: OpenSSL driven through memory BIOs.

A tunnel is read by paramiko's transport thread while probes write to it. An ``SSLSocket``
gives both threads the same OpenSSL connection object at once, which OpenSSL does not
allow: under load (a hundred tunnels on two cores) a record now and then comes out garbled
or as a false end of stream, and the tunnel dies. :class:`TlsChannel` keeps every call into
OpenSSL under one lock and does the socket's reads and writes outside it, so a reader
waiting for data never holds up a writer. It is socket-like enough for websocket-client
(``send``, ``recv``, ``settimeout``, ``gettimeout``, ``fileno``, ``shutdown``, ``close``).

The stand-in Bastion serves its data plane with it too (``server_side``).
"""

from __future__ import annotations

import contextlib
import io
import socket
import ssl
import threading
from typing import TYPE_CHECKING

from ..ssh.deadline import seconds_left

if TYPE_CHECKING:
    from typing_extensions import Buffer

READ_SIZE = 16384  # a TLS record at most


class TlsChannel:
    """TLS on a connected TCP socket. ``handshake(deadline)`` before anything else."""

    def __init__(self, raw: socket.socket, context: ssl.SSLContext, *,
                 server_hostname: str | None = None, server_side: bool = False) -> None:
        self._raw = raw
        self._incoming = ssl.MemoryBIO()
        self._outgoing = ssl.MemoryBIO()
        self._tls = context.wrap_bio(self._incoming, self._outgoing, server_side=server_side,
                                     server_hostname=server_hostname)
        self._tls_lock = threading.Lock()  # every call into OpenSSL
        self._send_lock = threading.Lock()  # records leave in the order they were made
        self._closed = False

    # ------------------------------------------------------------------ set-up
    def handshake(self, deadline: float) -> None:
        """The TLS handshake, each wait within what is left of ``deadline``
        (the caller's watchdog shuts the socket down at the deadline itself)."""
        while True:
            with self._tls_lock:
                try:
                    self._tls.do_handshake()
                    done = True
                except ssl.SSLWantReadError:
                    done = False
            self._flush()
            if done:
                return
            self._raw.settimeout(seconds_left(deadline))
            if not self._fill():
                raise ConnectionResetError("the server closed the connection during TLS set-up")

    # ------------------------------------------------------------------ socket-like
    def send(self, data: bytes | memoryview) -> int:
        with self._tls_lock:
            written = self._tls.write(data)
        self._flush()
        return written

    def sendall(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[self.send(view):]

    def recv(self, size: int) -> bytes:
        """Up to ``size`` bytes; b"" at the end of the stream (TimeoutError on a timeout)."""
        while True:
            with self._tls_lock:
                try:
                    data = self._tls.read(size)
                except ssl.SSLWantReadError:
                    data = None
                except (ssl.SSLZeroReturnError, ssl.SSLEOFError):
                    data = b""
            self._flush()  # reading may have produced records to send (TLS 1.3 tickets)
            if data is not None:
                return data
            if not self._fill():
                return b""

    def settimeout(self, timeout: float | None) -> None:
        self._raw.settimeout(timeout)

    def gettimeout(self) -> float | None:
        return self._raw.gettimeout()

    def fileno(self) -> int:
        return self._raw.fileno()

    def shutdown(self, how: int) -> None:
        self._raw.shutdown(how)

    def close(self) -> None:
        self._closed = True
        with contextlib.suppress(OSError):
            self._raw.close()

    def makefile(self) -> tuple[io.BufferedReader, io.BufferedWriter]:
        """Buffered reader and writer on the channel (for an HTTP server's handler)."""
        raw = _ChannelIO(self)
        return io.BufferedReader(raw), io.BufferedWriter(raw)

    # ------------------------------------------------------------------ internals
    def _flush(self) -> None:
        with self._send_lock:
            with self._tls_lock:
                pending = self._outgoing.read()
            if pending:
                self._raw.sendall(pending)

    def _fill(self) -> bool:
        """Bytes from the socket into OpenSSL; False at the socket's end of stream."""
        chunk = self._raw.recv(READ_SIZE)
        with self._tls_lock:
            if chunk:
                self._incoming.write(chunk)
            else:
                self._incoming.write_eof()
        return bool(chunk)


class _ChannelIO(io.RawIOBase):
    def __init__(self, channel: TlsChannel) -> None:
        self._channel = channel

    def readable(self) -> bool:
        return True

    def writable(self) -> bool:
        return True

    def readinto(self, buffer: bytearray | memoryview) -> int:  # type: ignore[override]
        data = self._channel.recv(len(buffer))
        buffer[:len(data)] = data
        return len(data)

    def write(self, data: Buffer, /) -> int:
        block = bytes(data)
        self._channel.sendall(block)
        return len(block)
