"""What the review page shows a contact admin: per account they review, the leads flagged
automatically and the suspected contacts waiting for their deadline."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session, col, select

from feedback_mta.store.models import Account, Contact, ContactStatus, Lead, LeadStatus

#: At most this many of each per account on the page (the newest first).
PAGE = 200


@dataclass(frozen=True)
class FlaggedLead:
    id: int
    name: str
    email: str
    comments: str
    score: float
    reasons: tuple[str, ...]
    flagged_at: datetime | None


@dataclass(frozen=True)
class SuspectedContact:
    id: int
    name: str
    email: str
    reasons: tuple[str, ...]
    deadline: datetime | None


@dataclass(frozen=True)
class AccountReview:
    id: int
    name: str
    leads: tuple[FlaggedLead, ...]
    contacts: tuple[SuspectedContact, ...]


def _name(contact: Contact) -> str:
    return f"{contact.first_name} {contact.last_name}".strip()


def to_review(session: Session, account_ids: list[int]) -> list[AccountReview]:
    out = []
    for account in session.exec(select(Account).where(col(Account.id).in_(account_ids))
                                .order_by(col(Account.id))):
        assert account.id is not None
        leads = session.exec(
            select(Lead, Contact).join(Contact, col(Contact.id) == col(Lead.contact_id))
            .where(Lead.account_id == account.id, Lead.status == LeadStatus.SPAM.value,
                   Lead.flagged_via == "auto")
            .order_by(col(Lead.id).desc()).limit(PAGE)).all()
        contacts = session.exec(
            select(Contact).where(Contact.account_id == account.id,
                                  col(Contact.review_deadline).is_not(None),
                                  Contact.status == ContactStatus.ACTIVE.value)
            .order_by(col(Contact.review_deadline)).limit(PAGE)).all()
        out.append(AccountReview(
            account.id, account.name,
            tuple(FlaggedLead(lead.id or 0, _name(c), c.email, lead.comments,
                              lead.spam_score or 0.0, tuple(lead.spam_reasons or ()),
                              lead.flagged_at) for lead, c in leads),
            tuple(SuspectedContact(c.id or 0, _name(c), c.email, tuple(c.quality_reasons or ()),
                                   c.review_deadline) for c in contacts)))
    return out
