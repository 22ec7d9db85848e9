"""Database outages under load: the real PostgreSQL server stopped and started again.

While it is down, clients get ``451 4.3.0`` (never a 250 for what could not be stored) and
the server stays up; when it is back, the server recovers by itself: new mail is accepted,
and what was stored before the outage is processed, each change made once. (A locked
SQLite file and a locked PostgreSQL table are in test_durability.)
"""

from __future__ import annotations

import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.edge import smtp as codes
from feedback_mta.store.models import Event
from tests.conftest import write_config
from tests.support import Sender, reply_code, reply_text, seed, wait_all_done, wait_until


def _cluster() -> tuple[str, str] | None:
    if (os.geteuid() != 0 or not shutil.which("pg_ctlcluster")
            or not Path("/etc/postgresql").is_dir()):
        return None
    versions = sorted(os.listdir("/etc/postgresql"))
    return (versions[-1], "main") if versions else None


def _pg_ctl(action: str) -> None:
    version, name = _cluster()
    subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action,
                    *(["-m", "fast"] if action == "stop" else [])],
                   check=True, capture_output=True, timeout=60)


def _pg_ready() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"],
                          check=False).returncode == 0


@pytest.mark.process
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_stopped_under_load(tmp_path, database_url, engine, cfg, server_factory):
    if _cluster() is None:
        pytest.skip("needs root and pg_ctlcluster to stop the local PostgreSQL cluster")
    s = seed(engine, cfg, contacts=30)
    with unit_of_work(engine, CLI) as uow:
        _, key = uow.platform.add_key(s.account_id)
    rcpts = [s.unsubscribe(c) for c in s.contact_ids]
    server = server_factory(write_config(
        tmp_path / "c.toml", database_url,
        database={"busy_timeout": "2s", "connect_timeout": "1s"},
        smtp={"store_timeout": "4s"}, processing={"sweep_interval": "1s"},
        http={"listen": "127.0.0.1:0"}))
    api = httpx.Client(base_url=f"http://127.0.0.1:{server.wait_for('http.started')['port']}",
                       headers={"Authorization": f"Bearer {key}"}, timeout=30)
    assert api.get(f"/v1/leads/{s.lead_id}").status_code == 200
    stop = threading.Event()
    senders = [Sender([server.port], rcpts, stop, i) for i in range(4)]
    for sender in senders:
        sender.start()
    outage = 0.0
    try:
        time.sleep(1.5)
        _pg_ctl("stop")
        down = time.monotonic()
        time.sleep(4)
        failed_during = sum(c != 250 for sender in senders for c, _t, _r in sender.replies)
        # The API says so precisely too: 503 with Retry-After, a problem, never a 500.
        during = api.get(f"/v1/leads/{s.lead_id}")
        assert (during.status_code, during.headers["content-type"]) == (
            503, "application/problem+json"), during.text
        assert during.headers["retry-after"] == "5"
        assert api.get("/healthz").status_code == 503
        _pg_ctl("start")
        wait_until(_pg_ready, timeout=60, what="PostgreSQL back")
        outage = time.monotonic() - down
        # It recovers by itself: new messages are accepted again within seconds.
        accepted_before = sum(c == 250 for sender in senders for c, _t, _r in sender.replies)
        wait_until(lambda: sum(c == 250 for sender in senders for c, _t, _r in sender.replies)
                   > accepted_before + 20, timeout=60, what="250s after the outage")
    finally:
        stop.set()
        for sender in senders:
            sender.join(30)
        if not _pg_ready():
            _pg_ctl("start")
            wait_until(_pg_ready, timeout=60, what="PostgreSQL back")
    assert server.proc.poll() is None, "the server died with its database"
    wait_until(lambda: api.get(f"/v1/leads/{s.lead_id}").status_code == 200, timeout=30,
               what="the API back")
    assert failed_during > 0, "no 451 while the database was down"
    replies = [r for sender in senders for r in sender.replies]
    # Never anything but 250 or the 451 that says "not stored, try again".
    assert {(c, t) for c, t, _ in replies if c != 250} == {
        (reply_code(codes.STORE_FAILED), reply_text(codes.STORE_FAILED))}
    acked = [i for sender in senders for i in sender.acked]
    contact_of = dict(zip(rcpts, s.contact_ids, strict=True))
    unsubscribed = {contact_of[r] for c, _, r in replies if c == 250}
    engine.dispose()  # its connections died with the server
    rows = wait_all_done(engine, len(set(acked)), timeout=120)
    states = {r["id"]: r["state"] for r in rows}
    assert [i for i in acked if i not in states] == [], "acknowledged but not stored"
    assert set(states.values()) <= {"processed", "ignored"}
    with engine.connect() as conn:
        opted_out = conn.execute(sa.select(Event.subject_id).where(
            Event.action == "contact.opted_out")).scalars().all()
    assert sorted(opted_out) == sorted(unsubscribed)  # each one accepted, once
    print(f"outage {outage:.1f}s: {len(acked)} accepted, {failed_during} answered 451 while down")
