"""The [metrics] switch: off it loads and runs nothing; on it serves on loopback and/or
rewrites a textfile; a reload that changes [metrics] moves the endpoint; a port that is
taken is one error line, and monitoring goes on."""

from __future__ import annotations

import logging
import os
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from azlin_lifecycle.adapters.prometheus import MetricsExporter, Sources
from azlin_lifecycle.config import LifecycleConfig, MetricsSettings
from azlin_lifecycle.fleet_book import FleetBook
from azlin_lifecycle.state import StateStore


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(url: str, accept: str | None = None) -> tuple[str, str]:
    request = urllib.request.Request(url, headers={"Accept": accept} if accept else {})
    with urllib.request.urlopen(request, timeout=10) as answer:
        return answer.headers["Content-Type"], answer.read().decode()


@pytest.fixture
def sources(tmp_path: Path) -> Iterator[Sources]:
    store = StateStore(tmp_path / "state.db")
    yield Sources(FleetBook(store), threading.Lock(), store)
    store.close()


def with_metrics(**settings: object) -> LifecycleConfig:
    return LifecycleConfig(metrics=MetricsSettings(**settings))  # type: ignore[arg-type]


def test_off_imports_and_starts_nothing(tmp_path: Path) -> None:
    """In a fresh interpreter, a daemon's parts built and started with [metrics] off leave
    prometheus_client unloaded; turning it on loads it."""
    script = f"""
import sys, threading
from azlin_lifecycle.adapters.prometheus import MetricsExporter, Sources
from azlin_lifecycle.config import LifecycleConfig, MetricsSettings
from azlin_lifecycle.fleet_book import FleetBook
from azlin_lifecycle.state import StateStore
store = StateStore()
exporter = MetricsExporter(LifecycleConfig(), Sources(FleetBook(store), threading.Lock(), store))
exporter.start()
threads = threading.active_count()
print(exporter.running is None, "prometheus_client" in sys.modules, threads)
port = {free_port()}
exporter.apply(LifecycleConfig(metrics=MetricsSettings(listen=f"127.0.0.1:{{port}}")))
exporter.wait()
print(exporter.running is not None, "prometheus_client" in sys.modules)
exporter.stop()
"""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout.split("\n")
    assert out[0] == "True False 1", out
    assert out[1] == "True True", out


def test_serves_both_formats_on_loopback_and_stops(sources: Sources) -> None:
    exporter = MetricsExporter(with_metrics(listen=f"localhost:{free_port()}"), sources)
    exporter.start()
    try:
        assert exporter.running is not None and exporter.running.endpoint is not None
        url = exporter.running.endpoint.url
        assert url.startswith("http://127.0.0.1:")  # "localhost" never binds ::1 only
        kind, text = scrape(url)
        assert kind.startswith("text/plain") and "azlin_lifecycle_vms_monitored 0.0" in text
        assert "process_resident_memory_bytes" in text
        kind, text = scrape(url, "application/openmetrics-text; version=1.0.0")
        assert kind.startswith("application/openmetrics-text") and text.endswith("# EOF\n")
    finally:
        exporter.stop()
    with pytest.raises(OSError):
        scrape(url)


def test_a_reload_moves_the_endpoint_and_off_closes_it(sources: Sources) -> None:
    first, second = free_port(), free_port()
    exporter = MetricsExporter(with_metrics(listen=f"127.0.0.1:{first}"), sources)
    exporter.start()
    try:
        scrape(f"http://127.0.0.1:{first}/metrics")
        exporter.apply(with_metrics(listen=f"127.0.0.1:{second}"))
        exporter.wait()
        scrape(f"http://127.0.0.1:{second}/metrics")
        with pytest.raises(OSError):
            scrape(f"http://127.0.0.1:{first}/metrics")
        running = exporter.running
        exporter.apply(with_metrics(listen=f"127.0.0.1:{second}"))  # unchanged: kept
        assert exporter.running is running
        exporter.apply(LifecycleConfig())
        exporter.wait()
        assert exporter.running is None
        with pytest.raises(OSError):
            scrape(f"http://127.0.0.1:{second}/metrics")
    finally:
        exporter.stop()


def test_a_taken_port_is_one_error_line_and_the_daemon_goes_on(
        sources: Sources, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        exporter = MetricsExporter(with_metrics(listen=f"127.0.0.1:{port}"), sources)
        with caplog.at_level(logging.ERROR, logger="azlin_lifecycle.metrics"):
            exporter.start()
        exporter.stop()
    [record] = caplog.records
    assert record.getMessage() == (
        f"metrics: cannot listen on 127.0.0.1:{port} (Address already in use); monitoring "
        "goes on without the endpoint: set another [metrics] listen")


def test_the_textfile_is_rewritten_atomically_and_readable_by_node_exporter(
        sources: Sources, tmp_path: Path) -> None:
    target = tmp_path / "textfile" / "azlin.prom"
    target.parent.mkdir()
    old = os.umask(0o077)  # the service's UMask
    try:
        exporter = MetricsExporter(with_metrics(textfile=str(target),
                                                textfile_interval_seconds=5), sources)
        exporter.start()
        try:
            assert exporter.running is not None and exporter.running.textfile is not None
            assert exporter.running.endpoint is None
            writer = exporter.running.textfile
            assert writer.write() and writer.write()
        finally:
            exporter.stop()
    finally:
        os.umask(old)
    assert "azlin_lifecycle_vms_monitored 0.0" in target.read_text()
    assert stat.S_IMODE(target.stat().st_mode) == 0o644
    assert sorted(p.name for p in target.parent.iterdir()) == ["azlin.prom"]  # no temp left


def test_an_unwritable_textfile_is_logged_once_until_it_changes(
        sources: Sources, tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    target = tmp_path / "missing-dir" / "azlin.prom"
    exporter = MetricsExporter(with_metrics(textfile=str(target)), sources)
    with caplog.at_level(logging.INFO, logger="azlin_lifecycle.metrics"):
        exporter.start()
        try:
            assert exporter.running is not None and exporter.running.textfile is not None
            writer = exporter.running.textfile
            assert not writer.write() and not writer.write()
            target.parent.mkdir()
            assert writer.write()
        finally:
            exporter.stop()
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors == [f"metrics: cannot write {target}: No such file or directory; trying "
                      "again every 15s"]
    assert f"metrics: writing {target} again" in caplog.text


def test_ipv6_loopback(sources: Sources) -> None:
    if not socket.has_ipv6:
        pytest.skip("no IPv6 on this machine")
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
            port = s.getsockname()[1]
    except OSError:
        pytest.skip("no IPv6 loopback here")
    exporter = MetricsExporter(with_metrics(listen=f"[::1]:{port}"), sources)
    exporter.start()
    try:
        assert exporter.running is not None and exporter.running.endpoint is not None
        assert exporter.running.endpoint.url == f"http://[::1]:{port}/metrics"
        assert "azlin_lifecycle_build_info" in scrape(f"http://[::1]:{port}/metrics")[1]
    finally:
        exporter.stop()


def test_a_stalled_scraper_does_not_block_the_next_one_for_long(sources: Sources) -> None:
    """One request at a time: a client that connects and sends nothing is dropped after
    the handler's timeout, and the next scrape is answered."""
    from azlin_lifecycle.adapters.prometheus import serve

    port = free_port()
    exporter = MetricsExporter(with_metrics(listen=f"127.0.0.1:{port}"), sources)
    old = serve._Quiet.timeout
    serve._Quiet.timeout = 1.0
    exporter.start()
    try:
        with socket.create_connection(("127.0.0.1", port)):
            started = time.monotonic()
            scrape(f"http://127.0.0.1:{port}/metrics")
            assert time.monotonic() - started < 5
    finally:
        exporter.stop()
        serve._Quiet.timeout = old


def test_a_reload_during_a_scrape_does_not_deadlock_the_loop(sources: Sources) -> None:
    """The loop applies a reload holding its view lock; a scrape waiting for that lock
    must not make the loop wait for the scrape: the restart runs on its own thread."""
    first, second = free_port(), free_port()
    exporter = MetricsExporter(with_metrics(listen=f"127.0.0.1:{first}"), sources)
    exporter.start()
    got: list[str] = []
    try:
        with sources.lock:  # the loop, mid-reload
            scraper = threading.Thread(target=lambda: got.append(
                scrape(f"http://127.0.0.1:{first}/metrics")[1]))
            scraper.start()
            time.sleep(0.3)  # the scrape is in, waiting for the books
            began = time.monotonic()
            exporter.apply(with_metrics(listen=f"127.0.0.1:{second}"))
            assert time.monotonic() - began < 0.5
        scraper.join(10)
        exporter.wait()
        assert got and "azlin_lifecycle_vms_monitored" in got[0]
        assert "azlin_lifecycle_vms_monitored" in scrape(f"http://127.0.0.1:{second}/metrics")[1]
    finally:
        exporter.stop()


def test_a_stuck_loop_fails_the_scrape_instead_of_hanging_it(
        sources: Sources, monkeypatch: pytest.MonkeyPatch) -> None:
    from azlin_lifecycle.adapters.prometheus import collector

    monkeypatch.setattr(collector, "LOCK_TIMEOUT", 0.5)
    port = free_port()
    exporter = MetricsExporter(with_metrics(listen=f"127.0.0.1:{port}"), sources)
    exporter.start()
    try:
        with sources.lock, pytest.raises(urllib.error.HTTPError) as failed:
            scrape(f"http://127.0.0.1:{port}/metrics")
        assert failed.value.code == 500
        assert "azlin_lifecycle_build_info" in scrape(f"http://127.0.0.1:{port}/metrics")[1]
    finally:
        exporter.stop()


def test_the_daemon_turns_metrics_on_when_its_file_changes(
        tmp_path: Path, isolated_dirs: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The real daemon (in this process) against the simulator: [metrics] added to the file
    while it runs is served after its reload, and stopping the daemon closes it."""
    from tests.support.inprocess import running_daemon
    from tests.support.simulated import fleet_in_env
    from tests.support.waiting import wait_for

    port = free_port()
    url = f"http://127.0.0.1:{port}/metrics"
    with fleet_in_env(monkeypatch, tmp_path / "sim", 1) as fleet:
        config = isolated_dirs / "lifecycle-config.toml"
        fleet.write_config(config, check_interval_seconds=10)
        with running_daemon(config) as daemon:
            wait_for(lambda: daemon.get_status().healthy == 1, 30, "the first check")
            assert daemon.parts.metrics.running is None
            fleet.write_config(config, check_interval_seconds=10,
                               extra_toml={"metrics": {"listen": f"127.0.0.1:{port}"}})

            def served() -> bool:
                try:
                    return 'azlin_lifecycle_vm_check_success{resource_group="rg-sim",' \
                        'vm="vm-001"} 1.0' in scrape(url)[1]
                except OSError:
                    return False

            wait_for(served, 20, "the endpoint after the reload", every=0.2)
    with pytest.raises(OSError):
        scrape(url)
