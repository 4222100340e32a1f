"""BastionTunnels: opens native-client tunnels through Azure Bastion, no ``az``, no port.

:class:`BastionTunnels` implements :class:`azlin_lifecycle.ports.TunnelOpener` for the SSH
prober. One ``open`` is, all within the caller's deadline:

1. an ARM access token from the credential (a :class:`~..azure.login.SharedTokenCache`, which
   renews a token 300 s before it expires, so an exchange never sends a stale one);
2. the token exchange (:mod:`.exchange`): a re-exchange (``token`` = the previous
   ``authToken``) when the VM's last tunnel was dropped by Bastion rather than closed;
3. TLS to ``dnsName`` and the WebSocket (:mod:`.wsstream`): ``/webtunnelv2/{websocketToken}
   ?X-Node-Id={nodeId}``, or ``/omni/webtunnel/{websocketToken}`` for the Developer SKU.

The tunnel lives as long as the SSH connection on it (the prober keeps that open for
reuse); when it is closed, its session is ended with ``DELETE /api/tokens/{authToken}`` on
a background thread (a close never waits for Bastion). ``close()`` ends what is left,
briefly. Tokens and tunnel URLs stay inside this package: nothing here logs them.
"""

from __future__ import annotations

import contextlib
import queue
import ssl
import threading
from typing import TYPE_CHECKING
from urllib.parse import quote

from ...models import BastionEndpoint, SshFault
from ...ports import TunnelFailure
from ..ssh.deadline import DeadlineWatchdog
from .connection import open_channel, trust_context, unusable
from .discovery import DEVELOPER_SKUS
from .exchange import Session, delete, exchange
from .wsstream import WebSocketStream, open_websocket

if TYPE_CHECKING:
    from azure.core.credentials import TokenCredential

DELETE_TIMEOUT = 5.0
CLOSE_WAIT = 5.0


def tunnel_url(endpoint: BastionEndpoint, session: Session) -> str:
    """The WebSocket URL of a session (a secret: it carries the session's tokens)."""
    token = quote(session.websocket_token, safe="")
    if endpoint.sku in DEVELOPER_SKUS:
        return f"wss://{endpoint.dns_name}/omni/webtunnel/{token}"
    return (f"wss://{endpoint.dns_name}/webtunnelv2/{token}"
            f"?X-Node-Id={quote(session.node_id, safe='')}")


class BastionTunnels:
    """TunnelOpener over Azure Bastion; ``scope`` is the ARM token's (``.../.default``);
    TLS trusts ``ca_bundle`` (else REQUESTS_CA_BUNDLE, else the system), or ``context``."""

    def __init__(self, credential: TokenCredential, scope: str, *,
                 ca_bundle: str | None = None, context: ssl.SSLContext | None = None,
                 delete_timeout: float = DELETE_TIMEOUT) -> None:
        from ..azure.login import SharedTokenCache

        self.credential = (credential if isinstance(credential, SharedTokenCache)
                           else SharedTokenCache(credential))
        self.scope = scope
        self.ca_bundle = ca_bundle
        self._context = context
        self.delete_timeout = delete_timeout
        self._watchdog = DeadlineWatchdog()
        self._lock = threading.Lock()
        self._dropped: dict[str, tuple[BastionEndpoint, Session]] = {}  # VM id -> session
        self._deletes: queue.SimpleQueue[tuple[BastionEndpoint, Session] | None] = (
            queue.SimpleQueue())
        self._worker: threading.Thread | None = None
        self.opened = 0  # tunnels opened, for tests and benchmarks
        self.reexchanges = 0

    # ------------------------------------------------------------------ TunnelOpener
    def open(self, endpoint: BastionEndpoint, port: int, deadline: float) -> WebSocketStream:
        aztoken = self._arm_token(endpoint)
        vm = endpoint.vm_resource_id.lower()
        with self._lock:
            previous = self._dropped.pop(vm, None)
        try:
            session = exchange(endpoint, port, aztoken, previous and previous[1], self.context,
                               deadline, self._watchdog)
        except TunnelFailure as failure:
            if previous is None or failure.fault is not SshFault.BASTION_UNUSABLE:
                raise
            # The previous session may be gone on Bastion's side: end it, start afresh.
            self._delete_later(*previous)
            previous = None
            session = exchange(endpoint, port, aztoken, None, self.context, deadline,
                               self._watchdog)
        if previous is not None:
            with self._lock:
                self.reexchanges += 1
        try:
            tls = open_channel(endpoint.name, endpoint.dns_name, self.context, deadline,
                               self._watchdog)
            ws = open_websocket(endpoint.name, tls, tunnel_url(endpoint, session), deadline,
                                self._watchdog)
        except TunnelFailure:
            self._delete_later(endpoint, session)
            raise
        with self._lock:
            self.opened += 1

        def closed(failed: bool) -> None:
            if failed:  # kept for a re-exchange by the VM's next tunnel
                with self._lock:
                    old = self._dropped.get(vm)
                    self._dropped[vm] = (endpoint, session)
                if old is not None:
                    self._delete_later(*old)
            else:
                self._delete_later(endpoint, session)

        return WebSocketStream(ws, endpoint.name, closed)

    def close(self) -> None:
        """End the sessions of closed and dropped tunnels; wait up to CLOSE_WAIT s."""
        with self._lock:
            dropped, self._dropped = list(self._dropped.values()), {}
        for item in dropped:
            self._delete_later(*item)
        with self._lock:
            worker, self._worker = self._worker, None
        if worker is not None:
            self._deletes.put(None)
            worker.join(timeout=CLOSE_WAIT)
        self._watchdog.stop()

    @property
    def context(self) -> ssl.SSLContext:
        """The TLS context, made on first use (a missing CA file fails a tunnel, not start-up)."""
        with self._lock:
            if self._context is None:
                try:
                    self._context = trust_context(self.ca_bundle)
                except (OSError, ssl.SSLError) as exc:
                    raise TunnelFailure(SshFault.BASTION_UNUSABLE, (
                        f"{SshFault.BASTION_UNUSABLE.value}: cannot load the CA bundle "
                        f"{self.ca_bundle or '(REQUESTS_CA_BUNDLE)'} ({exc}): fix [azure] "
                        "ca_bundle or REQUESTS_CA_BUNDLE")) from None
            return self._context

    # ------------------------------------------------------------------ internals
    def _arm_token(self, endpoint: BastionEndpoint) -> str:
        from ..azure.login import login_error

        try:
            return self.credential.get_token(self.scope).token
        except Exception as exc:  # any credential failure: the login needs a person
            raise unusable(endpoint.name, f"no Azure token for {endpoint.name}: "
                           f"{login_error(exc)}") from None

    def _delete_later(self, endpoint: BastionEndpoint, session: Session) -> None:
        self._deletes.put((endpoint, session))
        with self._lock:
            if self._worker is None:
                self._worker = threading.Thread(target=self._delete_loop,
                                                name="bastion-token-delete", daemon=True)
                self._worker.start()

    def _delete_loop(self) -> None:
        while True:
            item = self._deletes.get()
            if item is None:
                return
            endpoint, session = item
            with contextlib.suppress(Exception):  # best effort: Bastion ends it in time anyway
                delete(endpoint, session, self.context, self.delete_timeout, self._watchdog)


if TYPE_CHECKING:
    from ...ports import TunnelOpener

    def _conforms(tunnels: BastionTunnels) -> TunnelOpener:  # mypy checks the protocol
        return tunnels
