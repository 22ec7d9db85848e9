"""Reads: every view the command line (and, next, the HTTP API) shows, in one place.

Plain functions over a session, returning dicts ready for JSON (datetimes stay datetimes;
the caller renders them). Nothing here writes: a read never changes a lead, a contact or
the database. Unknown targets raise ``NotFound`` with a message that names them.
"""

from __future__ import annotations

from datetime import UTC, datetime


def iso(value: datetime | None) -> str | None:
    """A stored time as every output shows it: UTC, ISO 8601, ``Z`` (SQLite gives times back
    without their zone; they are UTC)."""
    if value is None:
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")


def utc(value: datetime) -> datetime:
    """A time asked for, in UTC as stored (a time without a zone is taken as UTC)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class NotFound(LookupError):
    """What was asked for does not exist (the message names it)."""
