"""Every address that must not be mailed: each contact whose ``mailable`` is false (opted
out, pending, or unmailable after bounces), with its ``not_mailable_reason`` as ``reason``.

The platform keeps its own copy of this list (SES, Postmark and SendGrid call theirs a
suppression list); it pages through it by contact id, and a cursor is that id, opaque to
the platform so the order can change without breaking it.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from feedback_mta.store.models import BOUNCED, Contact, ContactStatus

#: The largest id either engine holds (PostgreSQL's integer).
MAX_ID = 2**31 - 1
COLUMNS = ("contact_id", "account_id", "email", "reason", "since", "opted_out", "mailable",
           "undeliverable_reason", "bounced")


def encode_cursor(contact_id: int) -> str:
    return base64.urlsafe_b64encode(f"c{contact_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The contact id in a cursor; ``BadCursor`` for anything we did not hand out."""
    if not cursor:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        # Ids as the database holds them: a bigger number is no cursor of ours.
        if text[:1] == "c" and text[1:].isdigit() and len(text) <= 11 \
                and int(text[1:]) <= MAX_ID:
            return int(text[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    raise BadCursor(f"not a cursor of this list: {cursor!r}")


class BadCursor(ValueError):
    pass


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
    contacts = session.exec(query.order_by(col(Contact.id)).limit(limit + 1)).all()
    more = len(contacts) > limit
    contacts = contacts[:limit]
    rows = [row(c) for c in contacts]
    return rows, encode_cursor(contacts[-1].id or 0) if more and contacts else None
