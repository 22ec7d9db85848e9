"""The mail we send, as ``feedback-mta outbox list`` shows it: to whom, what about, where it
stands (queued, sent, failed, expired), how often it was tried and why it failed."""

from __future__ import annotations

from collections.abc import Sequence
from email import policy
from email.parser import BytesHeaderParser
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from feedback_mta.store.models import OutboundMessage, table_of

_T = table_of(OutboundMessage)
#: What ``outbox list`` shows when no state is named: what is not sent (yet).
PENDING = ("queued", "failed")
#: The columns of a listed mail, in order.
COLUMNS = ("id", "purpose", "to", "subject", "state", "attempts", "next_attempt_at",
           "last_error", "created_at", "sent_at")


def subject_of(raw: bytes) -> str:
    """The Subject of a mail (encoded words decoded), '' without one. Pure."""
    return str(BytesHeaderParser(policy=policy.default).parsebytes(raw).get("Subject") or "")


def listing(conn: Connection, *, states: Sequence[str] = PENDING,
            limit: int = 100) -> list[dict[str, Any]]:
    """Outbound mail in these states, newest first. ``next_attempt_at`` only for queued
    mail (the rest is never tried again)."""
    rows = conn.execute(
        sa.select(_T.c.id, _T.c.purpose, _T.c.rcpt_to, _T.c.raw, _T.c.state, _T.c.attempts,
                  _T.c.next_attempt_at, _T.c.last_error, _T.c.created_at, _T.c.sent_at)
        .where(_T.c.state.in_(list(states))).order_by(_T.c.id.desc()).limit(limit))
    return [{"id": r.id, "purpose": r.purpose, "to": r.rcpt_to, "subject": subject_of(r.raw),
             "state": r.state, "attempts": r.attempts,
             "next_attempt_at": r.next_attempt_at if r.state == "queued" else None,
             "last_error": r.last_error, "created_at": r.created_at, "sent_at": r.sent_at}
            for r in rows]
