"""Leads: one activity of a contact. Flagged spam and restored one at a time, exported once."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from feedback_mta import events
from feedback_mta.actions.accounts import check_text, normalize_ip
from feedback_mta.actions.audit import SYSTEM, Change, NotFound, Recorded, Recorder, hold
from feedback_mta.actions.behaviour import network_of
from feedback_mta.actions.contacts import Contacts
from feedback_mta.actions.learning import Learning
from feedback_mta.addresses import AddressBook, notification_message_id
from feedback_mta.quality import spam
from feedback_mta.store import db, tables
from feedback_mta.store.models import Contact, Lead, LeadStatus, table_of, utcnow

_L = table_of(Lead)
_C = table_of(Contact)
_EMAIL = sa.select(_C.c.email).where(_C.c.id == sa.bindparam("b_id"))
_LEAD = select(Lead).where(Lead.id == sa.bindparam("b_id"))  # as ``contacts._CONTACT``
_LEAD_KEY = sa.inspect(Lead).identity_key_from_primary_key
#: A batch's leads (``preload_leads``), locked in id order as ``contacts._LOCKED`` is.
_LOCKED = (select(Lead).where(db.one_of(_L.c.id, "b_ids"))
           .order_by(_L.c.id).with_for_update(key_share=True))
_FLAG = Change(sa.update(_L).where(
    _L.c.id == sa.bindparam("b_id"), _L.c.status != LeadStatus.SPAM.value).values(
    status=LeadStatus.SPAM.value, flagged_at=sa.bindparam("b_flagged_at"),
    flagged_by=sa.bindparam("b_flagged_by"), flagged_via=sa.bindparam("b_flagged_via")),
    lambda lead: lead.status != LeadStatus.SPAM)
# A registration's lead (``Leads.insert``, ``Leads.scored``), in Core, run on the driver's
# cursor (``db.Prepared``).
_T = tables.lead
_INSERT = db.Prepared(sa.insert(_T).returning(_T.c.id), by_keys=True)
_SCORED_ANY = sa.update(_T).where(_T.c.id == sa.bindparam("b_id")).values(
    notification_message_id=sa.bindparam("b_message_id"),
    spam_score=sa.bindparam("b_score"), spam_reasons=sa.bindparam("b_reasons"))
_SCORED = db.Prepared(_SCORED_ANY)
_SCORED_SPAM = db.Prepared(_SCORED_ANY.values(
    status=LeadStatus.SPAM.value, flagged_at=sa.bindparam("b_flagged_at"),
    flagged_by=SYSTEM.name, flagged_via=SYSTEM.via))


@dataclass(slots=True)
class NewLead:
    """A lead as a registration makes it (``Leads.insert``): plain data with the fields of a
    ``Lead`` that its answer shows (``lead_dict``) and its score reads, no ORM object."""

    id: int
    account_id: int
    contact_id: int
    source_ip: str | None
    source_net: str | None
    comments: str
    created_at: datetime
    notification_message_id: str
    status: str = LeadStatus.ACTIVE.value
    spam_score: float | None = None
    spam_reasons: list[str] | None = None
    flagged_at: datetime | None = None
    flagged_by: str | None = None
    flagged_via: str | None = None
    exported_at: datetime | None = None


def preload_leads(session: Session, ids: Iterable[int]) -> list[Lead]:
    """Read these leads into the write transaction of ``session`` in one query, locked
    until it ends (``audit.hold``), as ``contacts.preload_contacts`` reads a batch's
    contacts: ``Leads.get`` finds them there, and a flag is decided without a statement
    and written with the batch's others at the commit. The ones found."""
    wanted = sorted(set(ids))
    if not wanted:
        return []
    found = list(session.exec(_LOCKED, params={"b_ids": wanted}).all())
    hold(session, found)
    return found


class Leads:
    """Leads, one activity of a contact each. A person's flag or restore teaches the spam
    model (``learning``), in the transaction of the change."""

    __slots__ = ("contacts", "learning", "recorder", "session")

    def __init__(self, recorder: Recorder, contacts: Contacts, learning: Learning) -> None:
        self.recorder, self.session = recorder, recorder.session
        self.contacts, self.learning = contacts, learning

    def get(self, lead_id: int) -> Lead:
        lead = self.session.identity_map.get(_LEAD_KEY((lead_id,)))
        if lead is None:
            lead = self.session.exec(_LEAD, params={"b_id": lead_id}).first()
        if lead is None:
            raise NotFound(f"no lead {lead_id}")
        return lead

    def by_notification(self, message_ids: Iterable[str]) -> Lead | None:
        """The lead whose notification has one of these Message-IDs (first match wins)."""
        ids = [m for m in message_ids if m]  # parse already took off the angle brackets
        if not ids:
            return None
        found = {lead.notification_message_id: lead for lead in self.session.exec(
            select(Lead).where(Lead.notification_message_id.in_(ids)))}  # type: ignore[union-attr]
        return next((found[m] for m in ids if m in found), None)

    def add(self, book: AddressBook, account_id: int, email: str, first: str = "",
                 last: str = "", ip: str | None = None, comments: str = "") -> Lead:
        ip = normalize_ip(ip)
        check_text("comments", comments, lines=True)
        contact, _ = self.contacts.add(account_id, email, first, last, ip)
        return self.add_for(book, contact, ip, comments)

    def add_for(self, book: AddressBook, contact: Contact, ip: str | None = None,
                comments: str = "") -> Lead:
        """A new lead of ``contact`` (``add``, once its contact is found or made: the
        registration needs to know which of the two, and reads it once)."""
        ip = normalize_ip(ip)
        check_text("comments", comments, lines=True)
        account_id = contact.account_id
        assert contact.id is not None
        lead = Lead(account_id=account_id, contact_id=contact.id, source_ip=ip,
                    source_net=network_of(ip), comments=comments)
        self.session.add(lead)
        self.session.flush()
        assert lead.id is not None
        lead.notification_message_id = notification_message_id(book, lead.id)
        self.session.add(lead)
        self.recorder.record(events.LEAD_CREATED, "lead", lead.id, account_id,
                             contact_id=contact.id)
        return lead

    def insert(self, book: AddressBook, account_id: int, contact_id: int, ip: str | None,
               comments: str) -> NewLead:
        """A new lead of the contact (``add_for`` as one prepared INSERT, for a
        registration: ``ip`` normalized already); its notification's Message-ID is written
        with its score (``scored``)."""
        check_text("comments", comments, lines=True)
        now, net = utcnow(), network_of(ip)
        lead_id: int = _INSERT.scalar(self.session.connection(), {
            "account_id": account_id, "contact_id": contact_id, "source_ip": ip,
            "source_net": net, "comments": comments, "status": LeadStatus.ACTIVE.value,
            "created_at": now})
        lead = NewLead(lead_id, account_id, contact_id, ip, net, comments, now,
                       notification_message_id(book, lead_id))
        self.recorder.record(events.LEAD_CREATED, "lead", lead_id, account_id,
                             contact_id=contact_id)
        return lead

    def scored(self, lead: NewLead, score: float, reasons: Sequence[str], flag: bool,
               features: Sequence[str]) -> None:
        """Write a new lead's Message-ID and score (one UPDATE) and, with ``flag``, flag it
        as the system as ``flag_spam`` does (the same columns and event): a lead that
        ``insert`` just made is neither spam nor exported yet. ``features``: what the
        model counts of it (``spam.features``), found as it was scored."""
        lead.spam_score, lead.spam_reasons = score, list(reasons)
        params = {"b_id": lead.id, "b_message_id": lead.notification_message_id,
                  "b_score": score, "b_reasons": lead.spam_reasons}
        if not flag:
            _SCORED.run(self.session.connection(), params)
            return
        lead.status, lead.flagged_at = LeadStatus.SPAM.value, utcnow()
        lead.flagged_by, lead.flagged_via = SYSTEM.name, SYSTEM.via
        _SCORED_SPAM.run(self.session.connection(), {**params,
                                                     "b_flagged_at": lead.flagged_at})
        with self.recorder.acting_as(SYSTEM):
            self._flagged(lead, list(features), score=score, reasons=list(reasons))

    def flag_spam(self, lead: Lead, **why: Any) -> bool:
        """Mark this lead (only this activity) spam: it leaves the inbox, search, reports and,
        if not exported yet, the CRM export. False (and no event) when it already was.
        ``why`` goes into the event (the score and reasons of an automatic flag)."""
        actor = self.recorder.actor  # who acts now (``acting_as``)
        if not self.recorder.change(lead, _FLAG, status=LeadStatus.SPAM, flagged_at=utcnow(),
                                    flagged_by=actor.name, flagged_via=actor.via):
            return False
        self._flagged(lead, self._features(lead), **why)
        return True

    def _flagged(self, lead: Lead | NewLead, features: list[str], **why: Any) -> None:
        """What a flag records, once the lead is spam: its event, and what the model
        counts (a person's flag is a label; the system's counts as spam until a person
        restores it)."""
        self.recorder.record(events.LEAD_FLAGGED_SPAM, "lead", lead.id, lead.account_id,
                             contact_id=lead.contact_id,
                             exported=lead.exported_at is not None, **why)
        if self.recorder.actor.via != "auto":
            self.learning.learn(lead.account_id, features, spam_=1)
        else:
            self.learning.learn(lead.account_id, features, auto=1)

    def restore(self, lead: Lead) -> bool:
        """Undo ``flag_spam``; False (and no event) when the lead is not spam."""
        self.recorder.lock(lead)
        if lead.status != LeadStatus.SPAM:
            return False
        flagged_by_person = lead.flagged_via not in (None, "auto")
        lead.status = LeadStatus.ACTIVE
        lead.flagged_at = lead.flagged_by = lead.flagged_via = None
        self.session.add(lead)
        self.recorder.record(events.LEAD_RESTORED, "lead", lead.id, lead.account_id,
                             contact_id=lead.contact_id)
        if self.recorder.actor.via != "auto":  # a person's restore: a label the other way
            self.learning.learn(lead.account_id, self._features(lead), ham=1,
                                **({"spam_": -1} if flagged_by_person else {"auto": -1}))
            if not flagged_by_person:  # the system's flag was wrong: the threshold hears it
                self.learning.restored_from_system(lead.account_id)
        return True

    def _features(self, lead: Lead) -> list[str]:
        """What the model counts of the lead, as when it was scored."""
        email = self.session.connection().execute(_EMAIL, {"b_id": lead.contact_id}).scalar()
        if email is None:
            raise NotFound(f"no contact {lead.contact_id}")
        return spam.features(lead.comments, email, lead.spam_reasons or ())

    def claim_digest(self, lead_ids: Iterable[int], now: datetime) -> list[int]:
        """Mark automatically flagged leads as named in a spam digest; only those no other
        run named already (one conditional UPDATE each)."""
        table = table_of(Lead)
        claimed = []
        for lead_id in lead_ids:
            if self.session.connection().execute(sa.update(table).where(
                    table.c.id == lead_id, table.c.digested_at.is_(None),
                    table.c.status == LeadStatus.SPAM.value).values(digested_at=now)).rowcount:
                claimed.append(lead_id)
        return claimed

    def mark_exported(self, lead: Lead) -> bool:
        """Record that the lead went to the CRM; spam leads are never exported."""
        self.recorder.lock(lead)
        if lead.status != LeadStatus.ACTIVE or lead.exported_at is not None:
            return False
        lead.exported_at = utcnow()
        self.session.add(lead)
        self.recorder.record(events.LEAD_EXPORTED, "lead", lead.id, lead.account_id)
        return True

    def refuse(self, reason: str, lead: Lead | None, **data: Any) -> Recorded:
        """Record an asked-for change we did not make, and why (a reply not allowed, ...)."""
        return self.recorder.record(events.REPLY_REFUSED, "lead", lead.id if lead else None,
                                    lead.account_id if lead else None, reason=reason, **data)
