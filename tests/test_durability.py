"""Nothing accepted is lost; nothing is acted on twice (DESIGN.md, invariants)."""

from __future__ import annotations

import os
import random
import signal
import smtplib
import socket
import sqlite3
import threading
import time

import pytest
import sqlalchemy as sa

from feedback_mta.edge import smtp as codes
from feedback_mta.edge.intake import Arrival, Intake
from feedback_mta.store.models import Contact, Event
from tests.conftest import write_config
from tests.support import Sender, inbound_rows, message, open_data, seed, send, soak, wait_all_done


def _opt_out_events(engine) -> list[tuple[int, int]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(
            sa.select(Event.subject_id, Event.inbound_message_id)
            .where(Event.action == "contact.opted_out"))]


def test_same_message_twice_is_recorded_and_acted_on_once(server, engine, cfg):
    s = seed(engine, cfg)
    rcpt = s.unsubscribe(s.contact_ids[0])
    raw = message(subject="unsubscribe", message_id="twice@client.test")
    # The second copy came through another relay: an extra Received line, CRLF kept.
    relayed = b"Received: from mx2.isp.test by us; Sat, 21 Nov 2026 10:00:00 +0000\r\n" + raw
    assert send(server.port, "", [rcpt], raw)[0] == 250
    assert send(server.port, "", [rcpt.upper()], relayed)[0] == 250
    rows = wait_all_done(engine, 2)
    assert [(r["state"], r["reason"]) for r in rows] == [("processed", "opted out"),
                                                           ("ignored", "duplicate")]
    assert rows[1]["duplicate_of"] == rows[0]["id"]
    assert _opt_out_events(engine) == [(s.contact_ids[0], rows[0]["id"])]


def test_same_message_id_with_other_content_is_not_a_duplicate(server, engine, cfg):
    s = seed(engine, cfg)
    for i in range(2):
        raw = message(body=f"copy {i}", message_id="same@client.test")
        assert send(server.port, "", [s.unsubscribe(s.contact_ids[i])], raw)[0] == 250
    rows = wait_all_done(engine, 2)
    assert [r["state"] for r in rows] == ["processed", "processed"]


def test_received_messages_are_processed_on_start(tmp_path, config_file, engine, cfg,
                                                  server_factory):
    """Messages stored by an earlier run that died before processing them."""
    s = seed(engine, cfg)
    intake = Intake(engine)
    intake.start()
    futures = [intake.submit(Arrival(raw=message(), mail_from="",
                                     rcpt_tos=(s.unsubscribe(cid),)))
               for cid in s.contact_ids]
    ids = [f.result(10) for f in futures]
    intake.stop()
    assert {r["state"] for r in inbound_rows(engine)} == {"received"}

    server = server_factory(config_file)
    assert server.wait_for("server.started")["recovered"] == len(ids)
    rows = wait_all_done(engine, len(ids))
    assert [r["state"] for r in rows] == ["processed"] * len(ids)
    with engine.connect() as conn:
        statuses = conn.execute(sa.select(Contact.status)).scalars().all()
    assert statuses == ["opted_out"] * len(ids)


def test_store_failure_answers_451_then_recovers(tmp_path, database_url, engine, cfg,
                                                 server_factory):
    server = server_factory(write_config(
        tmp_path / "c.toml", database_url, database={"busy_timeout": "0.5s"},
        smtp={"store_timeout": "5s"}))
    url = sa.engine.make_url(database_url)
    if url.get_backend_name() == "sqlite":
        blocker = sqlite3.connect(url.database, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        release = blocker.rollback
    else:
        blocker_engine = sa.create_engine(database_url)
        blocker = blocker_engine.connect()
        blocker.execute(sa.text("LOCK TABLE inbound_message IN ACCESS EXCLUSIVE MODE"))
        release = blocker.rollback
    try:
        code, text = send(server.port, "a@isp.test", ["fbl@fb.test"], message())
        assert (code, text) == (int(codes.STORE_FAILED[:3]), codes.STORE_FAILED[4:].encode())
    finally:
        release()
    server.wait_for("message.store_failed")
    assert send(server.port, "a@isp.test", ["fbl@fb.test"], message())[0] == 250
    assert len(inbound_rows(engine)) == 1  # the refused one is not stored, the retry is


@pytest.mark.process
def test_sigterm_finishes_the_message_in_flight_and_exits_0(server, engine):
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        f = open_data(sock)
        sock.sendall(b"Subject: in flight\r\n\r\nbody\r\n")
        # An idle second session is told to come back later.
        idle = smtplib.SMTP("127.0.0.1", server.port)
        server.proc.send_signal(signal.SIGTERM)
        server.wait_for("server.stopping")
        sock.sendall(b".\r\n")
        assert f.readline().startswith(b"250 2.0.0 Ok: stored as ")
        assert f.readline().startswith(codes.SHUTTING_DOWN.encode())
        # The idle session already got its 421 and was closed; smtplib reads it now.
        assert idle.noop()[0] == 421
    assert server.proc.wait(30) == 0
    stopped = server.wait_for("server.stopped")
    assert stopped["drained"] is True
    assert len(inbound_rows(engine)) == 1


#: How long a server restarted under load may take to say it started: a machine busy with
#: other tests as well as this load has taken over 30 s to import the service.
RESTART_WITHIN = 90


def _kill_repeatedly(start, clients: list[threading.Thread], stop: threading.Event,
                     kills: int, rng: random.Random, pause: tuple[float, float],
                     join_within: float):
    """Start the server (``start()``, which also points the clients at it) and the clients,
    then ``kills`` times, after a random ``pause``: kill -9 and start again; stop the
    clients. The last server, still running."""
    server = start()
    for c in clients:
        c.start()
    try:
        for _ in range(kills):
            time.sleep(rng.uniform(*pause))
            server.kill()
            server = start()
        time.sleep(0.5)
    finally:
        stop.set()
        for c in clients:
            c.join(join_within)
    return server


@pytest.mark.process
@pytest.mark.parametrize("kills", [3, pytest.param(soak(25), marks=pytest.mark.slow)])
def test_kill_9_under_load_loses_nothing_and_acts_once(tmp_path, database_url, engine, cfg,
                                                       server_factory, kills):
    """kill -9 at random moments under load; 3 times in the default run, 25 in the soak
    (``pytest -m slow``; 5 in CI, see ``support.soak``)."""
    s = seed(engine, cfg, contacts=20)
    rcpts = [s.unsubscribe(c) for c in s.contact_ids]
    config_path = write_config(tmp_path / "c.toml", database_url,
                               smtp={"port": 0})
    port_ref = [0]

    def start():
        server = server_factory(config_path, timeout=RESTART_WITHIN)
        port_ref[0] = server.port
        return server

    stop = threading.Event()
    clients = [Sender(port_ref, rcpts, stop, i) for i in range(6)]
    server = _kill_repeatedly(start, clients, stop, kills, random.Random(7), (0.3, 1.2), 15)
    acked = [i for c in clients for i in c.acked]
    assert len(acked) > 20, "the load did not get going"
    server.wait_for("server.started")
    rows = wait_all_done(engine, len(set(acked)))
    states = {r["id"]: r["state"] for r in rows}
    missing = [i for i in acked if i not in states]
    assert missing == [], f"acknowledged with 250 but not stored: {missing}"
    assert set(states.values()) <= {"processed", "ignored"}
    # Each contact opted out at most once, whatever was redelivered or replayed.
    events = _opt_out_events(engine)
    assert len(events) == len({subject for subject, _ in events})
    assert len(events) == len(s.contact_ids)
    print(f"{kills} kills: {len(acked)} acknowledged, {len(rows)} stored, 0 lost, "
          f"{len(events)} opt-outs for {len(s.contact_ids)} contacts")


class _Registrar(threading.Thread):
    """Load: lead registrations over HTTP in a loop, each with a new address; the 201s
    remembered as (lead id, address). ``url_ref[0]`` is read for each request, so the
    server can be restarted on another port underneath it (kill -9)."""

    def __init__(self, url_ref: list[str], key: str, stop: threading.Event, n: int) -> None:
        super().__init__(daemon=True)
        self.url_ref, self.key, self.stop, self.n = url_ref, key, stop, n
        self.registered: list[tuple[int, str]] = []

    def run(self) -> None:
        import httpx

        i = 0
        while not self.stop.is_set():
            i += 1
            email = f"r{self.n}-{i}@people.test"
            try:
                answer = httpx.post(f"{self.url_ref[0]}/v1/leads", timeout=15,
                                    headers={"Authorization": f"Bearer {self.key}"},
                                    json={"email": email, "first": "Ann", "last": "Lee",
                                          "comments": "please call"})
            except httpx.HTTPError:
                time.sleep(0.05)
                continue
            if answer.status_code == 201:
                self.registered.append((answer.json()["id"], email))


@pytest.mark.process
def test_kill_9_under_api_load_loses_no_registration_answered_201(
        tmp_path, database_url, engine, server_factory):
    """Registrations are committed together (``actions.together``): kill -9 at random
    moments while eight clients register leads; every lead answered 201 is there after,
    with its contact and its audit event, and none twice."""
    from feedback_mta.actions import CLI, unit_of_work
    from feedback_mta.store.models import Lead
    from tests.test_cli import ok_json

    with unit_of_work(engine, CLI) as uow:
        account = uow.accounts.add("Dealer One").id
    config_path = write_config(tmp_path / "c.toml", database_url, smtp={"port": 0},
                               http={"listen": "127.0.0.1:0"})
    key = ok_json(config_path, "key", "add", "--account", str(account))["key"]

    url_ref = [""]

    def start():
        server = server_factory(config_path, timeout=RESTART_WITHIN)
        url_ref[0] = f"http://127.0.0.1:{server.wait_for('http.started')['port']}"
        return server

    stop = threading.Event()
    clients = [_Registrar(url_ref, key, stop, i) for i in range(8)]
    _kill_repeatedly(start, clients, stop, 3, random.Random(11), (0.5, 1.5), 20)
    registered = [r for c in clients for r in c.registered]
    assert len(registered) > 20, "the load did not get going"
    lead, contact = Lead.__table__, sa.table("contact", sa.column("id"), sa.column("email"))
    with engine.connect() as conn:
        stored = dict(conn.execute(sa.select(lead.c.id, contact.c.email).join(
            contact, contact.c.id == lead.c.contact_id)).all())
        created = [r[0] for r in conn.execute(sa.select(Event.subject_id).where(
            Event.action == "lead.created"))]
    missing = [(i, email) for i, email in registered if stored.get(i) != email]
    assert missing == [], f"answered 201 but not stored: {missing}"
    assert set(created) >= {i for i, _ in registered}
    assert len(created) == len(set(created)) == len(stored)
    print(f"3 kills: {len(registered)} registrations answered 201, {len(stored)} stored, "
          "0 lost")


# -- the processing process ---------------------------------------------------------------

def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.mark.process
def test_processing_runs_in_its_own_process(server, engine, cfg):
    """The processors run beside serve; what they did is told to serve (its metrics and
    its logs count what the other process finished)."""
    started = server.wait_for("server.started")
    assert started["processing_pid"] not in (None, started["pid"])
    # Both froze what start-up made, out of the collector's rounds (service/heap.py).
    processing = server.wait_for("processing.started")
    assert processing["pid"] == started["processing_pid"]
    assert started["frozen_objects"] > 50_000 and processing["frozen_objects"] > 20_000
    s = seed(engine, cfg)
    for cid in s.contact_ids:
        assert send(server.port, "", [s.unsubscribe(cid)], message())[0] == 250
    wait_all_done(engine, len(s.contact_ids))
    assert server.stop() == 0
    assert server.wait_for("server.stopped")["processed"] == len(s.contact_ids)
    assert not _alive(started["processing_pid"])


@pytest.mark.process
def test_the_processing_process_yields_the_cpu_to_the_server(tmp_path, sqlite_template,
                                                             server_factory):
    """``[processing] nice``: the processing process runs that much below the server's CPU
    priority, so when the cores are busy the clients' answers go first."""
    import shutil

    database = tmp_path / "feedback.sqlite3"
    shutil.copyfile(sqlite_template, database)
    server = server_factory(write_config(tmp_path / "nice.toml", f"sqlite:///{database}",
                                         processing={"nice": 7}))
    started = server.wait_for("server.started")
    assert server.wait_for("processing.started")["pid"] == started["processing_pid"]
    assert os.getpriority(os.PRIO_PROCESS, started["processing_pid"]) \
        == os.getpriority(os.PRIO_PROCESS, started["pid"]) + 7


@pytest.mark.process
def test_processing_in_the_server_process_when_configured(tmp_path, database_url, engine,
                                                          cfg, server_factory):
    server = server_factory(write_config(tmp_path / "one.toml", database_url,
                                         processing={"own_process": False}))
    assert server.wait_for("server.started")["processing_pid"] is None
    s = seed(engine, cfg)
    assert send(server.port, "", [s.unsubscribe(s.contact_ids[0])], message())[0] == 250
    assert [r["state"] for r in wait_all_done(engine, 1)] == ["processed"]


@pytest.mark.process
def test_a_dead_processing_process_stops_serve_and_nothing_is_lost(
        tmp_path, config_file, engine, cfg, server_factory):
    """kill -9 of the processing process: serve stops (exit 1, for systemd to restart it);
    what was stored and not processed is processed on the next start."""
    server = server_factory(config_file)
    pid = server.wait_for("server.started")["processing_pid"]
    s = seed(engine, cfg)
    os.kill(pid, signal.SIGSTOP)  # stored, not processed: then the process dies
    for cid in s.contact_ids:
        assert send(server.port, "", [s.unsubscribe(cid)], message())[0] == 250
    os.kill(pid, signal.SIGKILL)
    assert server.wait_for("processing.exited")["code"] == -signal.SIGKILL
    assert server.proc.wait(30) == 1
    assert {r["state"] for r in inbound_rows(engine)} == {"received"}

    again = server_factory(config_file)
    assert again.wait_for("server.started")["recovered"] == len(s.contact_ids)
    rows = wait_all_done(engine, len(s.contact_ids))
    assert {r["state"] for r in rows} == {"processed"}


@pytest.mark.process
def test_the_processing_process_dies_with_serve(tmp_path, config_file, server_factory):
    server = server_factory(config_file)
    pid = server.wait_for("server.started")["processing_pid"]
    server.kill()
    deadline = time.monotonic() + 10
    while _alive(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _alive(pid)
