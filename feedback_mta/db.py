"""Database engines and schema migrations.

SQLite is the embedded default: WAL (readers never block the intake writer), a busy timeout
(writers wait instead of failing), and ``synchronous=FULL`` by default, because "250 after
commit" is only a promise if the commit reached the disk. PostgreSQL is used through
``postgresql+psycopg://`` URLs for several nodes.

The schema is created and changed only by alembic migrations (``feedback-mta db upgrade``),
never by ``create_all`` at run time.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import event
from sqlalchemy.engine import Engine, make_url

from feedback_mta.config import DatabaseConfig

MIGRATIONS = Path(__file__).parent / "migrations"


class SchemaError(Exception):
    """The database schema is missing or behind the code."""


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (psycopg2 is not a dependency)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine(cfg: DatabaseConfig, *, pool_size: int = 5) -> Engine:
    url = make_url(normalize_url(cfg.url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            Path(url.database).parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(
            url,
            connect_args={"timeout": cfg.busy_timeout, "check_same_thread": False},
            pool_size=pool_size,
            max_overflow=pool_size,
        )
        synchronous = cfg.sqlite_synchronous.upper()
        busy_ms = int(cfg.busy_timeout * 1000)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn, _record):  # pragma: no cover - exercised by every test
            # pysqlite's own transaction handling would BEGIN lazily (DEFERRED); we issue
            # BEGIN IMMEDIATE ourselves so a writer takes the lock up front and a busy
            # database waits (busy_timeout) instead of failing halfway with SQLITE_BUSY.
            dbapi_conn.isolation_level = None
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute(f"PRAGMA synchronous={synchronous}")
            cur.execute(f"PRAGMA busy_timeout={busy_ms}")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn):  # pragma: no cover - exercised by every test
            # Read-only work (listing, loading a stored message) opts out with
            # ``engine.execution_options(readonly=True)`` so it never waits for a writer.
            readonly = conn.get_execution_options().get("readonly", False)
            conn.exec_driver_sql("BEGIN" if readonly else "BEGIN IMMEDIATE")

        return engine
    timeout_ms = int(cfg.busy_timeout * 1000)
    return sa.create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={
            "connect_timeout": max(1, int(cfg.connect_timeout)),
            "options": f"-c lock_timeout={timeout_ms} -c statement_timeout={timeout_ms * 6}",
        },
    )


def reader(engine: Engine) -> Engine:
    """The same engine for read-only work (a plain deferred BEGIN on SQLite)."""
    return engine.execution_options(readonly=True)


def alembic_config(url: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    # ConfigParser interpolation: a literal % in a password must be doubled.
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def upgrade(engine: Engine, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the schema to ``revision``; returns (before, after) revisions.

    On PostgreSQL a session advisory lock is held meanwhile: nodes whose one-shot upgrade
    starts at the same moment take turns, and the later ones find the work done, instead
    of creating the same tables twice and failing halfway."""
    with _session_lock(engine, "upgrade"):
        before = current_revision(engine)
        cfg = alembic_config(engine.url.render_as_string(hide_password=False))
        with engine.connect() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, revision)
            conn.commit()
        return before, current_revision(engine)


@contextmanager
def _session_lock(engine: Engine, name: str) -> Iterator[None]:
    """Hold PostgreSQL's advisory lock ``name`` on a connection of its own, waiting for it
    (SQLite: nothing to hold; its writers take turns anyway)."""
    with engine.connect() as conn:
        if conn.dialect.name != "postgresql":
            yield
            return
        key = {"k": _lock_key(name)}
        conn.execute(sa.text("SELECT pg_advisory_lock(:k)"), key)
        conn.commit()
        try:
            yield
        finally:
            conn.execute(sa.text("SELECT pg_advisory_unlock(:k)"), key)
            conn.commit()


def _lock_key(name: str) -> int:
    """A stable signed 32-bit advisory lock key per name."""
    return zlib.crc32(name.encode()) - 2**31


def head_revision() -> str | None:
    script = ScriptDirectory.from_config(alembic_config("sqlite://"))
    return script.get_current_head()


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def check_schema(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not at the code's head revision."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "empty" if current is None else f"at revision {current}"
        raise SchemaError(
            f"database schema is {state}, the code needs {head}: run `feedback-mta db upgrade`")


def try_lock(conn, name: str) -> bool:
    """Take a PostgreSQL advisory lock named ``name`` for the rest of this transaction, if
    no other node holds it (scheduled work then runs on one node at a time). SQLite has one
    writer at a time anyway: always True there."""
    if conn.dialect.name != "postgresql":
        return True
    return bool(conn.execute(sa.text("SELECT pg_try_advisory_xact_lock(:k)"),
                             {"k": _lock_key(name)}).scalar())


def aware(value: datetime) -> datetime:
    """A stored timestamp as an aware UTC datetime (SQLite gives them back naive)."""
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)
