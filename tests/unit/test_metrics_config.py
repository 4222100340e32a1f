"""``[metrics]``: off by default, each key validated on load with the one-line message, and
an endpoint beyond loopback accepted only as written, with a warning."""

from __future__ import annotations

import logging

import pytest

from azlin_lifecycle.config import LifecycleConfig, MetricsSettings, parse_toml, render_toml
from azlin_lifecycle.errors import LifecycleConfigError


def test_off_by_default() -> None:
    metrics = LifecycleConfig().metrics
    assert metrics == MetricsSettings()
    assert (metrics.listen, metrics.textfile, metrics.enabled) == (None, None, False)
    assert "[metrics]" not in render_toml(LifecycleConfig())


@pytest.mark.parametrize(("listen", "address"), [
    ("127.0.0.1:9464", ("127.0.0.1", 9464)),
    ("9464", ("127.0.0.1", 9464)),
    ("localhost:9100", ("localhost", 9100)),
    ("[::1]:9464", ("::1", 9464)),
    ("127.0.0.2:1", ("127.0.0.2", 1)),
])
def test_loopback_addresses_load_without_a_warning(
        listen: str, address: tuple[str, int], caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = parse_toml(f'[metrics]\nlisten = "{listen}"\n', "f.toml")
    assert cfg.metrics.address == address and cfg.metrics.enabled
    assert caplog.records == []
    assert parse_toml(render_toml(cfg), "again") == cfg


@pytest.mark.parametrize("listen", ["0.0.0.0:9464", "[::]:9464", "10.1.2.3:9464"])
def test_an_address_beyond_loopback_is_accepted_as_written_and_warned_about(
        listen: str, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = parse_toml(f'[metrics]\nlisten = "{listen}"\n', "f.toml")
    assert cfg.metrics.listen == listen
    [record] = caplog.records
    assert record.getMessage() == (
        f'f.toml [metrics]: listen = "{listen}" serves the metrics (VM names, resource groups, '
        "health) without authentication beyond this machine; use \"127.0.0.1:PORT\" unless a "
        "firewall limits who can reach it")


LISTEN_ALLOWED = ('an address to serve metrics on: "HOST:PORT" with HOST an IP address or '
                  'localhost (e.g. "127.0.0.1:9464", "[::1]:9464"), or a port alone ("9464") '
                  "for 127.0.0.1")
TEXTFILE_ALLOWED = ("an absolute path (may start with ~) of a file ending in .prom, for "
                    "node_exporter's textfile collector")


@pytest.mark.parametrize(("line", "message"), [
    ('listen = "example.com:9464"', f'listen = "example.com:9464" is not allowed: expected {LISTEN_ALLOWED}'),
    ('listen = "127.0.0.1"', f'listen = "127.0.0.1" is not allowed: expected {LISTEN_ALLOWED}'),
    ('listen = "127.0.0.1:0"', f'listen = "127.0.0.1:0" is not allowed: expected {LISTEN_ALLOWED}'),
    ('listen = "127.0.0.1:65536"', f'listen = "127.0.0.1:65536" is not allowed: expected {LISTEN_ALLOWED}'),
    ('listen = "::1:9464"', f'listen = "::1:9464" is not allowed: expected {LISTEN_ALLOWED}'),
    ('listen = ":9464"', f'listen = ":9464" is not allowed: expected {LISTEN_ALLOWED}'),
    ("listen = 9464", f"listen = 9464 is not allowed: expected {LISTEN_ALLOWED}"),
    ('listen = ""', f'listen = "" is not allowed: expected {LISTEN_ALLOWED}'),
    ('textfile = "metrics.prom"', f'textfile = "metrics.prom" is not allowed: expected {TEXTFILE_ALLOWED}'),
    ('textfile = "/var/lib/node_exporter/azlin.txt"',
     f'textfile = "/var/lib/node_exporter/azlin.txt" is not allowed: expected {TEXTFILE_ALLOWED}'),
    ('textfile = "/var/lib/node_exporter/.prom"',
     f'textfile = "/var/lib/node_exporter/.prom" is not allowed: expected {TEXTFILE_ALLOWED}'),
    ("textfile_interval_seconds = 1",
     "textfile_interval_seconds = 1 is not allowed: expected an integer from 5 to 3600"),
    ("port = 9464", "unknown key 'port'; allowed keys: listen, textfile, textfile_interval_seconds"),
])
def test_bad_values_are_one_line_naming_key_value_and_what_is_allowed(
        line: str, message: str) -> None:
    with pytest.raises(LifecycleConfigError) as err:
        parse_toml(f"[metrics]\n{line}\n", "f.toml")
    assert str(err.value) == f"f.toml [metrics]: {message}"
    assert "\n" not in str(err.value)


def test_a_textfile_alone_turns_metrics_on_and_round_trips() -> None:
    cfg = parse_toml('[metrics]\ntextfile = "~/node-exporter/azlin.prom"\n'
                     "textfile_interval_seconds = 30\n", "f.toml")
    assert cfg.metrics.enabled and cfg.metrics.address is None
    assert cfg.metrics.textfile == "~/node-exporter/azlin.prom"
    assert parse_toml(render_toml(cfg), "again") == cfg
