"""What every command shares that needs neither typer nor the models: exit codes, the
config, engines, and how an error reaches the admin.

``common`` builds the typer commands on these; the fast reads (``cli.reads``) run on them
alone, so a read answers in about the time of importing SQLAlchemy.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING

from feedback_mta import config as config_mod

if TYPE_CHECKING:  # the database stack is imported on use: a command starts fast
    from sqlalchemy.engine import Connection, Engine

EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_DATABASE = 1, 2, 3, 4

# One command's settings, in context variables rather than module globals: a command run
# inside a program (``app.run``, as the tests do) leaves nothing behind for the next one.
#: -v on the command line: log at info (-vv: debug) instead of warnings and errors only.
VERBOSITY: ContextVar[int] = ContextVar("feedback_mta_verbosity", default=0)
#: Leave with os._exit once a command is done and its output flushed (``serve`` does not).
FAST_EXIT: ContextVar[bool] = ContextVar("feedback_mta_fast_exit", default=True)
#: The engines this command opened, disposed when it ends (``engines``).
ENGINES: ContextVar[list[Engine] | None] = ContextVar("feedback_mta_engines", default=None)


class Failure(Exception):
    """A command cannot do what it was asked: one line on stderr (none when the message is
    empty) and exit ``code``."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def load(path: Path | None) -> config_mod.Config:
    """The config (exit 3 naming the key when it is wrong)."""
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        raise Failure(str(exc), EXIT_CONFIG) from None


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


@contextmanager
def engines() -> Iterator[None]:
    """One command's engines: those it opens are disposed (their connections closed) when
    it ends, so nothing is left behind for the next command of the same process."""
    opened = ENGINES.set([])
    try:
        yield
    finally:
        for engine in ENGINES.get() or ():
            engine.dispose()
        ENGINES.reset(opened)


def open_engine(cfg: config_mod.Config, *, read_only: bool = False) -> Engine:
    """The command's database engine, disposed when the command ends (``engines``)."""
    from feedback_mta.store import db

    engine = db.create_engine(cfg.database, read_only=read_only)
    opened = ENGINES.get()
    if opened is not None:
        opened.append(engine)
    return engine


def read_engine(cfg: config_mod.Config) -> Engine:
    """The database for a read: never created, never migrated (exit 4 says why not)."""
    from feedback_mta.store import db

    engine = open_engine(cfg, read_only=True)
    db.check_schema(engine)
    return db.reader(engine)


@contextmanager
def connection(config: Path | config_mod.Config | None) -> Iterator[Connection]:
    """A read-only Core connection (of the config file named, or of a config read)."""
    cfg = config if isinstance(config, config_mod.Config) else load(config)
    with read_engine(cfg).connect() as conn:
        yield conn


def failure_of(exc: BaseException) -> Failure | None:
    """What the admin is told of a command's error: a ``Failure`` with its line and exit
    code, or None for a bug. A reader that stopped reading (``| head``) gets no line.

    The error types of the actions, the store and SQLAlchemy are looked at only where their
    modules were loaded: an error raised there has loaded them, and a read that never did
    stays light even when it fails."""
    if isinstance(exc, Failure):
        return exc
    if isinstance(exc, BrokenPipeError):
        return Failure("", EXIT_FAILED)
    if isinstance(exc, OSError):  # a file named on the command line
        where = f"{exc.filename}: " if exc.filename else ""
        return Failure(f"{where}{exc.strerror or exc}", EXIT_FAILED)
    if isinstance(exc, config_mod.ConfigError):
        return Failure(str(exc), EXIT_CONFIG)
    from feedback_mta.queries import NotFound

    actions = sys.modules.get("feedback_mta.actions")
    if isinstance(exc, NotFound) or (actions and isinstance(exc, actions.ActionError)):
        return Failure(str(exc).strip("'\""), EXIT_FAILED)
    store = sys.modules.get("feedback_mta.store.db")
    if store and isinstance(exc, store.SchemaError):  # missing, or behind the code
        return Failure(str(exc), EXIT_DATABASE)
    sqlalchemy = sys.modules.get("sqlalchemy")
    if sqlalchemy and isinstance(exc, sqlalchemy.exc.SQLAlchemyError):
        return Failure(f"database: {first_line(exc)}", EXIT_DATABASE)
    return None


def internal(exc: BaseException) -> Failure:
    """A bug, told in one line (``-v`` shows the traceback instead)."""
    return Failure(f"internal error: {type(exc).__name__}: {first_line(exc)} (-v shows where)",
                   EXIT_FAILED)


def say(failure: Failure) -> None:
    """A failure's one line on stderr (a closed pipe's failure has none)."""
    if str(failure):
        print(f"feedback-mta: error: {failure}", file=sys.stderr)

