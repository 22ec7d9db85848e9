"""The metrics endpoint scraped over HTTP from the real server, and the health check.

Counters must move with what the server did (accepted, refused, processed per kind and
state, complaints per account, scheduler runs), the queue gauge must read the shared
database, and ``/healthz`` must turn 503 while PostgreSQL refuses connections and come back
by itself when it accepts them again.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from feedback_mta import config as config_mod
from feedback_mta.edge import smtp as codes
from feedback_mta.edge.intake import Arrival, Intake
from feedback_mta.service.metrics import QueueCollector
from feedback_mta.store import db
from tests.conftest import PG_ADMIN, ROOT, write_config
from tests.support import message, seed, send
from tests.test_feedback_loops import Setup, deliver, sample


def scrape(port: int) -> dict[tuple[str, tuple], float]:
    """{(sample name, sorted labels): value} from /metrics."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as resp:
        assert resp.status == 200
        assert resp.headers["Content-Type"].startswith("text/plain")
        text = resp.read().decode()
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def registry() -> dict[tuple[str, tuple], float]:
    """The same, read from this process's registry: the counters as they stood before an
    in-process server started (they count for the whole process, across tests)."""
    from feedback_mta.counters import REGISTRY

    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in REGISTRY.collect() for s in family.samples}


def scrape_until(port: int, key: tuple[str, tuple], above: float = 0,
                 timeout: float = 15) -> dict:
    """A scrape in which ``key`` is above ``above`` (scheduled jobs run on their own clock)."""
    deadline = time.monotonic() + timeout
    while True:
        values = scrape(port)
        if values.get(key, 0) > above or time.monotonic() > deadline:
            return values
        time.sleep(0.2)


def get(port: int, path: str) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=15) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def setup(tmp_path, database_url, server_factory):
    path = write_config(tmp_path / "metrics.toml", database_url,
                        metrics={"listen": "127.0.0.1:0"},
                        review={"check_interval": "1s"})
    cfg = config_mod.load(path, env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg, contacts=4)
    baseline = registry()
    server = server_factory(path)
    server.baseline = baseline
    server.metrics_port = server.wait_for("metrics.started")["port"]
    yield Setup(server, engine, s, path)
    engine.dispose()


def test_counters_follow_what_the_server_did(setup):
    st = setup
    port = st.server.metrics_port
    before = scrape(port)

    def moved(now: dict, key: tuple) -> float:
        """How far a counter went since the server started."""
        return now.get(key, 0) - st.server.baseline.get(key, 0)

    assert before[("feedback_mta_queue_received", ())] == 0
    assert moved(before, ("feedback_mta_messages_accepted_total", (("protocol", "smtp"),))) == 0

    target = st.seed.contact_ids[1]
    deliver(st, sample(st, "ours-yahoo-arf-redacted.eml", target), st.fbl())
    deliver(st, sample(st, "ours-yahoo-arf-redacted.eml", st.seed.contact_ids[2]), st.fbl())
    deliver(st, message(subject="unsubscribe"), st.seed.unsubscribe(st.seed.contact_ids[3]))
    deliver(st, message(subject="what is this"), st.fbl(), "a@b.test")  # unknown
    code, _ = send(st.server.port, "a@b.test", ["nobody@fb.test"], message())
    assert code == 550  # refused at RCPT: counted, never stored

    after = scrape(port)
    assert moved(after, ("feedback_mta_messages_accepted_total", (("protocol", "smtp"),))) == 4
    assert moved(after, ("feedback_mta_rcpt_refused_total", ())) == 1
    assert moved(after, ("feedback_mta_intake_seconds_count", ())) == 4
    assert moved(after, ("feedback_mta_messages_processed_total",
                         (("kind", "complaint"), ("state", "processed")))) == 2
    assert moved(after, ("feedback_mta_messages_processed_total",
                         (("kind", "unsubscribe"), ("state", "processed")))) == 1
    assert moved(after, ("feedback_mta_messages_processed_total",
                         (("kind", "unknown"), ("state", "ignored")))) == 1
    assert moved(after, ("feedback_mta_complaints_total",
                         (("account", str(st.seed.account_id)),))) == 2
    assert moved(after, ("feedback_mta_process_seconds_count", ())) == 4
    assert after[("feedback_mta_queue_received", ())] == 0
    sweep = ("feedback_mta_scheduler_runs_total", (("job", "inbox.sweep"), ("result", "ok")))
    after = scrape_until(port, sweep, above=st.server.baseline.get(sweep, 0))
    assert moved(after, sweep) >= 1
    assert moved(after, ("feedback_mta_scheduler_runs_total",
                         (("job", "review.check"), ("result", "ok")))) >= 1
    assert after[("feedback_mta_sessions", ())] == 0

    status, body = get(port, "/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert get(port, "/nothing")[0] == 404


def test_queue_gauge_reads_the_shared_database(engine):
    """Messages stored but not yet processed (by any node) are the queue, with their age."""
    collector = QueueCollector(engine)
    intake = Intake(engine)
    intake.start()
    try:
        for _ in range(3):
            intake.submit(Arrival(raw=message(), mail_from="a@b.test",
                                  rcpt_tos=("fbl@fb.test",))).result(10)
    finally:
        intake.stop()
    values = {f.name: f.samples[0].value for f in collector.collect()}
    assert values["feedback_mta_queue_received"] == 3
    assert 0 <= values["feedback_mta_queue_oldest_seconds"] < 60


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_health_fails_while_postgres_refuses_and_recovers_by_itself(tmp_path, server_factory,
                                                                     database_url):
    """(PostgreSQL only: a SQLite file cannot be made unreachable to one process.)"""
    path = write_config(tmp_path / "health.toml", database_url,
                        metrics={"listen": "127.0.0.1:0"},
                        database={"url": database_url, "connect_timeout": "2s"})
    server = server_factory(path)
    port = server.wait_for("metrics.started")["port"]
    assert get(port, "/healthz")[0] == 200

    name = sa.engine.make_url(database_url).database
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false'))
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n"), {"n": name})
        status, body = get(port, "/healthz")
        assert status == 503, body
        details = json.loads(body)
        assert details["status"] == "unhealthy"
        assert "not currently accepting connections" in details["database"]
        server.wait_for("health.failed")
        # The queue gauge is left out rather than reported wrong; the counters still answer.
        during = scrape(port)
        assert ("feedback_mta_queue_received", ()) not in during
        assert ("feedback_mta_rcpt_refused_total", ()) in during
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true'))
        admin.dispose()
    status, body = get(port, "/healthz")
    assert status == 200, body
    # And the server still takes mail.
    code, text = send(server.port, "a@b.test", ["fbl@fb.test"], message())
    assert code == 250 and text.startswith(codes.stored(0)[4:20].encode()), text


@pytest.mark.process
def test_a_taken_port_is_named_in_the_error(tmp_path, sqlite_url):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        for section, values, named in (
                ("metrics", {"listen": f"127.0.0.1:{port}"}, "([metrics] listen)"),
                ("smtp", {"port": port}, "([smtp] host, port)")):
            path = write_config(tmp_path / f"{section}.toml", sqlite_url, **{section: values})
            done = subprocess.run([sys.executable, "-m", "feedback_mta", "serve", "--config",
                                   str(path)], capture_output=True, cwd=ROOT, timeout=60)
            assert done.returncode != 0
            assert f"cannot listen on 127.0.0.1:{port} {named}" in done.stderr.decode(), (
                done.stderr)
