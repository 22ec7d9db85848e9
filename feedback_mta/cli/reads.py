"""The reads an admin runs most, ``lead show ID``, ``contact show ID`` and ``inbox list``,
in about the time of importing SQLAlchemy.

Each read is defined here once, its query and its printing: the typer commands (``leads``,
``contacts``, ``inbox``) call these functions, and so does ``__main__`` straight from the
command line (``fast``) when it holds nothing but a read's own arguments. That way loads
neither typer nor SQLModel and pydantic (the queries run on the Core tables of
``store.tables``); the output, the errors and the exit codes are the same, from the same
functions. Anything else (``--help``, ``-v``, a value that is not plainly right, an option
spelt another way) goes to typer, which answers as it always does.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from feedback_mta import config as config_mod
from feedback_mta.cli.base import (
    EXIT_USAGE,
    Failure,
    connection,
    engines,
    failure_of,
    internal,
    load,
    say,
)
from feedback_mta.cli.output import emit, emit_rows
from feedback_mta.kinds import Kind
from feedback_mta.store.states import MessageState


def lead_show(config: Path | None, lead_id: int, as_json: bool) -> None:
    """``lead show ID``: one lead."""
    from feedback_mta.addresses import AddressBook
    from feedback_mta.queries import records

    cfg = load(config)
    with connection(cfg) as conn:
        emit(records.lead(conn, AddressBook.from_config(cfg), lead_id), as_json)


def contact_show(config: Path | None, contact_id: int, as_json: bool) -> None:
    """``contact show ID``: one contact."""
    from feedback_mta.queries import records

    with connection(config) as conn:
        emit(records.contact(conn, contact_id), as_json)


def since_time(value: str | None) -> datetime | None:
    """``--since``: an ISO date/time, or an age (``90m``, ``2h``, ``7d``) back from now."""
    if not value:
        return None
    try:
        return datetime.now(UTC) - timedelta(seconds=config_mod.parse_duration(value))
    except ValueError:
        pass
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        raise Failure(f"--since: expected an ISO date such as 2026-11-21 or an age such as "
                      f"7d, got {value!r}", EXIT_USAGE) from None
    return when if when.tzinfo else when.replace(tzinfo=UTC)


#: ``inbox list``'s table: how each message came (``source``: smtp, lmtp or http, and for
#: http whose hook, ``provider``) beside what became of it.
INBOX_COLUMNS = ("id", "message_id", "state", "kind", "source", "provider", "reason",
                 "received_at")


def inbox_list(config: Path | None, *, state: str | None = None, kind: str | None = None,
               message_id: str | None = None, sender: str | None = None,
               rcpt: str | None = None, since: str | None = None, limit: int = 100,
               as_json: bool = False) -> None:
    """``inbox list``: inbound messages, newest first (bodies are never shown here)."""
    from feedback_mta.queries import inbox

    after = since_time(since)
    with connection(config) as conn:
        rows = inbox.listing(conn, state=state, kind=kind, message_id=message_id,
                             sender=sender, rcpt=rcpt, since=after, limit=limit)
    emit_rows(rows, INBOX_COLUMNS, as_json)


# The fast path: a command line that names one of the reads above and nothing but its
# arguments, each as typer would take it, runs the read without typer.

def _count(value: str) -> int | None:
    return int(value) if re.fullmatch(r"[0-9]+", value) else None


def _positive(value: str) -> int | None:
    number = _count(value)
    return number if number else None


def _one_of(choices: type[Kind] | type[MessageState]) -> Callable[[str], str | None]:
    names = {str(c.value) for c in choices}
    return lambda value: value if value in names else None


@dataclass(frozen=True)
class _Read:
    """A read's command line: whether it takes an ID, and its options (each a converter
    that gives None for a value typer should judge)."""

    run: Callable[..., None]
    takes_id: bool
    options: Mapping[str, tuple[str, Callable[[str], Any]]] = field(default_factory=dict)


_CONFIG = ("config", Path)
_READS = {
    "lead show": _Read(lead_show, True),
    "contact show": _Read(contact_show, True),
    "inbox list": _Read(inbox_list, False, {
        "--state": ("state", _one_of(MessageState)), "--kind": ("kind", _one_of(Kind)),
        "--message-id": ("message_id", str), "--from": ("sender", str),
        "--rcpt": ("rcpt", str), "--since": ("since", str), "--limit": ("limit", _positive)}),
}


def plan(argv: list[str]) -> Callable[[], None] | None:
    """The read ``argv`` asks for, ready to run; None when typer should take it."""
    read = _READS.get(f"{argv[0]} {argv[1]}") if len(argv) >= 2 else None
    if read is None:
        return None
    options = {"--config": _CONFIG, "-c": _CONFIG, **read.options}
    kwargs: dict[str, Any] = {"config": None, "as_json": False}
    ids: list[int | None] = []
    rest = iter(argv[2:])
    for arg in rest:
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if arg == "--json":
            kwargs["as_json"] = True
        elif name in options:
            value = inline if eq else next(rest, "")
            key, convert = options[name]
            if not value or value.startswith("-") or (parsed := convert(value)) is None:
                return None
            kwargs[key] = parsed
        elif arg.startswith("-"):
            return None
        else:
            ids.append(_count(arg))
    if len(ids) != read.takes_id or None in ids:
        return None
    if kwargs["config"] is None and os.environ.get(config_mod.ENV_CONFIG) == "":
        return None
    return functools.partial(read.run, kwargs.pop("config"), *ids, **kwargs)


def fast(argv: list[str]) -> int | None:
    """Run ``argv`` if it is one of the reads above: its exit code, after its output or its
    error's one line, as typer's command would have given them. None: typer's to run."""
    chosen = plan(argv)
    if chosen is None:
        return None
    try:
        with engines():
            chosen()
    except Exception as exc:
        known = failure_of(exc) or internal(exc)
        say(known)
        return known.code
    return 0
