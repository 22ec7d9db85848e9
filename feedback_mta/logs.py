"""structlog, configured once: JSON lines (or a console renderer on a TTY).

Event names are stable (admins and their ``jq`` filters rely on them): ``message.accepted``,
``message.processed``, ``smtp.rcpt_refused``, ... Fields are ids, kinds, states, reasons
and timings; never message bodies.

``serve`` logs to stdout (journald picks it up). Other commands log to stderr, because
with ``--json`` their stdout carries nothing but the JSON answer.
"""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

import structlog
from structlog.processors import _json_fallback_handler

_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING,
           "error": logging.ERROR}


def error_line(exc: BaseException, limit: int = 300) -> str:
    """``Type: first line of the message`` for a log field: short, one line, no traceback."""
    lines = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {lines[0][:limit] if lines else ''}"


_ADDRESS = re.compile(r"([^\s<>\"'(),;:@=\[\]]+)@([A-Za-z0-9.-]+\.[A-Za-z]{2,})")
#: Fields that are ours to name, never personal data.
_NOT_MASKED = frozenset({"ts", "level", "event", "logger"})


def mask(text: str) -> str:
    """``jane.doe@example.com`` -> ``j***@example.com``: the domain stays (which provider
    complains, which receiver bounces is what operators look for), the person does not."""
    return _ADDRESS.sub(lambda m: f"{m.group(1)[0]}***@{m.group(2)}", text)


def _mask_addresses(_logger, _name, event_dict):
    """``[logging] mask_addresses``: every address in every string field, errors included."""
    for key, value in event_dict.items():
        if key in _NOT_MASKED:
            continue
        if isinstance(value, str) and "@" in value:
            event_dict[key] = mask(value)
        elif isinstance(value, list | tuple) and any(isinstance(v, str) for v in value):
            event_dict[key] = [mask(v) if isinstance(v, str) else v for v in value]
    return event_dict


def _canonical_order(_logger, _name, event_dict):
    """ts, level, event first: what a person scanning the lines reads first."""
    head = {k: event_dict.pop(k) for k in ("ts", "level", "event") if k in event_dict}
    head.update(event_dict)
    return head


#: How ``configure`` was last called, for a process started afresh to log the same way.
_SETTINGS: dict = {}
#: What ``bind_process`` added, likewise.
_BOUND: dict = {}


def settings() -> dict:
    """The arguments of the last ``configure`` (its stream named ``stdout`` or ``stderr``):
    pass them to ``configure_as`` in a new process (``serve``'s processing process)."""
    return {**_SETTINGS, "bound": dict(_BOUND)}


def configure_as(saved: dict) -> None:
    """Log as ``settings()`` said another process does (to the same stdout or stderr)."""
    saved = dict(saved)
    stream = sys.stderr if saved.pop("stream", "stdout") == "stderr" else sys.stdout
    bound = saved.pop("bound", {})
    configure(**saved, stream=stream)
    if bound:
        bind_process(**bound)


def processors(*middle: Any, renderer: Any) -> list[Any]:
    """Every line's processors: context, level, time, the exception, then ``middle``
    (masking, ...), ts/level/event first, and ``renderer``."""
    return [structlog.contextvars.merge_contextvars, structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
            structlog.processors.format_exc_info, *middle, _canonical_order, renderer]


#: ``add_log_level``'s names for the methods that are not their level's.
_LEVEL_OF = {"warn": "warning", "exception": "error"}
#: ``JSONRenderer(sort_keys=False)``'s ``json.dumps``, its encoder made once, not per line.
_ENCODE = json.JSONEncoder(default=_json_fallback_handler).encode


class _JsonLine:
    """What ``processors`` does after the context to a JSON line (level, time, the
    exception, masking, ts/level/event first, ``JSONRenderer``), in one call, writing the
    same line: five processors called one after the other cost more than the line's own
    work (a processing process writes two lines a message)."""

    def __init__(self, mask_addresses: bool) -> None:
        self._mask = mask_addresses

    def __call__(self, logger: Any, name: str, event_dict: Any) -> str:
        event_dict["level"] = _LEVEL_OF.get(name, name)
        event_dict["ts"] = datetime.now(tz=UTC).isoformat().replace("+00:00", "Z")
        if "exc_info" in event_dict:
            event_dict = structlog.processors.format_exc_info(logger, name, event_dict)
        if self._mask:
            event_dict = _mask_addresses(logger, name, event_dict)
        return _ENCODE(_canonical_order(logger, name, event_dict))


def configure(level: str = "info", fmt: str = "auto", stream: TextIO | None = None, *,
              mask_addresses: bool = False) -> None:
    stream = stream or sys.stdout
    _SETTINGS.update(level=level, fmt=fmt, mask_addresses=mask_addresses,
                     stream="stderr" if stream is sys.stderr else "stdout")
    console = fmt == "console" or (fmt == "auto" and stream.isatty())
    structlog.configure(
        processors=processors(*([_mask_addresses] if mask_addresses else []),
                              renderer=structlog.dev.ConsoleRenderer()) if console
        else [structlog.contextvars.merge_contextvars, _JsonLine(mask_addresses)],
        wrapper_class=structlog.make_filtering_bound_logger(_LEVELS[level]),
        logger_factory=structlog.WriteLoggerFactory(file=stream),
        cache_logger_on_first_use=True,
    )
    quiet_libraries()
    if not logging.getLogger().handlers:
        logging.basicConfig(stream=sys.stderr, level=logging.WARNING,
                            format="%(levelname)s %(name)s: %(message)s")


def quiet_libraries() -> None:
    """The stdlib loggers of our libraries, held to what is news to an operator."""
    # aiosmtpd logs every command at INFO through the stdlib logger "mail.log": a session
    # transcript is not an event, and it would carry addresses into the logs unasked.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    logging.getLogger("apscheduler").setLevel(logging.WARNING)
    # mail-parser warns on every part type it does not decode (text/rfc822-headers in each
    # DSN): expected input, not an event, and not a JSON line.
    logging.getLogger("mailparser").setLevel(logging.ERROR)


def bind_process(**fields) -> None:
    """Add ``fields`` to every line this process writes from now on, on every thread
    (contextvars would not reach the threads): ``worker`` in ``serve --workers``."""

    _BOUND.update(fields)

    def add(_logger, _name, event_dict):
        for key, value in fields.items():
            event_dict.setdefault(key, value)
        return event_dict

    # In place: loggers already cached (cache_logger_on_first_use) share this list.
    structlog.get_config()["processors"].insert(0, add)


def get(name: str | None = None) -> structlog.typing.FilteringBoundLogger:
    return structlog.get_logger(name)
