"""``feedback-mta check-config``: validates, reaches the database and the relay, and says
precisely what is wrong (and with which exit code) when it cannot."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator

import pytest

from feedback_mta.cli import common as cli
from feedback_mta.config import EXAMPLE_SECRET
from feedback_mta.store import db as db_mod
from tests.conftest import write_config
from tests.support import free_port
from tests.test_cli import ok_json, run


class FakeRelay:
    """A real listening socket that answers the way a broken relay would (or not at all)."""

    def __init__(self, greeting: bytes | None) -> None:
        self.greeting = greeting
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen()
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            if self.greeting == b"":  # hang up at once
                conn.close()
            elif self.greeting is not None:
                conn.sendall(self.greeting)

    def close(self) -> None:
        for conn in self.conns:
            conn.close()
        self.sock.close()


@pytest.fixture
def fake_relay() -> Iterator[type[FakeRelay]]:
    made: list[FakeRelay] = []

    def make(greeting: bytes | None) -> FakeRelay:
        made.append(FakeRelay(greeting))
        return made[-1]

    yield make
    for relay in made:
        relay.close()




@pytest.mark.empty_database
def test_all_reachable(tmp_path, database_url, relay):
    path = write_config(tmp_path / "c.toml", database_url,
                        outbound={"relay": f"127.0.0.1:{relay.port}"},
                        metrics={"listen": "127.0.0.1:9125"})
    out = ok_json(path, "check-config")
    assert out["schema"] is None  # a check changes nothing; serve will upgrade
    assert out["schema_head"] == db_mod.head_revision()
    ok_json(path, "db", "upgrade")
    out = ok_json(path, "check-config")
    assert out["schema"] == out["schema_head"]
    assert out["relay"].startswith("220 ")
    assert out["metrics"] == "127.0.0.1:9125"
    assert out["warnings"] == []
    assert relay.messages == []  # a probe sends nothing


NO_RELAY = "[outbound] relay is empty: "


def _warnings(path) -> list[str]:
    """check-config's warnings but the one about the relay (these configs have none)."""
    return [w for w in ok_json(path, "check-config")["warnings"] if not w.startswith(NO_RELAY)]


def test_no_relay_and_the_example_secret_are_said(tmp_path, sqlite_url):
    path = write_config(tmp_path / "c.toml", sqlite_url, security={"secret_key": EXAMPLE_SECRET})
    ok_json(path, "db", "upgrade")
    out = ok_json(path, "check-config")
    assert out["relay"].startswith("not configured")
    assert out["metrics"] == "off"
    assert out["warnings"] == [
        "[security] secret_key is the example's: set a long random one",
        NO_RELAY + "acknowledgements of dealers' replies ([replies] acknowledge) and "
                   "confirmation requests to pending contacts ([consent] send_confirmation) "
                   "are on but never sent (nor the digests); set a relay"]


def test_webhooks_to_private_networks_are_said(tmp_path, sqlite_url):
    """The example config lets a receiver on loopback have the events (the walkthrough);
    a deployment that keeps it is told."""
    quiet = {"replies": {"acknowledge": False}, "consent": {"send_confirmation": False}}
    path = write_config(tmp_path / "c.toml", sqlite_url, **quiet,
                        webhooks={"allow_private_networks": True})
    ok_json(path, "db", "upgrade")
    [warning] = ok_json(path, "check-config")["warnings"]
    assert warning.startswith("[webhooks] allow_private_networks is on")
    path = write_config(tmp_path / "c.toml", sqlite_url, **quiet)
    assert ok_json(path, "check-config")["warnings"] == []


def test_mail_that_cannot_go_without_a_relay_is_said(tmp_path, sqlite_url, relay):
    """The review page (its sign-in links), acknowledgements and consent's confirmation
    requests, on without a relay: each named; none on, or a relay set: no such warning."""
    path = write_config(tmp_path / "c.toml", sqlite_url, http={"listen": "127.0.0.1:0"})
    ok_json(path, "db", "upgrade")
    [warning] = ok_json(path, "check-config")["warnings"]
    assert warning.startswith(NO_RELAY) and "review page's sign-in links" in warning
    assert "acknowledgements" in warning and "confirmation requests" in warning
    path = write_config(tmp_path / "c.toml", sqlite_url, http={"listen": "127.0.0.1:0"},
                        replies={"acknowledge": False}, consent={"confirm_methods": []})
    [warning] = ok_json(path, "check-config")["warnings"]
    assert "review page" in warning and "acknowledgements" not in warning
    assert "confirmation requests" not in warning  # nobody is asked to confirm
    path = write_config(tmp_path / "c.toml", sqlite_url, replies={"acknowledge": False},
                        consent={"send_confirmation": False})
    assert ok_json(path, "check-config")["warnings"] == []
    path = write_config(tmp_path / "c.toml", sqlite_url, http={"listen": "127.0.0.1:0"},
                        outbound={"relay": f"127.0.0.1:{relay.port}"})
    assert ok_json(path, "check-config")["warnings"] == []


@pytest.mark.parametrize(("greeting", "expected"), [
    ("refused", "connection refused (nothing listens there)"),
    (None, "no answer within 1s"),
    (b"554 5.7.1 go away\r\n", "greeted with 554 5.7.1 go away"),
    (b"", "closed the connection without a reply"),
])
def test_relay_problems_are_named(tmp_path, sqlite_url, fake_relay, greeting, expected):
    port = free_port() if greeting == "refused" else fake_relay(greeting).port
    path = write_config(tmp_path / "c.toml", sqlite_url,
                        outbound={"relay": f"127.0.0.1:{port}", "timeout": "1s"})
    result = run(path, "check-config", "--json")
    assert result.returncode == cli.EXIT_FAILED, result.stderr
    assert result.stdout == ""
    assert result.stderr.strip() == f"feedback-mta: error: relay 127.0.0.1:{port}: {expected}"


def test_unreachable_database_is_exit_4_with_the_url(tmp_path):
    port = free_port()
    url = f"postgresql+psycopg://feedback:secret@127.0.0.1:{port}/feedback"
    path = write_config(tmp_path / "c.toml", url, database={"url": url, "connect_timeout": "1s"})
    result = run(path, "check-config")
    assert result.returncode == cli.EXIT_DATABASE
    err = result.stderr.strip()
    assert err.startswith(f"feedback-mta: error: database postgresql+psycopg://feedback:***@"
                          f"127.0.0.1:{port}/feedback: "), err
    assert "refused" in err and "secret" not in err


def test_schema_behind_without_auto_upgrade(tmp_path, sqlite_url):
    path = write_config(tmp_path / "c.toml", sqlite_url, database={"auto_upgrade": False})
    result = run(path, "check-config")
    assert result.returncode == cli.EXIT_DATABASE
    assert (f"database schema is at nothing, this version needs {db_mod.head_revision()}: "
            "run `feedback-mta db upgrade`") in result.stderr
    assert run(path, "db", "upgrade").returncode == 0
    assert ok_json(path, "check-config")["schema"] == db_mod.head_revision()


def test_config_errors_are_exit_3_naming_the_key(tmp_path, sqlite_url):
    path = write_config(tmp_path / "c.toml", sqlite_url, metrics={"listen": "9125"})
    result = run(path, "check-config")
    assert result.returncode == cli.EXIT_CONFIG
    assert "[metrics] listen: expected host:port" in result.stderr


def test_the_http_listener_is_checked_and_shown(tmp_path, sqlite_url):
    path = write_config(tmp_path / "c.toml", sqlite_url, http={"listen": "127.0.0.1:8025"})
    result = run(path, "check-config", "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["http"] == "127.0.0.1:8025"
    path = write_config(tmp_path / "c.toml", sqlite_url, http={"listen": "192.0.2.55:8025"})
    result = run(path, "check-config")
    assert result.returncode == cli.EXIT_CONFIG
    assert "[http] listen '192.0.2.55' cannot be bound here" in result.stderr
    path = write_config(tmp_path / "c.toml", sqlite_url, http={"listen": "localhost"})
    assert "[http] listen: expected host:port" in run(path, "check-config").stderr


def test_feedback_over_https_is_checked_and_shown(tmp_path, sqlite_url):
    path = write_config(tmp_path / "c.toml", sqlite_url,
                        http={"listen": "127.0.0.1:8025", "public_url": "https://fb.example.com"},
                        webhooks={"mailgun": {"signing_key": "k" * 20},
                                  "postmark": {"username": "u", "password": "p" * 20}})
    ok_json(path, "db", "upgrade")
    out = ok_json(path, "check-config")
    assert out["one_click"] == "https://fb.example.com"
    assert out["hooks"] == ["mailgun", "postmark"]  # SNS: off until its topics are named
    assert [w for w in out["warnings"] if not w.startswith(NO_RELAY)] == []
    path = write_config(tmp_path / "c.toml", sqlite_url, http={"public_url": "https://fb.test"})
    assert _warnings(path) == [
        "[http] listen is empty: one-click unsubscribes and ESP webhooks have nowhere to arrive"]
    path = write_config(tmp_path / "c.toml", sqlite_url,
                        webhooks={"ses": {"topic_arns": ["arn:aws:sns:us-west-2:1:T"]}})
    assert _warnings(path) == [
        "[http] listen is empty: one-click unsubscribes and ESP webhooks have nowhere to arrive"]
    path = write_config(tmp_path / "c.toml", sqlite_url,
                        http={"listen": "127.0.0.1:8025", "public_url": "http://fb.test"},
                        webhooks={"ses": {"topic_arns": ["arn:aws:sns:us-west-2:1:T"]}})
    assert _warnings(path) == [
        "[http] public_url is not https: RFC 8058 one-click needs an HTTPS URL, and mailbox "
        "providers ignore others"]
    path = write_config(tmp_path / "c.toml", sqlite_url,
                        webhooks={"mailgun": {"signing_key": "k" * 20}})
    assert _warnings(path) == [
        "[http] listen is empty: one-click unsubscribes and ESP webhooks have nowhere to arrive"]
    for section, problem in (({"sendgrid": {"public_key": "bm90IGEga2V5"}},
                              "[webhooks.sendgrid] public_key: not a verification key"),
                             ({"ses": {"ca_file": "/nowhere/ca.pem"}},
                              "[webhooks.ses] ca_file: no such file")):
        path = write_config(tmp_path / "c.toml", sqlite_url, webhooks=section)
        result = run(path, "check-config")
        assert result.returncode == cli.EXIT_CONFIG and problem in result.stderr, result.stderr
