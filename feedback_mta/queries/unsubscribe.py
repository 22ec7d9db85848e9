"""What the unsubscribe page (``/u/TOKEN``) shows a person: whose mail, to which address
(partly masked), and whether a resubscribe would lift their unsubscribe now; and whether a
click of theirs is stored and not yet processed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Session

from feedback_mta.actions.contacts import (
    RESUBSCRIBE_WINDOW,
    Resubscribe,
    opt_out_facts,
    resubscribe_verdict,
)
from feedback_mta.store.models import (
    Account,
    Contact,
    InboundMessage,
    MessageState,
    table_of,
    utcnow,
)

_T = table_of(InboundMessage)


@dataclass(frozen=True, slots=True)
class Subscription:
    contact_id: int
    #: The account's name: who sends the mail.
    sender: str
    #: The address, partly masked (``mask``).
    address: str
    #: What a resubscribe would do now.
    resubscribe: Resubscribe
    #: Until when a resubscribe lifts the link's unsubscribe (None: it would not).
    resubscribe_until: datetime | None
    #: Resubscriptions through the link so far (part of a click's identity).
    resubscriptions: int


def mask(email: str) -> str:
    """``jane@example.com`` -> ``j***@example.com``: enough for its owner to recognise,
    too little for someone handed the link to learn the address."""
    local, at, domain = email.rpartition("@")
    if not at:
        return "***"
    return f"{local[:1]}***@{domain}"


def subscription(session: Session, contact_id: int, link_via: str,
                 now: datetime | None = None) -> Subscription | None:
    """The contact's subscription as its page shows it; None when there is no such
    contact (deleted, or a genuine token of an id never used)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    account = session.get(Account, contact.account_id)
    facts = opt_out_facts(session, contact, link_via)
    verdict = resubscribe_verdict(facts, now or utcnow())
    until = (facts.link_opted_out_at + RESUBSCRIBE_WINDOW
             if verdict is Resubscribe.ALLOWED and facts.link_opted_out_at else None)
    return Subscription(contact_id, account.name if account else "", mask(contact.email),
                        verdict, until, facts.resubscriptions)


def clicks_pending(session: Session, content_hashes: Sequence[str]) -> bool:
    """Is one of these clicks stored and not processed yet (``received``)?"""
    return session.execute(sa.select(_T.c.id).where(
        _T.c.content_hash.in_(list(content_hashes)),
        _T.c.state == MessageState.RECEIVED.value).limit(1)).first() is not None
