"""The token exchange with a Bastion's data plane, over HTTPS (no SDK: its own protocol).

As the Azure CLI's ``bastion`` extension does it (``tunnel.py``, read 2026; see the README):

* ``POST https://{dnsName}/api/tokens``, the body **form-encoded**: ``resourceId`` (the
  VM's ARM id), ``protocol=tcptunnel``, ``workloadHostPort`` (the VM's SSH port),
  ``aztoken`` (an ARM access token) and, on a re-exchange, ``token`` (the previous
  ``authToken``) with the header ``X-Node-Id`` (the previous ``nodeId``). No
  ``Authorization`` header: the service answers 500 to that, and to a JSON body.
  The answer is JSON: ``authToken``, ``nodeId``, ``websocketToken``.
* ``DELETE https://{dnsName}/api/tokens/{authToken}`` with ``X-Node-Id`` ends the session
  (404: already gone).

Every token here is a secret: :class:`Session` never shows them, and no message, log line
or exception raised from here holds one (the server's own error text is cleaned of them).

Who is at fault: 401, 403, 404 and other 4xx need a person (login, rights, a VM the Bastion
does not serve); 429, 5xx, a broken answer or a silent server are the monitor's side.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import quote, urlencode

from ...models import BastionEndpoint
from ...ports import TunnelFailure
from ..ssh.deadline import DeadlineWatchdog, seconds_left
from .connection import guarded, open_tls, unreachable, unusable

MAX_ANSWER = 64 * 1024
FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True, repr=False)
class Session:
    """One tunnel session's secrets, as the exchange answered them."""

    auth_token: str
    node_id: str
    websocket_token: str

    def __repr__(self) -> str:
        return "Session(<secret>)"

    def secrets(self) -> tuple[str, ...]:
        return (self.auth_token, self.node_id, self.websocket_token)


def exchange(endpoint: BastionEndpoint, port: int, aztoken: str, previous: Session | None,
             context: ssl.SSLContext, deadline: float, watchdog: DeadlineWatchdog) -> Session:
    """A new session for a tunnel to ``port`` of the endpoint's VM (TunnelFailure if not)."""
    form = {"resourceId": endpoint.vm_resource_id, "protocol": "tcptunnel",
            "workloadHostPort": str(port), "aztoken": aztoken}
    headers = {"Content-Type": FORM, "Accept": "application/json"}
    if previous is not None:
        form["token"] = previous.auth_token
        headers["X-Node-Id"] = previous.node_id
    secrets = (aztoken, *(previous.secrets() if previous else ()))
    status, body = request(endpoint, "POST", "/api/tokens", urlencode(form).encode(), headers,
                           context, deadline, watchdog)
    if status == 200:
        session = _session(body)
        if session is not None:
            return session
        raise unreachable(endpoint.name, "answered the token exchange without its tokens")
    raise _refused(endpoint, status, _server_message(body, secrets))


def delete(endpoint: BastionEndpoint, session: Session, context: ssl.SSLContext,
           timeout: float, watchdog: DeadlineWatchdog) -> int | None:
    """End ``session`` (the HTTP status; None when the Bastion did not answer)."""
    path = "/api/tokens/" + quote(session.auth_token, safe="")
    try:
        status, _ = request(endpoint, "DELETE", path, None, {"X-Node-Id": session.node_id},
                            context, time.monotonic() + timeout, watchdog)
    except TunnelFailure:
        return None
    return status


def request(endpoint: BastionEndpoint, method: str, path: str, body: bytes | None,
            headers: Mapping[str, str], context: ssl.SSLContext, deadline: float,
            watchdog: DeadlineWatchdog) -> tuple[int, bytes]:
    """One HTTPS request on a fresh connection, answered before ``deadline``."""
    from ... import __version__

    tls = open_tls(endpoint.name, endpoint.dns_name, context, deadline, watchdog)
    conn = http.client.HTTPSConnection(endpoint.dns_name, context=context)
    conn.sock = tls  # connected and verified already, within the deadline
    try:
        with guarded(watchdog, deadline, tls):
            tls.settimeout(seconds_left(deadline))
            conn.request(method, path, body=body, headers={
                "User-Agent": f"azlin-lifecycle/{__version__}", "Connection": "close",
                **headers})
            response = conn.getresponse()
            answer = response.read(MAX_ANSWER)
            return response.status, answer
    except (OSError, http.client.HTTPException):
        what = "did not answer in time" if time.monotonic() >= deadline else (
            "broke off the token exchange")
        raise unreachable(endpoint.name, what) from None
    finally:
        with contextlib.suppress(OSError):
            conn.close()


def _session(body: bytes) -> Session | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    if not isinstance(data, dict):
        return None
    values = [data.get(k) for k in ("authToken", "nodeId", "websocketToken")]
    if not all(isinstance(v, str) and v for v in values):
        return None
    auth, node, ws = (str(v) for v in values)
    return Session(auth, node, ws)


def _server_message(body: bytes, secrets: tuple[str, ...]) -> str:
    """The service's own words (JSON ``message``), short, with every secret cut out."""
    try:
        data = json.loads(body)
    except ValueError:
        return ""
    message = data.get("message") if isinstance(data, dict) else None
    if not isinstance(message, str) or not message.strip():
        return ""
    text = " ".join(message.split())
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text[:160]


def _refused(endpoint: BastionEndpoint, status: int, message: str) -> TunnelFailure:
    name, vm = endpoint.name, endpoint.vm_resource_id.rsplit("/", 1)[-1]
    said = f"HTTP {status}" + (f", {message.rstrip('.')}" if message else "")
    if status == 401:
        return unusable(name, f"{name} refused the Azure token for VM {vm} ({said}): check "
                        "that your login (az login) is current and is allowed to use it")
    if status == 403:
        return unusable(name, f"{name} refused access to VM {vm} ({said}): give your login "
                        f"the Reader role on the VM, its network interface and {name}")
    if status == 404:
        return unusable(name, f"{name} does not know VM {vm} ({said}): is the VM in a "
                        f"virtual network {name} serves (its own or a peered one)?")
    if status == 429 or status >= 500:
        return unreachable(name, f"answered the token exchange with {said}")
    return unusable(name, f"{name} refused the token exchange for VM {vm} ({said})")
