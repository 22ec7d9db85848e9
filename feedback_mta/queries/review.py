"""What the review page shows a contact admin: per account they review, every lead flagged
as spam (whoever flagged it, and why), the leads restored lately (each can be flagged
again), and the suspected contacts waiting for their deadline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlmodel import Session, col, select

from feedback_mta import events
from feedback_mta.store.models import (
    Account,
    Contact,
    Event,
    Lead,
    LeadStatus,
    utcnow,
)
from feedback_mta.store.states import UNDECIDED

#: At most this many spam leads per account on one page (the newest first; older ones on
#: the next page), and at most this many suspected contacts and restored leads.
PAGE = 50
CONTACTS = 200
#: Leads restored within this long are listed, to be flagged again if that was a mistake.
RESTORED_WITHIN = timedelta(days=7)

#: Who flagged a lead, as the page's filter names it: the ``flagged_via`` values of each,
#: and how the page says it.
FLAGGERS: dict[str, tuple[tuple[str, ...], str]] = {
    "system": (("auto",), "the system"),
    "reply": (("email",), "a dealer, by reply"),
    "api": (("api",), "the API"),
    "page": (("web",), "the review page"),
    "cli": (("cli",), "the command line"),
}


def flagger(via: str | None) -> str:
    """The filter's name for a lead's ``flagged_via`` (``other`` for a way not listed)."""
    return next((name for name, (vias, _) in FLAGGERS.items() if via in vias), "other")


@dataclass(frozen=True)
class FlaggedLead:
    id: int
    name: str
    email: str
    comments: str
    score: float
    #: What the spam check saw when the lead came (for every lead, whoever flagged it).
    reasons: tuple[str, ...]
    flagged_at: datetime | None
    #: ``system``, ``reply``, ``api``, ``page``, ``cli`` or ``other`` (``FLAGGERS``).
    by: str
    #: Who exactly: ``system``, ``email:<address>``, ``web:<address>``, ``api:<key>``, ...
    flagged_by: str | None
    #: The reason recorded with the flag, if one was.
    reason: str | None

    @property
    def by_label(self) -> str:
        return FLAGGERS[self.by][1] if self.by in FLAGGERS else "another way"

    @property
    def by_whom(self) -> str:
        """The address or key behind a person's flag (``boss@dealer.test``), or ''."""
        name = self.flagged_by or ""
        return name.partition(":")[2] if self.by != "system" else ""


@dataclass(frozen=True)
class RestoredLead:
    id: int
    name: str
    email: str
    comments: str
    restored_at: datetime
    restored_by: str


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
    restored: tuple[RestoredLead, ...] = ()
    #: The id to page on from (``before``) when there are older spam leads, else None.
    older: int | None = None


def _name(contact: Contact) -> str:
    return f"{contact.first_name} {contact.last_name}".strip()


def _flag_reasons(session: Session, lead_ids: list[int]) -> dict[int, str]:
    """The reason recorded with each lead's latest flag, where one was."""
    if not lead_ids:
        return {}
    found: dict[int, str] = {}
    for subject_id, reason in session.exec(
            select(Event.subject_id, Event.reason)
            .where(Event.subject_type == "lead", col(Event.subject_id).in_(lead_ids),
                   Event.action == events.LEAD_FLAGGED_SPAM, col(Event.reason).is_not(None))
            .order_by(col(Event.id))):
        if subject_id is not None and reason:
            found[subject_id] = reason  # the latest wins
    return found


def _spam_leads(session: Session, account_id: int, by: str, before: int | None
                ) -> tuple[list[FlaggedLead], int | None]:
    query = (select(Lead, Contact).join(Contact, col(Contact.id) == col(Lead.contact_id))
             .where(Lead.account_id == account_id, Lead.status == LeadStatus.SPAM.value))
    if by in FLAGGERS:
        query = query.where(col(Lead.flagged_via).in_(FLAGGERS[by][0]))
    if before is not None:
        query = query.where(col(Lead.id) < before)
    rows = session.exec(query.order_by(col(Lead.id).desc()).limit(PAGE + 1)).all()
    shown = rows[:PAGE]
    reasons = _flag_reasons(session, [lead.id for lead, _ in shown if lead.id is not None])
    leads = [FlaggedLead(lead.id or 0, _name(c), c.email, lead.comments,
                         lead.spam_score or 0.0, tuple(lead.spam_reasons or ()),
                         lead.flagged_at, flagger(lead.flagged_via), lead.flagged_by,
                         reasons.get(lead.id or 0)) for lead, c in shown]
    return leads, (leads[-1].id if len(rows) > PAGE else None)


def _restored(session: Session, account_id: int, since: datetime) -> list[RestoredLead]:
    """Leads restored since then and not flagged again: the newest restore of each."""
    rows = session.exec(
        select(Event, Lead, Contact)
        .join(Lead, col(Lead.id) == col(Event.subject_id))
        .join(Contact, col(Contact.id) == col(Lead.contact_id))
        .where(Event.account_id == account_id, Event.at >= since,
               Event.action == events.LEAD_RESTORED, Event.subject_type == "lead",
               Lead.account_id == account_id, Lead.status == LeadStatus.ACTIVE.value)
        .order_by(col(Event.id).desc()).limit(CONTACTS)).all()
    seen: dict[int, RestoredLead] = {}
    for event, lead, c in rows:
        if lead.id is not None and lead.id not in seen:
            seen[lead.id] = RestoredLead(lead.id, _name(c), c.email, lead.comments, event.at,
                                         event.actor)
    return list(seen.values())


def _suspected(session: Session, account_id: int) -> list[SuspectedContact]:
    contacts = session.exec(
        select(Contact).where(Contact.account_id == account_id,
                              col(Contact.review_deadline).is_not(None),
                              col(Contact.status).in_(UNDECIDED))
        .order_by(col(Contact.review_deadline)).limit(CONTACTS)).all()
    return [SuspectedContact(c.id or 0, _name(c), c.email, tuple(c.quality_reasons or ()),
                             c.review_deadline) for c in contacts]


def to_review(session: Session, account_ids: Iterable[int], *, by: str = "",
              before: tuple[int, int] | None = None, now: datetime | None = None
              ) -> list[AccountReview]:
    """Per account: its spam leads (only those ``by`` flagged, when it names a
    ``FLAGGERS`` entry; when paging, ``before`` is (account, id): that account's ids below
    it, the others' from their newest), the leads restored within ``RESTORED_WITHIN``, and
    its suspected contacts."""
    since = (now or utcnow()) - RESTORED_WITHIN
    out = []
    for account in session.exec(select(Account).where(col(Account.id).in_(list(account_ids)))
                                .order_by(col(Account.id))):
        assert account.id is not None
        leads, older = _spam_leads(session, account.id, by,
                                   before[1] if before and before[0] == account.id else None)
        out.append(AccountReview(account.id, account.name, tuple(leads),
                                 tuple(_suspected(session, account.id)),
                                 tuple(_restored(session, account.id, since)), older))
    return out
