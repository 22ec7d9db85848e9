"""``stats``: inbox counts, kinds, bounces by reason, and per account the complaint rate over
a window.

The rate is complaints per message sent (``account sent``) when sends are known, else per
contact; providers act on rates above about 0.1% (0.3% is Gmail's limit).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from feedback_mta import events
from feedback_mta.queries.accounts import require_account
from feedback_mta.store.models import (
    Account,
    Contact,
    ContactStatus,
    Event,
    InboundMessage,
    MessageState,
    SentCount,
)


def stats(session: Session, *, account: int | None = None, days: int = 30,
          now: datetime | None = None) -> dict[str, Any]:
    if account is not None:
        require_account(session, account)
    since = (now or datetime.now(UTC)) - timedelta(days=days)
    inbox = dict(session.exec(select(InboundMessage.state, sa.func.count())
                              .group_by(col(InboundMessage.state))).all())
    kinds = dict(session.exec(select(InboundMessage.kind, sa.func.count())
                              .where(InboundMessage.received_at >= since)
                              .group_by(col(InboundMessage.kind))).all())
    unattributed = session.exec(select(sa.func.count()).select_from(InboundMessage)
                                .where(InboundMessage.reason == "unattributed",
                                       InboundMessage.received_at >= since)).one()
    accounts = select(Account.id, Account.name).order_by(col(Account.id))
    if account is not None:
        accounts = accounts.where(Account.id == account)
    rows = [(int(r[0] or 0), str(r[1])) for r in session.exec(accounts).all()]
    ids = [account_id for account_id, _ in rows]
    contacts = {r[0]: r[1:] for r in session.exec(
        select(Contact.account_id, sa.func.count(),
               sa.func.sum(sa.case((col(Contact.status) == ContactStatus.OPTED_OUT.value, 1),
                                   else_=0)),
               sa.func.count(col(Contact.undeliverable_at)))
        .where(col(Contact.account_id).in_(ids)).group_by(col(Contact.account_id))).all()}
    complaints = dict(session.exec(
        select(Event.account_id, sa.func.count())
        .where(Event.action == events.CONTACT_COMPLAINED, Event.at >= since,
               col(Event.account_id).in_(ids)).group_by(col(Event.account_id))).all())
    sent = dict(session.exec(
        select(SentCount.account_id, sa.func.sum(SentCount.count))
        .where(SentCount.day >= since.date().isoformat(),
               col(SentCount.account_id).in_(ids)).group_by(col(SentCount.account_id))).all())
    by_reason = {str(r): int(n) for r, n in session.exec(
        select(Event.reason, sa.func.count())
        .where(col(Event.action).in_((events.CONTACT_HARD_BOUNCED, events.CONTACT_SOFT_BOUNCED)),
               Event.at >= since, col(Event.account_id).in_(ids))
        .group_by(col(Event.reason)).order_by(sa.func.count().desc(), col(Event.reason))
    ).all()}
    per_account = []
    for account_id, name in rows:
        total, opted_out, undeliverable = contacts.get(account_id, (0, 0, 0))
        n_sent = int(sent.get(account_id) or 0)
        n_complaints = complaints.get(account_id, 0)
        basis, base = ("sent", n_sent) if n_sent else ("contacts", total)
        per_account.append({
            "id": account_id, "name": name, "contacts": total,
            "opted_out": int(opted_out or 0), "undeliverable": undeliverable,
            "complaints": n_complaints, "sent": n_sent if n_sent else None,
            "complaint_rate": round(n_complaints / base, 6) if base else 0.0,
            "rate_basis": basis})
    return {"window_days": days, "since": since,
            "inbox": {state.value: inbox.get(state.value, 0) for state in MessageState},
            "kinds": {k: v for k, v in sorted(kinds.items(), key=lambda kv: str(kv[0]))
                      if k is not None},
            "unattributed": unattributed, "bounce_reasons": by_reason,
            "accounts": per_account}

