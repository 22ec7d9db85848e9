"""Database outages under load: the real PostgreSQL server stopped and started again.

While it is down, clients get ``451 4.3.0`` (never a 250 for what could not be stored) and
the server stays up; when it is back, the server recovers by itself: new mail is accepted,
and what was stored before the outage is processed, each change made once. (A locked
SQLite file and a locked PostgreSQL table are in test_durability.)
"""

from __future__ import annotations

import os
import random
import shutil
import smtplib
import subprocess
import threading
import time
from pathlib import Path

import pytest
import sqlalchemy as sa

from feedback_mta import smtp as codes
from feedback_mta.models import Event
from tests.conftest import write_config
from tests.support import message, seed, wait_all_done, wait_until


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


class Sender(threading.Thread):
    """Unsubscribes in a loop; remembers each reply (code and, for a 250, the id)."""

    def __init__(self, port: int, rcpts: list[str], stop: threading.Event, seed_: int):
        super().__init__(daemon=True)
        self.port, self.rcpts, self.stop, self.rng = port, rcpts, stop, random.Random(seed_)
        self.replies: list[tuple[int, int | None, str]] = []

    def run(self):
        while not self.stop.is_set():
            try:
                client = smtplib.SMTP("127.0.0.1", self.port, timeout=15)
                client.ehlo()
                while not self.stop.is_set():
                    rcpt = self.rng.choice(self.rcpts)
                    client.mail("")
                    client.rcpt(rcpt)
                    code, text = client.data(message(subject="unsubscribe"))
                    stored = int(text.rsplit(b" ", 1)[1]) if code == 250 else None
                    self.replies.append((code, stored, rcpt))
                    if code != 250:
                        assert (code, text) == (int(codes.STORE_FAILED[:3]),
                                                codes.STORE_FAILED[4:].encode())
                        time.sleep(0.1)
            except (smtplib.SMTPException, OSError):
                time.sleep(0.1)


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_postgresql_stopped_under_load(tmp_path, database_url, engine, cfg, server_factory):
    if _cluster() is None:
        pytest.skip("needs root and pg_ctlcluster to stop the local PostgreSQL cluster")
    s = seed(engine, cfg, contacts=30)
    rcpts = [s.unsubscribe(c) for c in s.contact_ids]
    server = server_factory(write_config(
        tmp_path / "c.toml", database_url,
        database={"busy_timeout": "2s", "connect_timeout": "1s"},
        smtp={"store_timeout": "4s"}, processing={"sweep_interval": "1s"}))
    stop = threading.Event()
    senders = [Sender(server.port, rcpts, stop, i) for i in range(4)]
    for sender in senders:
        sender.start()
    outage = 0.0
    try:
        time.sleep(1.5)
        _pg_ctl("stop")
        down = time.monotonic()
        time.sleep(4)
        failed_during = sum(c != 250 for sender in senders for c, _, _ in sender.replies)
        _pg_ctl("start")
        wait_until(_pg_ready, timeout=60, what="PostgreSQL back")
        outage = time.monotonic() - down
        # It recovers by itself: new messages are accepted again within seconds.
        accepted_before = sum(c == 250 for sender in senders for c, _, _ in sender.replies)
        wait_until(lambda: sum(c == 250 for sender in senders for c, _, _ in sender.replies)
                   > accepted_before + 20, timeout=60, what="250s after the outage")
    finally:
        stop.set()
        for sender in senders:
            sender.join(30)
        if not _pg_ready():
            _pg_ctl("start")
            wait_until(_pg_ready, timeout=60, what="PostgreSQL back")
    assert server.proc.poll() is None, "the server died with its database"
    assert failed_during > 0, "no 451 while the database was down"
    acked = [i for sender in senders for c, i, _ in sender.replies if c == 250]
    contact_of = dict(zip(rcpts, s.contact_ids, strict=True))
    unsubscribed = {contact_of[r] for sender in senders for c, _, r in sender.replies if c == 250}
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
