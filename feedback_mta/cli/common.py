"""What every command shares: options, exit codes, the config, engines, printing, errors.

``command`` wraps a command function: a ``Failure``, an action that cannot be done, an
unknown target or a database that is away becomes one line on stderr and its exit code.
Reads open the database with ``read_engine``, which creates and migrates nothing.
"""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from feedback_mta import config as config_mod
from feedback_mta.cli import output
from feedback_mta.queries import iso

if TYPE_CHECKING:  # the database stack is imported on use: a command starts fast
    from sqlalchemy.engine import Connection, Engine
    from sqlmodel import Session

    from feedback_mta.actions import UnitOfWork

EXIT_FAILED, EXIT_USAGE, EXIT_CONFIG, EXIT_DATABASE = 1, 2, 3, 4

ConfigOpt = Annotated[Path | None, typer.Option(
    "--config", "-c", metavar="FILE", help="Config file (TOML); default $FEEDBACK_MTA_CONFIG.",
    envvar=config_mod.ENV_CONFIG, show_envvar=True)]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON and nothing else on stdout.")]
IdArg = Annotated[int, typer.Argument(metavar="ID", show_default=False)]
AccountOpt = Annotated[int, typer.Option("--account", metavar="ID", help="Account id.",
                                         show_default=False)]
MaybeAccountOpt = Annotated[int | None, typer.Option("--account", metavar="ID",
                                                     help="Only this account.")]
SinceOpt = Annotated[str | None, typer.Option(
    "--since", metavar="WHEN", help="ISO date or time (UTC), or an age such as 2h or 7d.")]
ByOpt = Annotated[str | None, typer.Option(
    "--by", metavar="NAME", help="Who is acting, for the audit trail (default: cli).")]

# One command's settings, in context variables rather than module globals: a command run
# inside a program (``app.run``, as the tests do) leaves nothing behind for the next one.
#: -v on the command line: log at info (-vv: debug) instead of warnings and errors only.
VERBOSITY: ContextVar[int] = ContextVar("feedback_mta_verbosity", default=0)
#: Leave with os._exit once a command is done and its output flushed (``serve`` does not).
FAST_EXIT: ContextVar[bool] = ContextVar("feedback_mta_fast_exit", default=True)
#: The engines this command opened, disposed when it ends (``app.run``).
ENGINES: ContextVar[list[Engine] | None] = ContextVar("feedback_mta_engines", default=None)


class Failure(Exception):
    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def load(path: Path | None) -> config_mod.Config:
    """The config (exit 3 naming the key when it is wrong)."""
    try:
        return config_mod.load(path)
    except config_mod.ConfigError as exc:
        raise Failure(str(exc), EXIT_CONFIG) from None


def configure_logs(cfg: config_mod.Config, *, stream: Any = None,
                   level: str | None = None) -> None:
    """Logs for a command that changes something: warnings and errors unless -v (-vv:
    debug), or ``level``. Reads log nothing, so they never load the logging stack."""
    from feedback_mta import logs

    verbosity = VERBOSITY.get()
    chosen = level or {0: "warning", 1: "info"}.get(verbosity, "debug")
    logs.configure(chosen, cfg.logging.format, stream=stream or sys.stderr,
                   mask_addresses=cfg.logging.mask_addresses)


def since_time(value: str | None) -> datetime | None:
    """``--since``: an ISO date/time, or an age (``90m``, ``2h``, ``7d``) back from now."""
    if not value:
        return None
    from feedback_mta.config import parse_duration

    try:
        return datetime.now(UTC) - timedelta(seconds=parse_duration(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise Failure(f"--since: expected an ISO date such as 2026-11-21 or an age such as "
                      f"7d, got {value!r}", EXIT_USAGE) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc)
    return (text.strip().splitlines() or [type(exc).__name__])[0]


def open_engine(cfg: config_mod.Config, *, read_only: bool = False) -> Engine:
    """The command's database engine, disposed (its connections closed) when the command
    ends."""
    from feedback_mta.store import db

    engine = db.create_engine(cfg.database, read_only=read_only)
    opened = ENGINES.get()
    if opened is not None:
        opened.append(engine)
    return engine


def write_engine(cfg: config_mod.Config) -> Engine:
    """The database for a command that changes something: created and migrated when
    ``auto_upgrade`` is on, refused when its schema is behind (``command`` turns the
    errors into exit 4)."""
    from feedback_mta.store import db

    configure_logs(cfg)
    engine = open_engine(cfg)
    if cfg.database.auto_upgrade:
        db.upgrade(engine)
    db.check_schema(engine)
    return engine


def read_engine(cfg: config_mod.Config) -> Engine:
    """The database for a read: never created, never migrated (exit 4 says why not)."""
    from feedback_mta.store import db

    engine = open_engine(cfg, read_only=True)
    db.check_schema(engine)
    return db.reader(engine)


@contextmanager
def reading(config: Path | None) -> Iterator[tuple[config_mod.Config, Session]]:
    """The config and a read-only session (nothing is created or migrated)."""
    from sqlmodel import Session

    cfg = load(config)
    with Session(read_engine(cfg)) as session:
        yield cfg, session


@contextmanager
def connection(config: Path | None) -> Iterator[Connection]:
    """A read-only Core connection, for the reads written as Core statements."""
    with read_engine(load(config)).connect() as conn:
        yield conn


@contextmanager
def writing(config: Path | None, by: str | None = None
            ) -> Iterator[tuple[config_mod.Config, UnitOfWork]]:
    """The config and the actions of one transaction (committed, then logged), acting as
    ``cli`` or ``cli:<by>``."""
    from feedback_mta.actions import unit_of_work

    cfg = load(config)
    with unit_of_work(write_engine(cfg), actor(by)) as act:
        yield cfg, act


def jsonable(obj: dict[str, Any]) -> dict[str, Any]:
    return {k: iso(v) if isinstance(v, datetime) else v for k, v in obj.items()}


def emit(obj: dict[str, Any], as_json: bool) -> None:
    """One object: JSON, or ``key  value`` lines for people (lists and objects readable)."""
    obj = jsonable(obj)
    if as_json:
        print(json.dumps(obj, ensure_ascii=False, default=str))
        return
    width = max((len(k) for k in obj), default=0)
    for key, value in obj.items():
        print(f"{key:<{width}}  {output.human(value)}")


def emit_rows(rows: Iterable[dict[str, Any]], columns: Sequence[str], as_json: bool) -> None:
    rows = [jsonable(r) for r in rows]
    if as_json:
        for row in rows:
            print(json.dumps(row, ensure_ascii=False, default=str))
        return
    output.table(rows, columns)


P = ParamSpec("P")
R = TypeVar("R")


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command; its errors become one line on stderr and the right exit code."""
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except Failure as exc:
            fail(str(exc), exc.code)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise  # the command line's own ways out
        except OSError as exc:  # a file named on the command line
            where = f"{exc.filename}: " if exc.filename else ""
            fail(f"{where}{exc.strerror or exc}", EXIT_FAILED)
        except Exception as exc:
            from feedback_mta.actions import ActionError
            from feedback_mta.queries import NotFound

            if isinstance(exc, ActionError | NotFound):
                fail(str(exc).strip("'\""), EXIT_FAILED)
            import sqlalchemy as sa

            from feedback_mta.store.db import SchemaError

            if isinstance(exc, SchemaError):  # missing, or behind the code
                fail(str(exc), EXIT_DATABASE)
            if isinstance(exc, sa.exc.SQLAlchemyError):
                fail(f"database: {first_line(exc)}", EXIT_DATABASE)
            if VERBOSITY.get():
                raise  # -v: the traceback, for a bug report
            fail(f"internal error: {type(exc).__name__}: {first_line(exc)} (-v shows where)",
                 EXIT_FAILED)
    return run


def fail(message: str, code: int) -> NoReturn:
    print(f"feedback-mta: error: {message}", file=sys.stderr)
    raise typer.Exit(code)


def actor(by: str | None) -> Any:
    from feedback_mta.actions import CLI, Actor

    return Actor(f"cli:{by}" if by else CLI.name, "cli")
