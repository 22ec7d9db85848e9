"""Keyset cursors: the id a page ended at, opaque to the client (so the order can change
without breaking it) and tied to its list by a letter (a suppressions cursor is no leads
cursor). Anything we did not hand out is ``BadCursor``, never a query."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Callable
from typing import TypeVar

#: The largest id either engine holds (PostgreSQL's integer).
MAX_ID = 2**31 - 1
T = TypeVar("T")


class BadCursor(ValueError):
    pass


def encode(kind: str, last_id: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}{last_id}".encode()).decode().rstrip("=")


def decode(kind: str, cursor: str | None) -> int | None:
    """The id in a cursor of list ``kind``; None for no cursor (the first page)."""
    if not cursor:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        digits = text[len(kind):]
        # Ids as the database holds them: a bigger number is no cursor of ours.
        if text.startswith(kind) and digits.isdigit() and len(digits) <= 10 \
                and int(digits) <= MAX_ID:
            return int(digits)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadCursor(f"not a cursor of this list: {cursor!r}")


def cut(rows: list[T], limit: int, kind: str, key: Callable[[T], int | None]
        ) -> tuple[list[T], str | None]:
    """A page read with ``limit + 1`` rows: the first ``limit`` and the cursor of the next
    page (None: this was the last), which is the id of the page's last row."""
    if len(rows) <= limit:
        return rows, None
    rows = rows[:limit]
    return rows, encode(kind, key(rows[-1]) or 0)
