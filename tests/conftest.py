"""Fixtures: a real database (SQLite file; PostgreSQL when reachable) and the real server.

The server runs in this process by default (``server``, ``server_factory``): the same
assembly ``feedback-mta serve`` runs (``serve.Controller``), on threads of its own, on a
free loopback port, talked to with real clients. Its log lines are its events
(``tests.logroute``). A test marked ``process`` (what only a real process shows: kill -9,
SIGTERM, ``--workers``, the processing process, stdout) gets ``python -m feedback_mta
serve`` instead, exactly as an admin starts it, from the same fixtures.

Databases are copies of a template migrated once per run: a copied SQLite file, or a
PostgreSQL ``CREATE DATABASE ... TEMPLATE``. A test marked ``empty_database`` gets an empty
one (``serve`` or ``db upgrade`` makes the schema, as on a new machine); so does one that
asks for ``sqlite_url``.

PostgreSQL tests skip with the reason when no server answers; ``.ci/run`` sets
``FEEDBACK_MTA_REQUIRE_PG=1`` so that a missing server fails CI instead.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from feedback_mta import config as config_mod
from feedback_mta.store import db
from tests import logroute
from tests.support import free_port

logroute.install()

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).parent / "fixtures"
SECRET = "test-secret-key-0123456789abcdef"
DOMAIN = "fb.test"
PG_ADMIN = os.environ.get("FEEDBACK_MTA_TEST_PG", "postgresql+psycopg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else why not."""
    try:
        engine = sa.create_engine(PG_ADMIN, connect_args={"connect_timeout": 2})
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
        engine.dispose()
        return None
    except Exception as exc:  # any failure means: not reachable here
        return f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"


_PG_PROBLEM = _pg_reachable()


def _require_pg() -> None:
    if _PG_PROBLEM is not None:
        if os.environ.get("FEEDBACK_MTA_REQUIRE_PG"):
            pytest.fail(f"PostgreSQL required but not reachable at {PG_ADMIN}: {_PG_PROBLEM}")
        pytest.skip(f"PostgreSQL not reachable at {PG_ADMIN}: {_PG_PROBLEM}")


@pytest.fixture(autouse=True)
def _test_lines_go_nowhere() -> None:
    """The test's own log lines (seeding through the actions) are nobody's events."""
    logroute.quiet_here()


def _migrate(url: str) -> None:
    engine = db.create_engine(config_mod.DatabaseConfig(url=url))
    db.upgrade(engine)
    engine.dispose()


@contextlib.contextmanager
def _pg_database(prefix: str = "fbmta", template: str | None = None
                 ) -> Iterator[tuple[str, str]]:
    """A new PostgreSQL database (its name and URL), from ``template`` if given, dropped
    afterwards."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'
                             + (f' TEMPLATE "{template}"' if template else '')))
    url = sa.engine.make_url(PG_ADMIN).set(database=name).render_as_string(hide_password=False)
    try:
        yield name, url
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file at the newest schema, migrated once; tests get copies."""
    path = tmp_path_factory.mktemp("template") / "feedback.sqlite3"
    _migrate(f"sqlite:///{path}")
    assert not path.with_name(path.name + "-wal").exists(), "the template is one file"
    return path


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A PostgreSQL database at the newest schema, migrated once; tests' databases are
    made from it (``CREATE DATABASE ... TEMPLATE``)."""
    _require_pg()
    with _pg_database("fbmta_template") as (name, url):
        _migrate(url)
        yield name


ENGINES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


@contextlib.contextmanager
def _database(request, kind: str, folder: Path, migrated: bool) -> Iterator[str]:
    """A new database of ``kind`` (its URL): a SQLite file in ``folder``, or a PostgreSQL
    database, dropped afterwards; a copy of the migrated template when ``migrated``."""
    if kind == "sqlite":
        path = folder / "feedback.sqlite3"
        if migrated:
            shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        yield f"sqlite:///{path}"
        return
    _require_pg()
    template = request.getfixturevalue("pg_template") if migrated else None
    with _pg_database(template=template) as (_name, url):
        yield url


@pytest.fixture(params=ENGINES)
def database_url(request, tmp_path) -> Iterator[str]:
    """A database of each engine: a SQLite file, or a new PostgreSQL database, at the
    newest schema (a copy of the template); empty for a test marked ``empty_database``."""
    migrated = request.node.get_closest_marker("empty_database") is None
    with _database(request, request.param, tmp_path, migrated) as url:
        yield url


@pytest.fixture(scope="module", params=ENGINES)
def shared_server(request, tmp_path_factory) -> Iterator[InProcessServer]:
    """One in-process server (of each engine) for the tests of a module that only vary
    their input and change nothing another of them reads: 20 RCPT refusals need one
    server, not 20."""
    folder = tmp_path_factory.mktemp("shared")
    with _database(request, request.param, folder, migrated=True) as url:
        server = InProcessServer(write_config(folder / "feedback-mta.toml", url)).start()
        try:
            yield server
        finally:
            server.stop()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'feedback.sqlite3'}"


def write_config(path: Path, url: str, **sections: dict) -> Path:
    """A config file for tests: port 0 (the server reports the port it bound)."""
    base: dict[str, dict] = {
        "database": {"url": url, "busy_timeout": "10s"},
        "smtp": {"host": "127.0.0.1", "port": 0, "domain": DOMAIN, "lmtp": False,
                 "max_message_size": 1024 * 1024, "drain_timeout": "10s"},
        "security": {"secret_key": SECRET},
        "processing": {"sweep_interval": "1s"},
        # Test addresses are on .test (RFC 2606), which the quality check rightly calls invalid.
        "quality": {"allowed_domains": ["test"]},
        "logging": {"format": "json"},
        # The tests' relays answer at once: a stop never waits 30 s for one delivery.
        "outbound": {"timeout": "5s"},
    }
    for name, values in sections.items():
        base.setdefault(name, {}).update(values)
    lines = []
    for name, values in base.items():
        lines.append(f"[{name}]")
        lines += [f"{key} = {json.dumps(value)}" for key, value in values.items()
                  if not isinstance(value, dict)]
        for key, table in values.items():  # [webhooks.mailgun] and the like
            if isinstance(table, dict):
                lines.append(f"[{name}.{key}]")
                lines += [f"{k} = {json.dumps(v)}" for k, v in table.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def config_file(tmp_path, database_url) -> Path:
    return write_config(tmp_path / "feedback-mta.toml", database_url)


@pytest.fixture
def cfg(config_file) -> config_mod.Config:
    return config_mod.load(config_file, env={})


@pytest.fixture
def engine(cfg):
    """The test's database at the newest schema (``database_url`` copied the template)."""
    engine = db.create_engine(cfg.database)
    db.check_schema(engine)
    yield engine
    engine.dispose()


class _Events:
    """A server's log lines as events, and waiting for one."""

    def __init__(self) -> None:
        self.events: list[dict] = []

    def _more(self, timeout: float) -> None:
        raise NotImplementedError

    def wait_for(self, name: str, timeout: float = 30, **match) -> dict:
        """The first logged event ``name`` (with these fields) since start, waiting for it."""
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            for event in self.events[seen:]:
                if event.get("event") == name and all(event.get(k) == v for k, v in match.items()):
                    return event
            seen = len(self.events)
            if time.monotonic() > deadline:
                tail = "\n".join(json.dumps(e) for e in self.events[-20:])
                raise AssertionError(f"no {name} {match} within {timeout}s; last lines:\n{tail}")
            self._more(min(0.05, max(0.0, deadline - time.monotonic())))

    def count(self, name: str) -> int:
        self._more(0)
        return sum(1 for e in self.events if e.get("event") == name)


def _stacks() -> str:
    """Every thread's stack but the caller's: where a service that will not stop waits."""
    import traceback

    names = {t.ident: t.name for t in threading.enumerate()}
    return "\n".join(f"--- {names.get(ident, ident)}\n" + "".join(traceback.format_stack(frame))
                     for ident, frame in sys._current_frames().items()
                     if ident != threading.get_ident())


class InProcessServer(_Events):
    """The service in this process (``serve.Controller``): what ``feedback-mta serve``
    runs, on threads of its own, its log lines collected as events. Processing runs on
    the service's threads (``[processing] own_process`` off): the processing process is
    the process tier's to test."""

    proc = None

    def __init__(self, config_path: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        super().__init__()
        unknown = set(args) - {"--no-smtp"}
        if unknown:
            raise ValueError(f"{sorted(unknown)} needs a real process: mark "
                             "the test `process`")
        self.config_path = config_path
        self.smtp = "--no-smtp" not in args
        self.env = {**os.environ, **(env or {})}
        self.port = 0
        self.controller = None
        self._arrived = threading.Condition()

    def _heard(self, event: dict) -> None:
        with self._arrived:
            self.events.append(event)
            self._arrived.notify_all()

    def _more(self, timeout: float) -> None:
        with self._arrived:
            self._arrived.wait(timeout)

    def start(self, timeout: float = 30) -> InProcessServer:
        from feedback_mta.service.serve import Controller

        cfg = config_mod.load(self.config_path, env=self.env)
        cfg = dataclasses.replace(cfg, processing=dataclasses.replace(
            cfg.processing, own_process=False))
        logroute.SERVERS.level = logroute.logs._LEVELS[cfg.logging.level]
        logroute.SERVERS.mask = cfg.logging.mask_addresses
        logroute.SERVERS.add(self._heard)
        self.controller = Controller(cfg, smtp=self.smtp)
        try:
            self.controller.start(timeout)
        except BaseException:
            logroute.SERVERS.remove(self._heard)
            raise
        self.port = self.wait_for("server.started", timeout=timeout)["port"]
        return self

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        """Drain and stop, as SIGTERM stops ``serve``; 0 once stopped."""
        if sig != signal.SIGTERM:
            raise ValueError("only a real process can be killed: mark the test `process`")
        if self.controller is not None:
            controller, self.controller = self.controller, None
            try:
                controller.stop(timeout)
            except TimeoutError as exc:
                raise AssertionError(f"{exc}; where its threads are:\n{_stacks()}") from None
            finally:
                logroute.SERVERS.remove(self._heard)
        return 0

    def kill(self) -> None:
        raise ValueError("only a real process can be killed: mark the test `process`")


class Server(_Events):
    """``feedback-mta serve`` in a child process; its JSON log lines are collected."""

    def __init__(self, config_path: Path, env: dict[str, str] | None = None,
                 args: tuple[str, ...] = ()) -> None:
        super().__init__()
        self.config_path = config_path
        self.args = args
        self.env = {**os.environ, **(env or {})}
        self.proc: subprocess.Popen | None = None
        self.port = 0
        self._lines: queue.Queue = queue.Queue()

    def start(self, timeout: float = 30) -> Server:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "feedback_mta", "serve", "--config", str(self.config_path),
             *self.args],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self.env, cwd=ROOT)
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        started = self.wait_for("server.started", timeout=timeout)
        self.port = started["port"]
        return self

    def _read(self, proc) -> None:
        for line in proc.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                event = {"event": "raw", "line": line.decode(errors="replace").rstrip()}
            self._lines.put(event)

    def _more(self, timeout: float) -> None:
        if self.proc.poll() is not None and self._lines.empty():
            time.sleep(0.1)
            if self._lines.empty():
                tail = "\n".join(json.dumps(e) for e in self.events[-20:])
                raise AssertionError(f"server exited {self.proc.returncode}:\n{tail}")
        try:
            self.events.append(self._lines.get(timeout=timeout))
        except queue.Empty:
            return
        while True:  # and whatever else is there already
            try:
                self.events.append(self._lines.get_nowait())
            except queue.Empty:
                return

    def count(self, name: str) -> int:
        while not self._lines.empty():
            self.events.append(self._lines.get_nowait())
        return sum(1 for e in self.events if e.get("event") == name)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else 0
        self.proc.send_signal(sig)
        code = self.proc.wait(timeout)
        self._drain()
        return code

    def _drain(self) -> None:
        while True:
            try:
                self.events.append(self._lines.get(timeout=0.05))
            except queue.Empty:
                return

    def kill(self) -> None:
        self.stop(signal.SIGKILL)


@pytest.fixture
def server_factory(request):
    """Servers, stopped at the end of the test: in this process, or ``serve`` processes
    (killed if still running) for a test marked ``process``."""
    real = request.node.get_closest_marker("process") is not None
    if "relay" in request.fixturenames:
        # Made first, so stopped last: a server stopping (draining its outbox) while the
        # relay it sends to is already gone would wait out the delivery's timeout.
        request.getfixturevalue("relay")
    servers: list[InProcessServer | Server] = []

    def make(config_path: Path, timeout: float = 30, **kwargs) -> InProcessServer | Server:
        server = (Server if real else InProcessServer)(config_path, **kwargs)
        servers.append(server)
        return server.start(timeout)

    yield make
    for server in servers:
        if isinstance(server, Server):
            server.stop(signal.SIGKILL if server.proc and server.proc.poll() is None else 0)
        else:
            server.stop()


@pytest.fixture
def server(server_factory, config_file, engine) -> InProcessServer | Server:
    """A running server on a fresh database of each engine (schema already upgraded)."""
    return server_factory(config_file)


class Relay:
    """A second, plain aiosmtpd server standing in for the outbound relay; keeps what it gets."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[str, list[str], bytes]] = []
        self._arrived = threading.Condition()
        self.port = free_port()
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)

    async def handle_DATA(self, server, session, envelope):
        with self._arrived:
            self.messages.append((envelope.mail_from, list(envelope.rcpt_tos),
                                  bytes(envelope.original_content)))
            self._arrived.notify_all()
        return "250 2.0.0 OK"

    def wait(self, n: int, timeout: float = 20) -> list[tuple[str, list[str], bytes]]:
        with self._arrived:
            self._arrived.wait_for(lambda: len(self.messages) >= n, timeout)
        assert len(self.messages) >= n, f"relay got {len(self.messages)} of {n} mails"
        return self.messages[:n]

    def start(self) -> Relay:
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()


@pytest.fixture
def relay() -> Iterator[Relay]:
    relay = Relay().start()
    yield relay
    relay.stop()
