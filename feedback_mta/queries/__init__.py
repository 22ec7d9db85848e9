"""Reads: every view the command line (and, next, the HTTP API) shows, in one place.

Plain functions over a session, returning dicts ready for JSON (datetimes stay datetimes;
the caller renders them). Nothing here writes: a read never changes a lead, a contact or
the database. Unknown targets raise ``NotFound`` with a message that names them.
"""

from __future__ import annotations


class NotFound(LookupError):
    """What was asked for does not exist (the message names it)."""
