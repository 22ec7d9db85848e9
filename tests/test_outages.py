"""Database outages under load: a real PostgreSQL server stopped and started again.

While it is down, clients get ``451 4.3.0`` (never a 250 for what could not be stored) and
the server stays up; when it is back, the server recovers by itself: new mail is accepted,
and what was stored before the outage is processed, each change made once. (A locked
SQLite file and a locked PostgreSQL table are in test_durability.)

The server stopped is a PostgreSQL of the test's own (``initdb`` into a temporary folder,
on a free port), not the machine's: the other tests, running beside this one, keep theirs.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa

from feedback_mta import config as config_mod
from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.edge import smtp as codes
from feedback_mta.store import db
from feedback_mta.store.models import Event
from tests.conftest import write_config
from tests.support import (
    Sender,
    free_port,
    reply_code,
    reply_text,
    seed,
    wait_all_done,
    wait_until,
)


def _bin() -> Path | None:
    """Where this machine's PostgreSQL server programs are (the newest version's)."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    return found[-1].parent if found else None


class PrivatePostgres:
    """A PostgreSQL server of our own: a data folder owned by ``postgres``, trust auth,
    on 127.0.0.1 and a free port, stopped and started with ``pg_ctl``."""

    def __init__(self, root: Path) -> None:
        self.bin = _bin()
        self.data = root / "pgdata"
        self.sockets = root / "pgsock"
        self.port = free_port()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/feedback"

    def _as_postgres(self, *argv: str) -> None:
        done = subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True,
                              text=True, timeout=120)
        assert done.returncode == 0, f"{argv[0]}: {done.stderr or done.stdout}"

    def init(self) -> PrivatePostgres:
        for folder in (self.data, self.sockets):
            folder.mkdir()
            shutil.chown(folder, "postgres", "postgres")
        shutil.chown(self.data.parent, "postgres", "postgres")
        self._as_postgres(str(self.bin / "initdb"), "-D", str(self.data), "-U", "postgres",
                          "--auth=trust", "--no-sync")
        self.start()
        self._as_postgres(str(self.bin / "createdb"), "-h", "127.0.0.1", "-p",
                          str(self.port), "-U", "postgres", "feedback")
        return self

    def start(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-l",
                          str(self.data / "log"), "-o",
                          f"-p {self.port} -k {self.sockets} -c listen_addresses=127.0.0.1",
                          "start")

    def stop(self) -> None:
        self._as_postgres(str(self.bin / "pg_ctl"), "-D", str(self.data), "-w", "-m", "fast",
                          "stop")

    def ready(self) -> bool:
        return subprocess.run([str(self.bin / "pg_isready"), "-q", "-h", "127.0.0.1", "-p",
                               str(self.port)], check=False).returncode == 0


@pytest.fixture
def private_pg() -> Iterator[PrivatePostgres]:
    if _bin() is None or os.geteuid() != 0 or not shutil.which("runuser"):
        pytest.skip("needs PostgreSQL's server programs (/usr/lib/postgresql/*/bin) and "
                    "root, to run a PostgreSQL of the test's own as user postgres")
    # Not under pytest's own temporary folder: user postgres may not enter that one.
    root = Path(tempfile.mkdtemp(prefix="feedback-mta-pg-"))
    pg = PrivatePostgres(root).init()
    try:
        yield pg
    finally:
        if pg.ready():
            pg.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.mark.process
@pytest.mark.postgres
def test_postgresql_stopped_under_load(tmp_path, private_pg, server_factory):
    database_url = private_pg.url
    cfg = config_mod.load(write_config(tmp_path / "seed.toml", database_url), env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
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
        private_pg.stop()
        down = time.monotonic()
        time.sleep(4)
        failed_during = sum(c != 250 for sender in senders for c, _t, _r in sender.replies)
        # The API says so precisely too: 503 with Retry-After, a problem, never a 500.
        during = api.get(f"/v1/leads/{s.lead_id}")
        assert (during.status_code, during.headers["content-type"]) == (
            503, "application/problem+json"), during.text
        assert during.headers["retry-after"] == "5"
        assert api.get("/healthz").status_code == 503
        private_pg.start()
        wait_until(private_pg.ready, timeout=60, what="PostgreSQL back")
        outage = time.monotonic() - down
        # It recovers by itself: new messages are accepted again within seconds.
        accepted_before = sum(c == 250 for sender in senders for c, _t, _r in sender.replies)
        wait_until(lambda: sum(c == 250 for sender in senders for c, _t, _r in sender.replies)
                   > accepted_before + 20, timeout=60, what="250s after the outage")
    finally:
        stop.set()
        for sender in senders:
            sender.join(30)
        if not private_pg.ready():
            private_pg.start()
            wait_until(private_pg.ready, timeout=60, what="PostgreSQL back")
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
    engine.dispose()
    print(f"outage {outage:.1f}s: {len(acked)} accepted, {failed_during} answered 451 while down")
