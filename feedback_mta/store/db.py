"""Database engines and schema migrations.

SQLite is the embedded default: WAL (readers never block the intake writer), a busy timeout
(writers wait instead of failing), and ``synchronous=FULL`` by default, because "250 after
commit" is only a promise if the commit reached the disk. PostgreSQL is used through
``postgresql+psycopg://`` URLs for several nodes.

The schema is created and changed only by alembic migrations (``feedback-mta db upgrade``),
never by ``create_all`` at run time.

Two ways for a statement run many times a second to cost less, for the actions to use:
``one_of`` binds a list as one parameter (the statement's text the same each time), and
``Prepared`` runs a Core statement on the driver's cursor.
"""

from __future__ import annotations

import collections
import fcntl
import json
import os
import queue
import sqlite3
import threading
import time
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Text, event
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.visitors import InternalTraversal
from sqlalchemy.types import TypeDecorator

from feedback_mta.config import DatabaseConfig

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS = Path(__file__).parent / "migrations"
#: The newest migration's revision. Reads compare the database with it without loading
#: alembic (a command answers in a fraction of the time); ``tests/test_migrations.py`` keeps
#: it equal to the newest script's.
HEAD = "0011"


class SchemaError(Exception):
    """The database schema is missing or behind the code."""


def normalize_url(url: str) -> str:
    """Use psycopg 3 for plain ``postgresql://`` URLs (psycopg2 is not a dependency)."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def create_engine(cfg: DatabaseConfig, *, pool_size: int = 5,
                  read_only: bool = False) -> Engine:
    """An engine for the configured database. ``read_only`` (the command line's reads,
    ``check-config``) creates nothing: no SQLite file or folder, no writer lock file; a
    missing SQLite file is a ``SchemaError`` that says how to create it."""
    url = make_url(normalize_url(cfg.url))
    if url.get_backend_name() == "sqlite":
        if url.database and url.database != ":memory:":
            if read_only and not Path(url.database).exists():
                raise SchemaError(f"no database at {url.database}: run `feedback-mta db "
                                  "upgrade` (or start the server) to create it")
            if not read_only:
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

        if not read_only:
            _queue_writers(engine, cfg.busy_timeout, url.database)
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


#: Per engine (its pool, shared with its ``execution_options`` copies): how many writers
#: of this process wait for the write lock.
_WAITING: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def writers_waiting(engine: Engine) -> bool:
    """Another thread of this process waits to write (SQLite): a long transaction should
    commit now and let it in. Always False on PostgreSQL, whose writers do not queue."""
    waiting = _WAITING.get(engine.pool)
    return bool(waiting and waiting[0])


class _WriterFile:
    """``<database>.writer``, locked with flock(2) around each write transaction, among
    processes (workers, the processing process, the CLI).

    A busy lock is waited for in flock itself, on a thread of its own (``writer-lock``),
    so the kernel hands the lock over the moment its holder lets go, and the waiter can
    still give up at its deadline. Polling it instead (sleeps of up to 2 ms, then a wait
    for the GIL) lost nearly every hand-over to the holder's next transaction: the
    intake's commit waited behind the processing process's whole batch (``store_ms`` p50
    17 ms). The waiting thread locks a descriptor of its own, so a lock it gets after its
    caller gave up is its own to release; it ends after a second without requests."""

    IDLE_SECONDS = 1.0

    def __init__(self, path: str) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        #: The waiting thread's own open file (a lock belongs to an open file).
        self._wait_fd = os.open(path, os.O_RDWR)
        self._held: int | None = None
        self._requests: queue.SimpleQueue[_LockRequest] = queue.SimpleQueue()
        self._state = threading.Lock()
        self._waiting_thread = False

    def acquire(self, timeout: float) -> bool:
        """Take the lock within ``timeout`` seconds. The caller holds this process's
        thread lock: one request at most is in flight."""
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._held = self._fd
            return True
        except BlockingIOError:
            pass
        request = _LockRequest()
        with self._state:
            self._requests.put(request)
            if not self._waiting_thread:
                self._waiting_thread = True
                threading.Thread(target=self._wait, name="writer-lock", daemon=True).start()
        if not request.granted.wait(timeout):
            with request.guard:
                if not request.granted.is_set():
                    request.gave_up = True
                    return False
        self._held = request.fd
        return True

    def release(self) -> None:
        fd, self._held = self._held, None
        if fd is not None:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _wait(self) -> None:
        fd = self._wait_fd
        try:
            while True:
                try:
                    request = self._requests.get(timeout=self.IDLE_SECONDS)
                except queue.Empty:
                    with self._state:
                        if self._requests.empty():
                            self._waiting_thread = False
                            return
                    continue
                fcntl.flock(fd, fcntl.LOCK_EX)  # blocks without the GIL
                with request.guard:
                    if request.gave_up:
                        fcntl.flock(fd, fcntl.LOCK_UN)
                        continue
                    request.fd = fd
                    request.granted.set()
                # The caller holds it now, and releases it before it asks again.
        except BaseException:  # never: but the next request must find a thread
            with self._state:
                self._waiting_thread = False
            raise


class _LockRequest:
    __slots__ = ("fd", "gave_up", "granted", "guard")

    def __init__(self) -> None:
        self.granted = threading.Event()
        self.guard = threading.Lock()
        self.gave_up = False
        self.fd: int | None = None


def _queue_writers(engine: Engine, timeout: float, database: str | None) -> None:
    """Writers queue on locks of their own before ``BEGIN IMMEDIATE``.

    SQLite's busy handler polls with sleeps of up to 100 ms, so an intake commit that
    found a processor's transaction in the way could wait far longer than that
    transaction lasted, and ``serve --workers`` spent its second core asleep. Instead:
    a thread lock among the writers of this process, then ``flock`` on
    ``<database>.writer`` among processes (``_WriterFile``). Both are released the moment
    the COMMIT (or ROLLBACK) returned: after the dialect's commit/rollback (SQLAlchemy's
    ``commit`` event fires before it), or when the pool closes or invalidates the
    connection that held them. SQLite's own lock and busy timeout stay underneath for
    anything that does not take these.
    """
    lock = threading.Lock()
    holder: list[int] = []  # id() of the DBAPI connection inside a write transaction
    waiting = _WAITING[engine.pool] = [0]
    writer: _WriterFile | None = None
    if database and database != ":memory:":
        try:
            writer = _WriterFile(f"{database}.writer")
        except OSError:  # a read-only directory: SQLite's busy timeout alone
            writer = None

    def acquire() -> bool:
        deadline = time.monotonic() + timeout
        waiting[0] += 1
        try:
            if not lock.acquire(timeout=timeout):
                return False
        finally:
            waiting[0] -= 1
        if writer is not None and not writer.acquire(max(0.0, deadline - time.monotonic())):
            lock.release()
            return False
        return True

    def release(conn, *_args) -> None:
        # The dialect gets the pool's proxy, pool events the DBAPI connection itself.
        if holder and holder[0] == id(getattr(conn, "dbapi_connection", conn)):
            holder.clear()
            if writer is not None:
                writer.release()
            lock.release()

    @event.listens_for(engine, "begin")
    def _sqlite_begin(conn):  # pragma: no cover - exercised by every test
        # Read-only work (listing, loading a stored message) opts out with
        # ``engine.execution_options(readonly=True)`` so it never waits for a writer.
        if conn.get_execution_options().get("readonly", False):
            conn.exec_driver_sql("BEGIN")
            return
        if not acquire():
            raise sa.exc.OperationalError("BEGIN IMMEDIATE", None, sqlite3.OperationalError(
                "database is locked (another writer held it past busy_timeout)"))
        dbapi_conn = conn.connection.dbapi_connection
        holder.append(id(dbapi_conn))
        try:
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        except BaseException:
            release(dbapi_conn)
            raise

    dialect = engine.dialect
    commit, rollback = dialect.do_commit, dialect.do_rollback

    def do_commit(dbapi_conn) -> None:
        try:
            commit(dbapi_conn)
        finally:
            release(dbapi_conn)

    def do_rollback(dbapi_conn) -> None:
        try:
            rollback(dbapi_conn)
        finally:
            release(dbapi_conn)

    dialect.do_commit, dialect.do_rollback = do_commit, do_rollback  # type: ignore[method-assign,assignment]
    event.listen(engine, "close", release)
    event.listen(engine, "invalidate", release)


class _Listed(TypeDecorator[Any]):
    """A list of values bound as one parameter (``one_of``): JSON text on SQLite, for
    ``json_each``; an array of the column's type on PostgreSQL."""

    impl = Text
    cache_ok = True

    def __init__(self, item: Any) -> None:
        super().__init__()
        self.item = item

    def load_dialect_impl(self, dialect: sa.Dialect) -> Any:
        if dialect.name == "postgresql":
            return dialect.type_descriptor(ARRAY(self.item))
        return dialect.type_descriptor(Text())

    def process_bind_param(self, value: Any, dialect: sa.Dialect) -> Any:
        return list(value) if dialect.name == "postgresql" else json.dumps(list(value))


class _OneOf(ColumnElement[bool]):
    """``column`` among the values of one bound list (``one_of``), as each database says
    it (``_one_of_sqlite``, ``_one_of_postgresql``)."""

    inherit_cache = True
    type = sa.Boolean()
    _is_implicitly_boolean = True  # a condition itself, not a value to compare with true
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement),
                           ("values", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: sa.ColumnElement[Any], values: sa.BindParameter[Any]) -> None:
        self.column, self.values = column, values


@compiles(_OneOf, "sqlite")
def _one_of_sqlite(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} IN "
            f"(SELECT value FROM json_each({compiler.process(element.values, **kw)}))")


@compiles(_OneOf, "postgresql")
def _one_of_postgresql(element: _OneOf, compiler: Any, **kw: Any) -> str:
    return (f"{compiler.process(element.column, **kw)} = "
            f"ANY ({compiler.process(element.values, **kw)})")


def one_of(column: sa.ColumnElement[Any], name: str) -> sa.ColumnElement[bool]:
    """``column IN`` the list bound as ``name``: one parameter however long the list
    (SQLite's ``json_each``, PostgreSQL's ``= ANY``), so the statement is the same text
    every time. SQLAlchemy's expanding ``IN`` renders the statement afresh for each
    execution, which cost five times the statement itself (a processing batch runs
    five)."""
    return _OneOf(column, sa.bindparam(name, type_=_Listed(column.type)))


class Prepared:
    """A Core statement run on the driver's cursor of a transaction's connection: compiled
    once for each database (and, for an INSERT given its values, each set of columns), its
    parameters put through the column types' bind processors and its rows through their
    result processors, as SQLAlchemy's execution does them, without the rest of it (an
    execution context, a result object, the events): that was about 25 µs a statement
    against the driver's 2, a quarter of a registration's time on the writer, which runs
    seven of them.

    Only for statements whose every value the caller gives or the statement holds: no
    Python-side column defaults, no expanding ``IN`` (``one_of`` is one parameter). A
    driver's error is raised as SQLAlchemy's (``IntegrityError``, ``OperationalError``),
    as ``Connection.execute`` raises it. No ``before_cursor_execute`` listener sees these
    statements."""

    __slots__ = ("_by_keys", "_compiled", "statement")

    def __init__(self, statement: sa.ClauseElement, *, by_keys: bool = False) -> None:
        """``by_keys``: an INSERT or UPDATE without values of its own, compiled for the
        columns each call's parameters name."""
        self.statement = statement
        self._by_keys = by_keys
        self._compiled: dict[tuple[str, str, tuple[str, ...]], _Compiled] = {}

    def _for(self, dialect: sa.Dialect, params: dict[str, Any]) -> _Compiled:
        key = (dialect.name, dialect.driver, tuple(params) if self._by_keys else ())
        found = self._compiled.get(key)
        if found is None:
            found = self._compiled[key] = _Compiled.of(self.statement, dialect,
                                                       list(key[2]) or None)
        return found

    def _run(self, conn: sa.Connection, params: dict[str, Any]) -> tuple[_Compiled, Any]:
        """The statement as compiled for ``conn``, and the driver's cursor it ran on with
        ``params``."""
        compiled = self._for(conn.dialect, params)
        args = compiled.args(params)
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            cursor.execute(compiled.sql, args)
        except conn.dialect.loaded_dbapi.Error as exc:
            raise sa.exc.DBAPIError.instance(compiled.sql, args, exc,
                                             conn.dialect.loaded_dbapi.Error,
                                             dialect=conn.dialect) from exc
        return compiled, cursor

    def rows(self, conn: sa.Connection, params: dict[str, Any]) -> list[Any]:
        """Every row, each a named tuple of the statement's columns."""
        compiled, cursor = self._run(conn, params)
        return [compiled.row(raw) for raw in cursor.fetchall()]

    def scalar(self, conn: sa.Connection, params: dict[str, Any]) -> Any:
        """The first column of the one row (``NoResultFound`` if there is none)."""
        compiled, cursor = self._run(conn, params)
        raw = cursor.fetchone()
        if raw is None:
            raise sa.exc.NoResultFound("no row for a statement that returns one")
        return compiled.row(raw)[0]

    def run(self, conn: sa.Connection, params: dict[str, Any]) -> int:
        """The number of rows changed."""
        count: int = self._run(conn, params)[1].rowcount
        return count


class _Compiled:
    """A statement as one database runs it: its text, how its parameters are bound."""

    __slots__ = ("_bind", "_fixed", "_names", "_positional", "_results", "row", "sql")

    def __init__(self, sql: str, names: tuple[str, ...], positional: bool,
                 bind: dict[str, Any], fixed: dict[str, Any],
                 results: tuple[Any, ...], columns: tuple[str, ...]) -> None:
        self.sql, self._names, self._positional = sql, names, positional
        self._bind, self._fixed = bind, fixed
        self._results = results if any(results) else None
        shape = collections.namedtuple("Row", columns, rename=True)  # type: ignore[misc]
        self.row: Any = self._processed(shape) if self._results else shape._make

    def _processed(self, shape: Any) -> Any:
        results = self._results
        assert results is not None

        def row(raw: Any) -> Any:
            return shape._make([value if process is None or value is None
                                else process(value)
                                for process, value in zip(results, raw, strict=True)])
        return row

    @classmethod
    def of(cls, statement: sa.ClauseElement, dialect: sa.Dialect,
           keys: list[str] | None) -> _Compiled:
        compiled: Any = statement.compile(dialect=dialect, column_keys=keys)
        if compiled.insert_prefetch or compiled.update_prefetch:
            raise ValueError("Prepared: a column default to compute in Python")
        if any(bind.expanding for bind in compiled.binds.values()):
            raise ValueError("Prepared: an expanding IN (use one_of)")
        if compiled.escaped_bind_names:
            raise ValueError("Prepared: a parameter name the driver needs escaped")
        positional = bool(dialect.positional)
        sql = compiled.string
        names = tuple(compiled.positiontup if positional else
                      (name for name in compiled.binds if f"%({name})s" in sql))
        # What the statement holds itself; the rest each call gives (``args``: KeyError).
        fixed = {name: value for name, value in
                 compiled.construct_params(_check=False).items()
                 if not compiled.binds[name].required}
        results = tuple(entry.type._cached_result_processor(dialect, None)
                        for entry in compiled._result_columns)
        columns = tuple(entry.keyname for entry in compiled._result_columns) or ("rowcount",)
        return cls(sql, names, positional, dict(compiled._bind_processors), fixed, results,
                   columns)

    def args(self, params: dict[str, Any]) -> Any:
        """The driver's parameters: a tuple in order (SQLite), a dict by name (psycopg)."""
        fixed, bind = self._fixed, self._bind
        values = []
        for name in self._names:
            value = params[name] if name in params else fixed[name]
            process = bind.get(name)
            values.append(value if process is None or value is None else process(value))
        return tuple(values) if self._positional else dict(zip(self._names, values,
                                                               strict=True))


def reader(engine: Engine) -> Engine:
    """The same engine for read-only work (a plain deferred BEGIN on SQLite)."""
    return engine.execution_options(readonly=True)


def reading(engine: Engine) -> sa.Connection:
    """A connection for read-only work, as ``reader(engine).connect()`` gives, without
    making an engine each time: that cost as much as the read of a processing batch."""
    return engine.connect().execution_options(readonly=True)


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

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
    from alembic import command

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


def head_revision() -> str:
    return HEAD


def script_head() -> str | None:
    """The newest migration script's revision, as alembic reads the scripts (slow)."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()


def current_revision(engine: Engine) -> str | None:
    """The database's schema revision (alembic's version table), None when it has none."""
    with engine.connect() as conn:
        if not sa.inspect(conn).has_table("alembic_version"):
            return None
        return conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar()


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
