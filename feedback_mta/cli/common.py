"""What every typer command shares: options, the config, engines, printing, errors.

The parts that need no typer (exit codes, the config, engines, errors) are in ``base``, the
printing in ``output``; the fast reads (``reads``) use them too, and they are imported here
under their old names. ``command`` wraps a command function: a ``Failure``, an action that
cannot be done, an unknown target or a database that is away becomes one line on stderr
and its exit code. Reads open the database with ``read_engine``, which creates and
migrates nothing.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, ParamSpec, TypeVar

import typer

from feedback_mta import config as config_mod
from feedback_mta.cli.base import (
    ENGINES,
    EXIT_CONFIG,
    EXIT_DATABASE,
    EXIT_FAILED,
    EXIT_USAGE,
    FAST_EXIT,
    VERBOSITY,
    Failure,
    connection,
    failure_of,
    first_line,
    internal,
    load,
    open_engine,
    read_engine,
    say,
)
from feedback_mta.cli.output import emit, emit_rows, jsonable

if TYPE_CHECKING:  # the database stack is imported on use: a command starts fast
    from sqlalchemy.engine import Engine
    from sqlmodel import Session

    from feedback_mta.actions import UnitOfWork

# What the command modules import from here; the light ones live in ``base`` and ``output``
# (the fast reads use them without typer).
__all__ = ["ENGINES", "EXIT_CONFIG", "EXIT_DATABASE", "EXIT_FAILED", "EXIT_USAGE",
           "FAST_EXIT", "VERBOSITY", "Failure", "connection", "emit", "emit_rows",
           "first_line", "jsonable", "load", "open_engine", "read_engine"]

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


def configure_logs(cfg: config_mod.Config, *, stream: Any = None,
                   level: str | None = None) -> None:
    """Logs for a command that changes something: warnings and errors unless -v (-vv:
    debug), or ``level``. Reads log nothing, so they never load the logging stack."""
    from feedback_mta import logs

    verbosity = VERBOSITY.get()
    chosen = level or {0: "warning", 1: "info"}.get(verbosity, "debug")
    logs.configure(chosen, cfg.logging.format, stream=stream or sys.stderr,
                   mask_addresses=cfg.logging.mask_addresses)


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


@contextmanager
def reading(config: Path | None) -> Iterator[tuple[config_mod.Config, Session]]:
    """The config and a read-only session (nothing is created or migrated)."""
    from sqlmodel import Session

    cfg = load(config)
    with Session(read_engine(cfg)) as session:
        yield cfg, session


@contextmanager
def writing(config: Path | None, by: str | None = None
            ) -> Iterator[tuple[config_mod.Config, UnitOfWork]]:
    """The config and the actions of one transaction (committed, then logged), acting as
    ``cli`` or ``cli:<by>``."""
    from feedback_mta.actions import unit_of_work

    cfg = load(config)
    with unit_of_work(write_engine(cfg), actor(by)) as act:
        yield cfg, act


P = ParamSpec("P")
R = TypeVar("R")


def command(fn: Callable[P, R]) -> Callable[P, R]:
    """Run a command; its errors become one line on stderr and the right exit code."""
    @functools.wraps(fn)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except (typer.Exit, typer.Abort, typer.BadParameter):
            raise  # the command line's own ways out
        except Exception as exc:
            known = failure_of(exc)
            if known is None and VERBOSITY.get():
                raise  # -v: the traceback, for a bug report
            known = known or internal(exc)
            say(known)
            raise typer.Exit(known.code) from None
    return run


def fail(message: str, code: int) -> NoReturn:
    say(Failure(message, code))
    raise typer.Exit(code)


def actor(by: str | None) -> Any:
    from feedback_mta.actions import CLI, Actor

    return Actor(f"cli:{by}" if by else CLI.name, "cli")
