"""Every address that must not be mailed: each contact whose ``mailable`` is false (opted
out, pending, or unmailable after bounces), with its ``not_mailable_reason`` as ``reason``.

The platform keeps its own copy of this list (SES, Postmark and SendGrid call theirs a
suppression list); it pages through it by contact id, and a cursor is that id, opaque to
the platform so the order can change without breaking it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from feedback_mta.queries import cursors
from feedback_mta.store.models import BOUNCED, Contact, ContactStatus

COLUMNS = ("contact_id", "account_id", "email", "reason", "since", "opted_out", "mailable",
           "undeliverable_reason", "bounced")


def decode_cursor(cursor: str | None) -> int:
    """The contact id in a cursor; ``BadCursor`` for anything we did not hand out."""
    return cursors.decode("c", cursor) or 0


def row(contact: Contact) -> dict[str, Any]:
    """``mailable`` as everywhere else (false here); ``bounced``: the address bounced too,
    whatever the reason."""
    opted_out = contact.status == ContactStatus.OPTED_OUT
    reason = contact.not_mailable_reason
    since: datetime | None = (contact.opted_out_at if opted_out else contact.undeliverable_at
                              if reason == BOUNCED else contact.created_at)
    return {"contact_id": contact.id, "account_id": contact.account_id, "email": contact.email,
            "reason": reason, "since": since, "opted_out": opted_out,
            "mailable": contact.mailable,
            "undeliverable_reason": contact.undeliverable_reason,
            "bounced": contact.undeliverable_at is not None}


def page(session: Session, *, account: int | None, after: str | None = None,
         limit: int = 1000) -> tuple[list[dict[str, Any]], str | None]:
    """One page in contact order and the cursor of the next (None: that was the last)."""
    start = decode_cursor(after)
    query = select(Contact).where(col(Contact.id) > start, sa.not_(Contact.mailable))
    if account is not None:
        query = query.where(Contact.account_id == account)
    contacts, cursor = cursors.cut(
        list(session.exec(query.order_by(col(Contact.id)).limit(limit + 1)).all()),
        limit, "c", lambda c: c.id)
    return [row(c) for c in contacts], cursor
