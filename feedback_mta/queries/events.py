"""The audit trail: what changed, who did it, why, from which inbound message."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlmodel import Session, col, select

from feedback_mta.queries import NotFound
from feedback_mta.store.models import Account, Contact, Event, Lead, table_of

_E = table_of(Event)

#: The trail's columns, an event's name and time named as the API's feed names them
#: (``item``: ``type``, ``created_at``), not as the table does (``action``, ``at``).
COLUMNS = (_E.c.id, _E.c.action.label("type"), _E.c.at.label("created_at"), _E.c.subject_type,
           _E.c.subject_id, _E.c.account_id, _E.c.actor, _E.c.via, _E.c.reason,
           _E.c.inbound_message_id, _E.c.data)


def trail(conn: Connection, *, lead: int | None = None, contact: int | None = None,
          account: int | None = None, since: datetime | None = None,
          limit: int = 1000) -> list[dict[str, Any]]:
    """Events in the order they were committed, oldest first, named as the API's feed
    names them (``type``, ``created_at``). A contact's trail includes the events of its
    leads; a named lead, contact or account must exist."""
    query = sa.select(*COLUMNS).order_by(_E.c.id)
    for value, model, name in ((lead, Lead, "lead"), (contact, Contact, "contact"),
                               (account, Account, "account")):
        if value is not None and conn.execute(sa.select(table_of(model).c.id).where(
                table_of(model).c.id == value)).first() is None:
            raise NotFound(f"no {name} {value}")
    if lead is not None:
        query = query.where(_E.c.subject_type == "lead", _E.c.subject_id == lead)
    if contact is not None:
        leads = sa.select(table_of(Lead).c.id).where(
            table_of(Lead).c.contact_id == contact)
        query = query.where(sa.or_(
            sa.and_(_E.c.subject_type == "contact", _E.c.subject_id == contact),
            sa.and_(_E.c.subject_type == "lead", _E.c.subject_id.in_(leads))))
    if account is not None:
        query = query.where(_E.c.account_id == account)
    if since is not None:
        query = query.where(_E.c.at >= since)
    rows = []
    for r in conn.execute(query.limit(limit)):
        row = dict(r._mapping)
        row["data"] = row["data"] or {}
        rows.append(row)
    return rows


def like_patterns(types: Iterable[str]) -> list[str]:
    """Event types and patterns (``lead.*``) as SQL LIKE patterns (``*`` any run of
    characters)."""
    out = []
    for pattern in types:
        if pattern := pattern.strip():
            escaped = pattern.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            out.append(escaped.replace("*", "%"))
    return out


def item(event_id: int, action: str, at: datetime, fields: dict[str, Any]) -> dict[str, Any]:
    """One event as the feed and the webhooks send it."""
    return {"id": event_id, "type": action, "created_at": at, "data": fields}


def feed(session: Session, *, after: int = 0, limit: int = 100, types: Iterable[str] = (),
         account: int | None = None) -> list[dict[str, Any]]:
    """Events after the cursor ``after``, in commit order (ids follow it: ``audit``), each
    with the fields of its log line; of one account, or all (None)."""
    query = select(Event).where(col(Event.id) > after)
    if account is not None:
        query = query.where(Event.account_id == account)
    if patterns := like_patterns(types):
        query = query.where(sa.or_(*(col(Event.action).like(p, escape="\\")
                                     for p in patterns)))
    rows = session.exec(query.order_by(col(Event.id)).limit(limit)).all()
    return [item(e.id or 0, e.action, e.at, e.fields()) for e in rows]
