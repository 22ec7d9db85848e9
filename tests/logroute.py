"""The log lines of services and commands run inside the test process, each to its reader.

In production one process logs to one place: ``serve`` to stdout, a command to stderr
(``feedback_mta.logs.configure``). Here a test runs the service on threads of its own
(``serve.Controller``) and the command line in its own thread (``tests.cli``), both in
one process, and reads both: the service's lines as events (``InProcessServer.wait_for``),
a command's as its stderr. So structlog is configured once, to render every line as
``serve`` does (JSON) and hand it to the reader of the context it was written in:

* a command's lines go to its stderr, at the level it chose (``logs.configure``, called
  by the command, sets that for the command's context only, which ``tests.cli`` throws
  away when the command returns);
* lines of threads with no reader of their own (the service's: threads start with an
  empty context) go to the running in-process servers;
* the test's own lines (seeding through the actions) go nowhere, as they went nowhere
  when the service was a child process.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, TextIO

import structlog

from feedback_mta import logs


@dataclass(frozen=True)
class Reader:
    level: int
    write: Callable[[str], None]
    mask: bool = False


def _discard(_line: str) -> None:
    pass


NOWHERE = Reader(logging.CRITICAL + 1, _discard)
_READER: ContextVar[Reader | None] = ContextVar("tests_log_reader", default=None)


class Servers:
    """The in-process servers' event lists: each line, parsed, goes to every one of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sinks: list[Callable[[dict[str, Any]], None]] = []
        #: As the running server's config says ([logging] level, mask_addresses).
        self.level = logging.INFO
        self.mask = False

    def add(self, sink: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            self._sinks.append(sink)

    def remove(self, sink: Callable[[dict[str, Any]], None]) -> None:
        with self._lock:
            if sink in self._sinks:
                self._sinks.remove(sink)

    def write(self, line: str) -> None:
        event = json.loads(line)
        with self._lock:
            sinks = list(self._sinks)
        for sink in sinks:
            sink(event)


SERVERS = Servers()


def _reader() -> Reader:
    reader = _READER.get()
    if reader is not None:
        return reader
    return Reader(SERVERS.level, SERVERS.write, SERVERS.mask)


def _by_reader(_logger: Any, method: str, event_dict: dict[str, Any]) -> dict[str, Any]:
    reader = _reader()
    if logs._LEVELS.get(method, logging.INFO) < reader.level:
        raise structlog.DropEvent
    if reader.mask:
        event_dict = logs._mask_addresses(_logger, method, event_dict)
    return event_dict


class _Logger:
    """Writes a rendered line to the reader of the context it is written in."""

    def msg(self, line: str) -> None:
        _reader().write(line + "\n")

    log = debug = info = warn = warning = error = critical = exception = fatal = msg


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None, *,
              mask_addresses: bool = False) -> None:
    """``logs.configure`` as a command calls it: its lines go to ``stream`` from now on
    in this context (the command's), at ``level``."""
    import sys

    out = stream or sys.stdout
    _READER.set(Reader(logs._LEVELS[level], out.write, mask_addresses))


def install() -> None:
    """Route every line from now on; ``logs.configure`` routes the caller's context."""
    structlog.configure(
        processors=logs.processors(
            _by_reader, renderer=structlog.processors.JSONRenderer(sort_keys=False)),
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=lambda *args: _Logger(),
        cache_logger_on_first_use=True,
    )
    logs.quiet_libraries()
    logs.configure = configure  # type: ignore[assignment]


def quiet_here() -> None:
    """Lines written in the caller's context (the test's own) go nowhere."""
    _READER.set(NOWHERE)
