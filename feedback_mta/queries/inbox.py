"""Stored inbound messages: the list, and one message with everything known about it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from feedback_mta.queries import NotFound
from feedback_mta.store import tables

# The light tables: ``inbox list`` loads neither SQLModel nor pydantic.
_T = tables.inbound_message
_E = tables.event

COLUMNS = ("id", "message_id", "state", "kind", "reason", "received_at", "mail_from",
           "rcpt_tos", "size", "processed_at", "duplicate_of", "error", "peer", "attempts",
           "provider")
#: How much of an HTTP arrival's body ``show`` gives (``raw`` gives it whole).
BODY_SHOWN = 8192
#: How it came: ``smtp``, ``lmtp`` or ``http`` (then ``provider`` says whose).
_SOURCE = _T.c.protocol.label("source")


def _row(mapping: Any) -> dict[str, Any]:
    row = dict(mapping)
    return row


def listing(conn: Connection, *, state: str | None = None, kind: str | None = None,
            message_id: str | None = None, sender: str | None = None,
            rcpt: str | None = None, since: datetime | None = None,
            limit: int = 100) -> list[dict[str, Any]]:
    """Inbound messages, newest first (bodies are never shown here). ``sender`` and
    ``rcpt`` match a part of the envelope sender / a recipient, case-insensitively."""
    query = sa.select(*(_T.c[c] for c in COLUMNS), _SOURCE).order_by(_T.c.id.desc())
    if state is not None:
        query = query.where(_T.c.state == state)
    if kind is not None:
        query = query.where(_T.c.kind == kind)
    if message_id is not None:
        query = query.where(_T.c.message_id == message_id.strip().strip("<>"))
    if sender is not None:
        query = query.where(sa.func.lower(_T.c.mail_from).contains(sender.lower()))
    if rcpt is not None:
        query = query.where(sa.func.lower(_T.c.rcpt_tos).contains(rcpt.lower()))
    if since is not None:
        query = query.where(_T.c.received_at >= since)
    return [_row(r._mapping) for r in conn.execute(query.limit(limit))]


def find(conn: Connection, *, id: int | None = None, message_id: str | None = None) -> int:
    """The id of a stored message named by id or by Message-ID (the newest copy)."""
    if id is not None:
        found = conn.execute(sa.select(_T.c.id).where(_T.c.id == id)).scalar()
        if found is None:
            raise NotFound(f"no inbound message {id}")
        return int(found)
    mid = (message_id or "").strip().strip("<>")
    found = conn.execute(sa.select(sa.func.max(_T.c.id)).where(_T.c.message_id == mid)).scalar()
    if found is None:
        raise NotFound(f"no inbound message with Message-ID <{mid}>")
    return int(found)


def show(conn: Connection, message_id: int) -> dict[str, Any]:
    """One stored message: envelope, headers, verdict, what became of it, the events it
    caused (and the copies of it that arrived later)."""
    row = conn.execute(sa.select(_T).where(_T.c.id == message_id)).first()
    if row is None:
        raise NotFound(f"no inbound message {message_id}")
    data = dict(row._mapping)
    raw: bytes = data.pop("raw") or b""
    from feedback_mta.edge.intake import split_headers  # the intake's own cut, once

    header_block = split_headers(raw)[0]
    caused = [dict(e._mapping) for e in conn.execute(
        sa.select(_E.c.id, _E.c.action.label("type"), _E.c.at.label("created_at"),
                  _E.c.subject_type, _E.c.subject_id, _E.c.account_id, _E.c.actor, _E.c.reason)
        .where(_E.c.inbound_message_id == message_id).order_by(_E.c.id))]
    copies = list(conn.execute(sa.select(_T.c.id).where(_T.c.duplicate_of == message_id)
                               .order_by(_T.c.id)).scalars())
    out = {k: v for k, v in data.items() if k in COLUMNS or k in ("purged_at", "tls",
                                                                 "protocol", "helo")}
    out["source"] = out.get("protocol")
    # An HTTP arrival's raw is the request's body (an ESP's event, a one-click form), with
    # no header block: that body is what there is to show (``inbox show --raw``, whole).
    http = bool(data.get("provider"))
    out["headers"] = header_block.decode("utf-8", "replace") if raw and not http else None
    out["body"] = raw[:BODY_SHOWN].decode("utf-8", "replace") if raw and http else None
    out["raw_size"] = len(raw)
    out["events"] = caused
    out["copies"] = copies
    return out


def raw(conn: Connection, message_id: int) -> bytes:
    data = conn.execute(sa.select(_T.c.raw).where(_T.c.id == message_id)).first()
    if data is None:
        raise NotFound(f"no inbound message {message_id}")
    return bytes(data.raw or b"")
