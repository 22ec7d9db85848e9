"""A realistic database for the benchmark: accounts, their users, contacts and leads.

The default is 10,000 accounts with 100 contacts each (1,000,000 contacts) and one lead per
ten contacts. Building it takes a minute, so the result is kept as a template in
``$XDG_CACHE_HOME/feedback-mta-bench`` (named after the sizes and the schema revision) and
each server run gets a fresh copy. Rows are written in bulk, not through the actions layer:
this is a fixture standing in for years of history, not a change anyone made.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from feedback_mta.actions import notification_message_id
from feedback_mta.addresses import AddressBook
from feedback_mta.config import DatabaseConfig
from feedback_mta.store import db
from feedback_mta.store.models import Account, Contact, Lead, User, utcnow

CONTACTS_PER_LEAD = 10


@dataclass(frozen=True)
class Shape:
    accounts: int
    contacts: int

    @property
    def per_account(self) -> int:
        return max(1, self.contacts // self.accounts)

    @property
    def leads(self) -> int:
        return self.contacts // CONTACTS_PER_LEAD

    def account_of_contact(self, contact_id: int) -> int:
        return min(self.accounts, (contact_id - 1) // self.per_account + 1)

    def contact_of_lead(self, lead_id: int) -> int:
        return (lead_id - 1) * CONTACTS_PER_LEAD + 1

    @staticmethod
    def dealer(account_id: int) -> str:
        return f"boss@dealer{account_id}.bench"


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "feedback-mta-bench"


def _head() -> str:

    return db.script_head()


def template(shape: Shape, book: AddressBook) -> Path:
    """The seeded SQLite file for this shape, built once and kept."""
    path = cache_dir() / f"seed-{shape.accounts}x{shape.contacts}-{_head()}.sqlite3"
    if path.exists():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    building = path.with_suffix(".building")
    building.unlink(missing_ok=True)
    started = time.perf_counter()
    engine = db.create_engine(DatabaseConfig(url=f"sqlite:///{building}"))
    fill(engine, shape, book)
    engine.dispose()
    with sqlite3.connect(building) as conn:  # one self-contained file to copy
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    building.rename(path)
    for leftover in ("-wal", "-shm", ".writer"):
        Path(f"{building}{leftover}").unlink(missing_ok=True)
    _built(shape, path, started)
    return path


def _built(shape: Shape, where: object, started: float) -> None:
    print(f"seeded {shape.contacts:,} contacts, {shape.leads:,} leads, {shape.accounts:,} "
          f"accounts in {time.perf_counter() - started:.0f} s -> {where}", file=sys.stderr,
          flush=True)


def fill(engine: sa.Engine, shape: Shape, book: AddressBook) -> None:
    """Create the schema in an empty database and write the shape's rows."""
    db.upgrade(engine)
    now = utcnow()
    with engine.begin() as conn:
        conn.execute(sa.insert(Account.__table__), [
            {"id": a, "name": f"Dealer {a}", "created_at": now}
            for a in range(1, shape.accounts + 1)])
        conn.execute(sa.insert(User.__table__), [
            {"id": a, "account_id": a, "email": shape.dealer(a), "roles": "contact-admin",
             "created_at": now} for a in range(1, shape.accounts + 1)])
        for start in range(1, shape.contacts + 1, 50_000):
            conn.execute(sa.insert(Contact.__table__), [
                {"id": c, "account_id": shape.account_of_contact(c),
                 "email": f"c{c}@people.bench", "first_name": "Ann", "last_name": f"Lee{c}",
                 "status": "active", "engagement": "", "created_at": now, "updated_at": now}
                for c in range(start, min(shape.contacts, start + 49_999) + 1)])
        for start in range(1, shape.leads + 1, 50_000):
            conn.execute(sa.insert(Lead.__table__), [
                {"id": lead, "account_id": shape.account_of_contact(shape.contact_of_lead(lead)),
                 "contact_id": shape.contact_of_lead(lead), "status": "active",
                 "comments": "", "notification_message_id": notification_message_id(book, lead),
                 "created_at": now}
                for lead in range(start, min(shape.leads, start + 49_999) + 1)])
        if engine.dialect.name == "postgresql":  # the ids were given, not drawn
            for table in ("account", "app_user", "contact", "lead"):
                conn.execute(sa.text(f"SELECT setval(pg_get_serial_sequence('\"{table}\"', "
                                     f"'id'), (SELECT max(id) FROM \"{table}\"))"))


def pg_template(shape: Shape, book: AddressBook, server: str) -> str:
    """The seeded PostgreSQL template database for this shape on ``server`` (a URL
    without a database name), built once and kept, as the SQLite file is."""
    name = f"fbmta_bench_{shape.accounts}x{shape.contacts}_{_head()}"
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        exists = conn.execute(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"),
                              {"n": name}).first()
        if exists is None:
            started = time.perf_counter()
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}_building"'))
            conn.execute(sa.text(f'CREATE DATABASE "{name}_building"'))
            engine = db.create_engine(DatabaseConfig(url=f"{server}/{name}_building"))
            fill(engine, shape, book)
            engine.dispose()
            conn.execute(sa.text(f'ALTER DATABASE "{name}_building" RENAME TO "{name}"'))
            _built(shape, name, started)
    admin.dispose()
    return name


def pg_fresh_copy(shape: Shape, book: AddressBook, server: str, into: str) -> str:
    """A private copy of the PostgreSQL template for one server run: its URL."""
    template = pg_template(shape, book, server)
    admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{into}" WITH (FORCE)'))
        conn.execute(sa.text(f'CREATE DATABASE "{into}" TEMPLATE "{template}"'))
    admin.dispose()
    return f"{server}/{into}"


def fresh_copy(shape: Shape, book: AddressBook, into: Path) -> Path:
    """A private copy of the template for one server run."""
    into.parent.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal", "-shm"):
        Path(f"{into}{suffix}").unlink(missing_ok=True)
    shutil.copyfile(template(shape, book), into)
    return into
