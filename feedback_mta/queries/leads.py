"""Leads as the command line shows them."""

from __future__ import annotations

import dataclasses
from datetime import datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from feedback_mta.addresses import AddressBook
from feedback_mta.quality.verdict import Verdict
from feedback_mta.queries import NotFound, cursors, records, utc
from feedback_mta.queries.accounts import require_account
from feedback_mta.queries.records import lead_dict
from feedback_mta.store.models import Contact, Lead, LeadStatus

if TYPE_CHECKING:
    from feedback_mta.actions.leads import NewLead
    from feedback_mta.quality import spam

__all__ = ["lead_dict"]  # the fields of a lead, with the Core read of one (``records``)


def registered(lead: Lead | NewLead, contact_status: str, verdict: Verdict,
               book: AddressBook) -> dict[str, Any]:
    """A new lead as ``lead add`` and ``POST /v1/leads`` answer: what to send it with, and
    what we know of its contact."""
    return {**lead_dict(lead, book), "contact_status": contact_status,
            "quality": verdict.level.value, "quality_reasons": list(verdict.reasons),
            # Flagged on arrival: the platform must not forward it to the dealer.
            "notify": lead.status == LeadStatus.ACTIVE}


def get(session: Session, lead_id: int) -> Lead:
    lead = session.get(Lead, lead_id)
    if lead is None:
        raise NotFound(f"no lead {lead_id}")
    return lead


def show(session: Session, book: AddressBook, lead_id: int) -> dict[str, Any]:
    return records.lead(session.connection(), book, lead_id)


def page(session: Session, book: AddressBook, *, account: int | None = None,
         status: LeadStatus = LeadStatus.ACTIVE, via: str | None = None,
         contact: int | None = None, since: datetime | None = None,
         after: str | None = None, limit: int = 100
         ) -> tuple[list[dict[str, Any]], str | None]:
    """Leads, newest first, and the cursor of the next page (None: the last): ``lead list``
    and ``GET /v1/leads``. Spam leads only when asked for; ``via``: flagged that way;
    ``since``: created then or later; ``after``: a cursor this handed out (``BadCursor``
    otherwise)."""
    start = cursors.decode("l", after)
    if account is not None:
        require_account(session, account)
    query = select(Lead).where(Lead.status == status.value)
    if via is not None:
        query = query.where(Lead.flagged_via == via)
    if account is not None:
        query = query.where(Lead.account_id == account)
    if contact is not None:
        query = query.where(Lead.contact_id == contact)
    if since is not None:
        query = query.where(col(Lead.created_at) >= utc(since))
    if start is not None:
        query = query.where(col(Lead.id) < start)
    leads, cursor = cursors.cut(
        list(session.exec(query.order_by(col(Lead.id).desc()).limit(limit + 1)).all()),
        limit, "l", lambda lead: lead.id)
    return [lead_dict(lead, book) for lead in leads], cursor


def exportable(session: Session, account: int, limit: int) -> list[tuple[Lead, Contact]]:
    """The account's active leads not exported yet, oldest first, with their contacts."""
    require_account(session, account)
    return list(session.exec(
        select(Lead, Contact).join(Contact, col(Contact.id) == Lead.contact_id)
        .where(Lead.account_id == account, Lead.status == LeadStatus.ACTIVE.value,
               col(Lead.exported_at).is_(None),
               # A contact known to be a bot's (since its lead came) hands the CRM nothing.
               sa.or_(col(Contact.quality).is_(None), col(Contact.quality) != "invalid"))
        .order_by(col(Lead.id)).limit(limit)).all())


def export_row(lead: Lead, contact: Contact, book: AddressBook) -> dict[str, Any]:
    """A lead as ``lead export`` hands it to the CRM: with its contact's address and name."""
    return {**lead_dict(lead, book), "email": contact.email, "first_name": contact.first_name,
            "last_name": contact.last_name}


def _bands(session: Session) -> list[tuple[float, int, float, int]]:
    """(band, leads, sum of scores, spam leads) per score band (``spam.BANDS``), counted
    by the database: one row per band, whatever the number of leads."""
    from feedback_mta.quality import spam
    from feedback_mta.store.models import Lead, LeadStatus

    score = col(Lead.spam_score)
    band = sa.case(*[(score >= low, low) for low in reversed(spam.BANDS)], else_=0.0)
    query = (sa.select(band, sa.func.count(), sa.func.sum(score),
                       sa.func.sum(sa.case((col(Lead.status) == LeadStatus.SPAM.value, 1),
                                           else_=0)))
             .where(score.is_not(None)).group_by(band))
    return [(float(b), int(n), float(total or 0), int(flagged or 0))
            for b, n, total, flagged in session.connection().execute(query)]


def model(session: Session, limit: int = 20, flagging: spam.Flagging | None = None
          ) -> dict[str, Any]:
    """What the lead spam model learned (``leads model``): labels per account, leads seen
    and flagged by the system, the features most like spam (flagged twice or more), and
    the calibration: per score band, the spam rate the scores expect against the one
    observed (the leads flagged now, by people or by the system and not restored); with
    ``flagging`` (``[leads]``), the threshold a new lead meets now, the platform's and each
    account's (``spam.Flagging``: moved by the restores)."""
    from feedback_mta.quality import spam
    from feedback_mta.store.models import SpamFeature

    labels: dict[str, dict[str, Any]] = {}
    totals = spam.Counts()
    counters: dict[int, dict[str, spam.Counts]] = {}
    for row in session.exec(select(SpamFeature).where(
            col(SpamFeature.feature).in_(sorted(spam.COUNTERS)))):
        counts = spam.Counts(row.seen, row.spam, row.ham, row.auto)
        counters.setdefault(row.account_id, {})[row.feature] = counts
        if row.feature != spam.LABELS:
            continue
        if row.account_id == 0:
            totals = counts
        else:
            labels[str(row.account_id)] = {"spam": row.spam, "ham": row.ham}
    found: dict[str, Any] = {}
    if flagging is not None:
        platform = counters.get(0, {})
        found["threshold"] = round(flagging.threshold(platform, {}), 4)
        for account in labels:
            labels[account]["threshold"] = round(
                flagging.threshold(platform, counters[int(account)]), 4)
    rows = session.exec(select(SpamFeature).where(
        SpamFeature.account_id == 0, col(SpamFeature.feature).not_in(sorted(spam.COUNTERS)),
        SpamFeature.spam + SpamFeature.auto >= spam.MIN_FLAGS)).all()
    rated = sorted(((spam.probability(spam.Counts(r.seen, r.spam, r.ham, r.auto), totals), r)
                    for r in rows), key=lambda pair: (-pair[0], pair[1].feature))[:limit]
    return {"leads_seen": totals.seen, **found,
            "calibration": [dataclasses.asdict(b) for b in spam.calibration(_bands(session))],
            "learning": totals.seen >= spam.MIN_LEADS and totals.flagged >= spam.MIN_FLAGS,
            "labels": labels, "flagged_by_system": totals.auto,
            "features": [{"feature": r.feature, "seen": r.seen, "spam": r.spam, "ham": r.ham,
                          "auto": r.auto, "probability": round(p, 4)} for p, r in rated]}
