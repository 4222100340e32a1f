"""Where the metrics go: an HTTP endpoint (prometheus_client's WSGI app, which answers
OpenMetrics or the Prometheus text format as the scraper's Accept header asks) and a file
rewritten atomically for node_exporter's textfile collector.

The endpoint answers one request at a time on one thread of its own, not a thread per
request as prometheus_client's ``start_http_server`` does: a new thread per scrape
drew a fresh malloc arena in a daemon already running dozens of threads, and scraping
every second grew its memory by ~5 MB at 100 VMs (bench/metrics_cost.py). Scrapes are
small and sequential; a client that stalls is cut off by the socket timeout."""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
from pathlib import Path
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client.exposition import generate_latest, make_wsgi_app
from prometheus_client.registry import CollectorRegistry

log = logging.getLogger("azlin_lifecycle.metrics")
TEXTFILE_MODE = 0o644  # node_exporter runs as another user; the service's umask is 0077
CLIENT_TIMEOUT = 10.0  # seconds a scraper may take to send its request and read the answer


class _Quiet(WSGIRequestHandler):
    timeout = CLIENT_TIMEOUT

    def log_message(self, format: str, *args: object) -> None:
        """No line per request."""


class _Server(WSGIServer):
    allow_reuse_address = True


class Endpoint:
    """``GET http://HOST:PORT/metrics`` (any path answers the same), on a thread of its own.
    Raises OSError when it cannot listen (the port is taken, the address is not here)."""

    def __init__(self, registry: CollectorRegistry, host: str, port: int) -> None:
        # "localhost" may resolve to ::1 first, where a scraper of 127.0.0.1 finds nothing.
        self.host = "127.0.0.1" if host == "localhost" else host
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        server: type[_Server] = type("Server", (_Server,), {"address_family": family})
        self._server = make_server(self.host, port, make_wsgi_app(registry), server,
                                   handler_class=_Quiet)
        self.port = self._server.server_port
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="metrics-http", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}/metrics"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


class Textfile:
    """Rewrites ``path`` every ``every`` seconds on a thread of its own: written beside it
    under a hidden name, then renamed over it (node_exporter never reads half a file).
    A failure is logged once, and again only when it changes; success after one, once."""

    def __init__(self, registry: CollectorRegistry, path: Path, every: float) -> None:
        self.registry = registry
        self.path = path
        self.every = every
        self.writes = 0
        self._problem: str | None = None
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="metrics-textfile", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def write(self) -> bool:
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.{threading.get_ident()}")
        try:
            data = generate_latest(self.registry)
            with open(tmp, "wb") as f:
                os.fchmod(f.fileno(), TEXTFILE_MODE)
                f.write(data)
            os.replace(tmp, self.path)
        except OSError as exc:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            problem = f"{exc.strerror or exc}"
            if problem != self._problem:
                self._problem = problem
                hint = (" (under the service's sandbox only the directories its unit opens "
                        "are writable: run 'azlin lifecycle install' again after setting "
                        "[metrics] textfile)" if exc.errno == 30 else "")
                log.error("metrics: cannot write %s: %s%s; trying again every %gs",
                          self.path, problem, hint, self.every)
            return False
        if self._problem is not None:
            log.info("metrics: writing %s again", self.path)
            self._problem = None
        self.writes += 1
        return True

    def _run(self) -> None:
        while not self._stop.is_set():
            self.write()
            self._stop.wait(self.every)

    def close(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
