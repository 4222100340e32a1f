"""Stand-ins on 127.0.0.1 for two notification services' HTTP APIs: ntfy and Gotify.

Each answers as the service's API documentation says, so apprise's real ``ntfy://`` and
``gotify://`` plugins talk to them unchanged:

* ntfy (https://docs.ntfy.sh/publish/#publish-as-json): ``POST /`` with a JSON
  ``{"topic", "title", "message", …}``; 200 with the message object
  (``{"id", "time", "expires", "event": "message", "topic", "title", "message"}``); an
  access token as ``Authorization: Bearer …``; errors as
  ``{"code": 40101, "http": 401, "error": "unauthorized", "link": …}``.
* Gotify (https://gotify.net/api-docs, ``POST /message``): the application token in
  ``X-Gotify-Key`` (or ``?token=``), a JSON ``{"title", "message", "priority"}``; 200 with
  the message (``{"id", "appid", "message", "title", "priority", "date"}``); errors as
  ``{"error": "Unauthorized", "errorCode": 401, "errorDescription": …}``.

``mode`` makes one misbehave: ``"error"`` answers 500 as the service would, ``"hang"``
accepts the request and does not answer until :meth:`close` (or 60 s).
"""

from __future__ import annotations

import datetime as dt
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol

HANG_LIMIT_SECONDS = 60.0


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


@dataclass
class ServiceState:
    token: str | None
    mode: str = "ok"
    received: list[Received] = field(default_factory=list)
    released: threading.Event = field(default_factory=threading.Event)
    next_id: int = 1


class _Handler(BaseHTTPRequestHandler):
    server: _Server
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length)
        state = self.server.state
        if state.mode == "hang":
            state.released.wait(HANG_LIMIT_SECONDS)
            return
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            body = {"raw": raw.decode("utf-8", "replace")}
        self.server.api.handle(self, state, body if isinstance(body, dict) else {})

    def answer(self, status: int, document: dict[str, Any]) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


class _Api(Protocol):
    """A service's answer to one POST (each service below answers its own way)."""

    def handle(self, request: _Handler, state: ServiceState, body: dict[str, Any]) -> None: ...


class NtfyApi:
    scheme: ClassVar[str] = "ntfy"

    @staticmethod
    def error(status: int, code: int, text: str) -> dict[str, Any]:
        return {"code": code, "http": status, "error": text,
                "link": "https://ntfy.sh/docs/publish/#authentication"}

    def handle(self, request: _Handler, state: ServiceState, body: dict[str, Any]) -> None:
        if state.mode == "error":
            request.answer(500, self.error(500, 50001, "internal server error"))
            return
        if state.token is not None:
            given = request.headers.get("Authorization")
            if given is None:
                request.answer(403, self.error(403, 40301, "forbidden"))
                return
            if given != f"Bearer {state.token}":
                request.answer(401, self.error(401, 40101, "unauthorized"))
                return
        if request.path != "/" or not body.get("topic"):
            request.answer(400, self.error(400, 40001, "invalid request: topic missing"))
            return
        state.received.append(Received(request.path, dict(request.headers), body))
        now = int(time.time())
        request.answer(200, {"id": f"m{state.next_id:011d}", "time": now,
                             "expires": now + 43200, "event": "message",
                             "topic": body["topic"], "title": body.get("title", ""),
                             "message": body.get("message", "")})
        state.next_id += 1


class GotifyApi:
    scheme: ClassVar[str] = "gotify"

    def handle(self, request: _Handler, state: ServiceState, body: dict[str, Any]) -> None:
        if state.mode == "error":
            request.answer(500, {"error": "Internal Server Error", "errorCode": 500,
                                 "errorDescription": "database is locked"})
            return
        token = request.headers.get("X-Gotify-Key")
        if request.path.split("?")[0] != "/message":
            request.answer(404, {"error": "Not Found", "errorCode": 404,
                                 "errorDescription": "page not found"})
            return
        if token != state.token:
            request.answer(401, {"error": "Unauthorized", "errorCode": 401,
                                 "errorDescription": "you need to provide a valid access "
                                                     "token or user credentials to access "
                                                     "this api"})
            return
        state.received.append(Received(request.path, dict(request.headers), body))
        request.answer(200, {"id": state.next_id, "appid": 1,
                             "message": body.get("message", ""),
                             "title": body.get("title", ""),
                             "priority": body.get("priority", 0),
                             "date": dt.datetime.now(dt.UTC).isoformat()})
        state.next_id += 1


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, api: _Api, state: ServiceState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.api, self.state = api, state


@dataclass
class Service:
    """A running stand-in: ``url(…)`` is the apprise URL that reaches it."""

    api: _Api
    state: ServiceState
    port: int

    @property
    def received(self) -> list[Received]:
        return self.state.received

    def set_mode(self, mode: str) -> None:
        self.state.mode = mode

    def url(self, path: str = "azlin", token: str | None = None) -> str:
        token = self.state.token if token is None else token
        if isinstance(self.api, NtfyApi):
            query = f"?token={token}" if token else ""
            return f"ntfy://127.0.0.1:{self.port}/{path}{query}"
        return f"gotify://127.0.0.1:{self.port}/{token}"


@contextmanager
def serving(api: _Api, token: str | None) -> Iterator[Service]:
    state = ServiceState(token=token)
    server = _Server(api, state)
    thread = threading.Thread(target=server.serve_forever, name="stand-in", daemon=True)
    thread.start()
    try:
        yield Service(api, state, server.server_address[1])
    finally:
        state.released.set()
        server.shutdown()
        server.server_close()
