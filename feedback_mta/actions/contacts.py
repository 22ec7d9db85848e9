"""Contacts: created, opted out and in, tagged, made (un)mailable, deleted."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, select

from feedback_mta import events
from feedback_mta.actions.accounts import Accounts, check_text, normalize_email, normalize_ip
from feedback_mta.actions.audit import (
    Change,
    Conflict,
    Invalid,
    NotFound,
    Recorder,
    hold,
    remember_by_address,
    remembered,
)
from feedback_mta.quality.verdict import EXPIRED_REASON, INVALID_REASON, Level
from feedback_mta.store import db, tables
from feedback_mta.store.models import (
    Contact,
    ContactStatus,
    Event,
    Lead,
    Tag,
    table_of,
    utcnow,
)
from feedback_mta.store.states import DECLINED, UNCONFIRMED
from feedback_mta.store.tables import BOUNCED

_C = table_of(Contact)
#: Built once: a third cheaper than ``Session.get``, which builds its query on each call
#: (the processor reads a contact for nearly every message).
_CONTACT = select(Contact).where(Contact.id == sa.bindparam("b_id"))
# The handlers' changes, as single conditional statements (``Recorder.change``).
_OPT_OUT = Change(sa.update(_C).where(
    _C.c.id == sa.bindparam("b_id"), _C.c.status != ContactStatus.OPTED_OUT.value).values(
    status=ContactStatus.OPTED_OUT.value, opt_out_reason=sa.bindparam("b_opt_out_reason"),
    opted_out_at=sa.bindparam("b_opted_out_at"), updated_at=sa.bindparam("b_updated_at")),
    lambda contact: contact.status != ContactStatus.OPTED_OUT)
_UNDELIVERABLE = Change(sa.update(_C).where(
    _C.c.id == sa.bindparam("b_id"), _C.c.undeliverable_at.is_(None)).values(
    undeliverable_at=sa.bindparam("b_undeliverable_at"),
    undeliverable_reason=sa.bindparam("b_undeliverable_reason"),
    updated_at=sa.bindparam("b_updated_at")),
    lambda contact: contact.undeliverable_at is None)


#: The reason of the opt-in a person makes on the unsubscribe page, undoing their click.
RESUBSCRIBED = "resubscribed"
#: How long after a click on the unsubscribe link the page still undoes it.
RESUBSCRIBE_WINDOW = timedelta(hours=24)
#: What no resubscribe lifts (seed 000: never mailed again), when recorded after the click.
_STICKY = (events.CONTACT_COMPLAINED, events.CONTACT_HARD_BOUNCED, events.CONTACT_INVALID)
_E = table_of(Event)


class Resubscribe(StrEnum):
    """What a resubscribe through the unsubscribe link does (or did)."""

    #: Allowed now (the page offers it); ``Contacts.resubscribe`` answers DONE once made.
    ALLOWED = "allowed"
    DONE = "done"
    #: Not opted out: nothing to undo.
    NOT_UNSUBSCRIBED = "not_unsubscribed"
    #: The link's unsubscribe is older than ``RESUBSCRIBE_WINDOW``.
    EXPIRED = "expired"
    #: Opted out otherwise (a complaint, a bounce, known bad, an admin, a mailed request).
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class OptOutFacts:
    """What decides whether a resubscribe may lift a contact's opt-out."""

    status: str
    opt_out_reason: str | None
    #: Known bad (``quality`` invalid) or its address bounced: never lifted from the page.
    barred: bool
    #: When the contact's latest opt-out was made through its one-click link; None when
    #: it was made otherwise (or never).
    link_opted_out_at: datetime | None
    #: A complaint, hard bounce or known-bad verdict recorded since that opt-out.
    sticky_since: bool
    #: Resubscriptions through the link so far (part of a click's identity).
    resubscriptions: int


def opt_out_facts(session: Session, contact: Contact, link_via: str) -> OptOutFacts:
    """Read from the contact and its audit trail (``ix_event_subject``); ``link_via`` is
    the ``via`` of an opt-out made through the link (``one-click``: the caller's word, so
    that the actions need not load the HTTP readers)."""
    mine = (_E.c.subject_type == "contact", _E.c.subject_id == contact.id)
    last = session.execute(sa.select(_E.c.id, _E.c.via, _E.c.at).where(
        *mine, _E.c.action == events.CONTACT_OPTED_OUT).order_by(_E.c.id.desc()).limit(1)).first()
    sticky = last is not None and session.execute(sa.select(_E.c.id).where(
        *mine, _E.c.action.in_(_STICKY), _E.c.id > last.id).limit(1)).first() is not None
    resubscriptions = session.execute(sa.select(sa.func.count()).where(
        *mine, _E.c.action == events.CONTACT_OPTED_IN, _E.c.reason == RESUBSCRIBED)).scalar()
    return OptOutFacts(
        status=str(contact.status), opt_out_reason=contact.opt_out_reason,
        barred=contact.quality == Level.INVALID or contact.undeliverable_at is not None,
        link_opted_out_at=db.aware(last.at) if last is not None and last.via == link_via else None,
        sticky_since=sticky, resubscriptions=int(resubscriptions or 0))


def resubscribe_verdict(facts: OptOutFacts, now: datetime,
                        window: timedelta = RESUBSCRIBE_WINDOW) -> Resubscribe:
    """Only an unsubscribe made through the link, within ``window``, is lifted: never a
    complaint, a bounce or a known-bad verdict (seed 000), nor anyone else's opt-out."""
    if facts.status != ContactStatus.OPTED_OUT:
        return Resubscribe.NOT_UNSUBSCRIBED
    if (facts.opt_out_reason != "unsubscribe" or facts.link_opted_out_at is None
            or facts.sticky_since or facts.barred):
        return Resubscribe.REFUSED
    if facts.link_opted_out_at < now - window:
        return Resubscribe.EXPIRED
    return Resubscribe.ALLOWED


#: The longest opt-out reason a person or a program may give.
MAX_REASON = 200
#: Opt-outs that no opt-in lifts, and why: a complaint or a known-bad contact is never
#: mailed again; a suspected one that nobody verified in time takes a contact admin's
#: ``contact verify``, not an opt-in.
KEPT = {
    "complaint": "the person reported mail as spam: it is never mailed again",
    INVALID_REASON: "a known-bad contact (its name is not a person's): it is never mailed "
                    "again",
    EXPIRED_REASON: "a suspected bot's contact nobody verified in time: a contact admin "
                    "verifies it (contact verify) instead",
}


#: Reasons the system gives its own opt-outs, which a person's or a program's opt-out may
#: not take: a suppression "because complaint" that nobody complained for would be kept
#: for ever, and one "because unsubscribe" lifted by a click that never happened.
SYSTEM_REASONS = frozenset({"complaint", "unsubscribe", INVALID_REASON, EXPIRED_REASON,
                            DECLINED, UNCONFIRMED, BOUNCED, ContactStatus.OPTED_OUT.value,
                            ContactStatus.PENDING.value})


def known_bad(contact: Contact) -> bool:
    """Found bad (its name is not a person's) and not verified since by an admin as a real
    person (``contact verify``, which clears the verdict): whatever the reason of its
    opt-out now, no opt-in lifts it (seed 000: contacts found bad are not opted in again).
    An ``invalid_contact`` opt-out counts as the verdict unless the contact was verified."""
    return contact.quality == Level.INVALID or (
        contact.opt_out_reason == INVALID_REASON and contact.verified_at is None)


def why_kept(contact: Contact, complained: bool = False) -> str | None:
    """Why the contact's suppression is not lifted by an opt-in (None: it may be, or there
    is none): the person ever complained (``complained``: the audit trail says so, whatever
    later opt-out reason the contact carries), the address bounced, the contact is known
    bad (``known_bad``), the opt-out is one of ``KEPT``, or the contact awaits the person's
    own confirmation."""
    if complained:
        return KEPT["complaint"]
    if contact.undeliverable_at is not None:
        return (f"the address bounced ({contact.undeliverable_reason or 'hard'}): mail to "
                "it is not delivered")
    if contact.status == ContactStatus.OPTED_OUT:
        if known_bad(contact):
            return (f"{KEPT[INVALID_REASON]}, unless a contact admin verifies it as a real "
                    "person first (contact verify)")
        if contact.opt_out_reason == INVALID_REASON:
            return None  # verified as a real person since
        return KEPT.get(contact.opt_out_reason or "")
    if contact.status != ContactStatus.ACTIVE:
        return f"the contact is {contact.status}: only the person's confirmation changes that"
    return None


# A registration's contact (``Contacts.same_address``, ``Contacts.insert``), in Core, run
# on the driver's cursor (``db.Prepared``).
_SAME_ADDRESS = db.Prepared(sa.select(
    tables.contact.c.id, tables.contact.c.account_id, tables.contact.c.first_name,
    tables.contact.c.last_name).where(tables.contact.c.email == sa.bindparam("b_email")))
_INSERT = db.Prepared(sa.insert(tables.contact).returning(tables.contact.c.id), by_keys=True)
_ROW = tables.CONTACT.where(tables.contact.c.id == sa.bindparam("b_id"))

# Locked, in id order (two batches' locks then never wait for each other in a cycle), as
# the UPDATEs would lock them (``FOR NO KEY UPDATE``): ``FOR UPDATE`` would also make a new
# lead or tag of the contact (its foreign key checked ``FOR KEY SHARE``) wait for the batch.
_BY_PAIR = sa.tuple_(_C.c.account_id, _C.c.email).in_(sa.bindparam("b_pairs", expanding=True))
_TESTS = (db.one_of(_C.c.id, "b_ids"), _BY_PAIR, db.one_of(_C.c.email, "b_emails"))
#: By (ids given, addresses given, addresses in every account given): the statement that
#: reads those.
_LOCKED = {given: select(Contact).where(sa.or_(*(
    test for wanted, test in zip(given, _TESTS, strict=True) if wanted)))
    .order_by(_C.c.id).with_for_update(key_share=True)
    for given in itertools.product((False, True), repeat=len(_TESTS)) if any(given)}
_CONTACT_KEY = sa.inspect(Contact).identity_key_from_primary_key
#: {(account id, address): contact} of what ``preload_contacts`` read by address.
_BY_ADDRESS = "feedback_mta.contacts_by_address"


def preload_contacts(session: Session, ids: Iterable[int] = (),
                     addresses: Iterable[tuple[int, str]] = (),
                     emails: Iterable[str] = ()) -> list[Contact]:
    """Read these contacts (by id; by account and address; by address, in every account)
    into the write transaction of ``session`` in one query, locked until it ends
    (``audit.hold``), for ``Contacts.get`` and ``Contacts.by_email`` to find there and
    their changes to be decided without a statement each: the processor reads a batch's
    contacts so, a statement (on PostgreSQL, a round trip) a batch instead of two a
    message; ``Quality.import_contacts`` reads so every contact an import may change. An
    address read so and not found is looked up again when asked: a hint, never an answer
    (``audit.remember_by_address``). The contacts read, in id order."""
    wanted = sorted(set(ids))
    pairs = sorted({(account_id, email.strip().lower()) for account_id, email in addresses})
    everywhere = sorted({email.strip().lower() for email in emails})
    if not wanted and not pairs and not everywhere:
        return []
    found = list(session.exec(_LOCKED[bool(wanted), bool(pairs), bool(everywhere)],
                              params={"b_ids": wanted, "b_pairs": pairs,
                                      "b_emails": everywhere}).all())
    hold(session, found)
    if pairs:
        asked = set(pairs)
        remember_by_address(session, _BY_ADDRESS,
                            (c for c in found if (c.account_id, c.email) in asked))
    return found


def check_reason(reason: str) -> str:
    """An opt-out or opt-in reason: text of at most ``MAX_REASON`` characters."""
    if len(reason) > MAX_REASON:
        raise Invalid(f"reason: longer than {MAX_REASON} characters", "reason")
    return check_text("reason", reason)


class Contacts:
    """A contact's own state: created, opted out and in, tagged, made (un)mailable. What
    the quality check makes of a contact is ``quality``'s, in terms of these."""

    __slots__ = ("accounts", "recorder", "session")

    def __init__(self, recorder: Recorder, accounts: Accounts) -> None:
        self.recorder, self.session = recorder, recorder.session
        self.accounts = accounts

    def get(self, contact_id: int) -> Contact:
        contact = self.session.identity_map.get(_CONTACT_KEY((contact_id,)))
        if contact is None:
            contact = self.session.exec(_CONTACT, params={"b_id": contact_id}).first()
        if contact is None:
            raise NotFound(f"no contact {contact_id}")
        return contact

    def by_email(self, account_id: int, email: str) -> Contact | None:
        """The account's contact with this address, or None (indexed: account, email)."""
        email = email.strip().lower()
        if (contact := remembered(self.session, _BY_ADDRESS, account_id, email)) is not None:
            return contact
        return self.session.exec(select(Contact).where(
            Contact.account_id == account_id, Contact.email == email)).first()

    def same_address(self, email: str) -> list[Any]:
        """Every account's contact with this (normalized) address: id, account_id,
        first_name, last_name (indexed: email)."""
        return _SAME_ADDRESS.rows(self.session.connection(), {"b_email": email})

    def insert(self, values: dict[str, Any]) -> int:
        """A new contact of these column values (one prepared INSERT; ``add`` checked
        them, ``same_address`` found none of its account): its id, ``contact.created``
        recorded."""
        contact_id: int = _INSERT.scalar(self.session.connection(), values)
        self.recorder.record(events.CONTACT_CREATED, "contact", contact_id,
                             values["account_id"])
        return contact_id

    def row(self, contact_id: int) -> sa.Row[Any]:
        """The contact as a row of ``tables.CONTACT`` (its fields, ``mailable`` and
        ``not_mailable_reason``, as a ``Contact`` has them), not an ORM object."""
        return self.session.connection().execute(_ROW, {"b_id": contact_id}).one()

    def add(self, account_id: int, email: str, first: str = "",
                    last: str = "", ip: str | None = None) -> tuple[Contact, bool]:
        """The account's contact with this address (created if new) and whether it was new."""
        first, last = check_text("first", first), check_text("last", last)
        self.accounts.get(account_id)
        email = normalize_email(email)
        ip = normalize_ip(ip)
        contact = self.by_email(account_id, email)
        if contact is not None:
            return contact, False
        contact = Contact(account_id=account_id, email=email, first_name=first.strip(),
                          last_name=last.strip(), source_ip=ip)
        self.session.add(contact)
        self.session.flush()
        self.recorder.record(events.CONTACT_CREATED, "contact", contact.id, account_id)
        return contact, True

    def opt_out(self, contact: Contact, reason: str, **evidence: Any) -> bool:
        """Opt the contact out; False (and no event) when it already was. ``evidence`` goes
        into the event's data."""
        check_reason(reason)
        now = utcnow()
        if not self.recorder.change(contact, _OPT_OUT, status=ContactStatus.OPTED_OUT,
                                    opt_out_reason=reason, opted_out_at=now, updated_at=now):
            return False
        self.recorder.record(events.CONTACT_OPTED_OUT, "contact", contact.id, contact.account_id,
                             reason=reason, **evidence)
        return True

    def opt_in(self, contact: Contact, reason: str, **evidence: Any) -> bool:
        """Undo an opt-out (an admin's ``contact optin``, ``Quality.verify`` undoing the
        check's, a person's resubscribe); False when not opted out. ``evidence`` goes into
        the event's data."""
        self.recorder.lock(contact)
        if contact.status != ContactStatus.OPTED_OUT:
            return False
        previous = contact.opt_out_reason
        # A contact that opted out while it awaited its confirmation awaits it again: an
        # opt-in lifts the opt-out, not the need for the person's own yes.
        contact.status = (ContactStatus.PENDING if contact.confirm_by is not None
                          and contact.confirmed_at is None else ContactStatus.ACTIVE)
        contact.opt_out_reason = contact.opted_out_at = None
        contact.updated_at = utcnow()
        self.session.add(contact)
        self.recorder.record(events.CONTACT_OPTED_IN, "contact", contact.id, contact.account_id,
                             reason=reason, previous_reason=previous, **evidence)
        return True

    def resubscribe(self, contact: Contact, link_via: str, ip: str | None, user_agent: str,
                    window: timedelta = RESUBSCRIBE_WINDOW) -> Resubscribe:
        """A person undoes their click on the unsubscribe link (``resubscribe_verdict``):
        an opt-in with reason ``resubscribed`` and its evidence (time, address, browser),
        DONE; or why not, changing nothing."""
        self.recorder.lock(contact)
        now = utcnow()
        facts = opt_out_facts(self.session, contact, link_via)
        verdict = resubscribe_verdict(facts, now, window)
        if verdict is not Resubscribe.ALLOWED:
            return verdict
        self.opt_in(contact, RESUBSCRIBED, at=now.isoformat(), ip=normalize_ip(ip),
                    user_agent=user_agent[:300])
        return Resubscribe.DONE

    def suppress(self, account_id: int, email: str, reason: str = "manual"
                 ) -> tuple[Contact, bool]:
        """Add the address to the account's suppressions (``POST /v1/suppressions``,
        ``contact optout --email``): opt its contact out, making the contact if there is
        none; (contact, False) when it was opted out already."""
        contact, _ = self.add(account_id, email)
        return contact, self.opt_out_as_asked(contact, reason)

    def lift(self, contact: Contact, reason: str) -> bool:
        """Lift the contact's suppression with an opt-in (``DELETE /v1/suppressions/..``,
        ``contact optin``); ``Conflict`` saying why when it is one no opt-in lifts
        (``kept``); False when it was not opted out."""
        check_reason(reason)
        self.recorder.lock(contact)
        why = self.kept(contact)
        if why is not None:
            raise Conflict(f"{contact.email}: {why}")
        return self.opt_in(contact, reason)

    def kept(self, contact: Contact) -> str | None:
        """``why_kept``, with the contact's audit trail read for a complaint: a contact
        that unsubscribed and complained after carries the first reason, and is still
        never mailed again."""
        complained = self.session.execute(sa.select(_E.c.id).where(
            _E.c.subject_type == "contact", _E.c.subject_id == contact.id,
            _E.c.action == events.CONTACT_COMPLAINED).limit(1)).first() is not None
        return why_kept(contact, complained)

    def opt_out_as_asked(self, contact: Contact, reason: str) -> bool:
        """An admin's or the platform's opt-out (``contact optout``, ``POST
        /v1/contacts/{id}/optout``, ``POST /v1/suppressions``): the reason is theirs, and
        never one the system gives its own (``SYSTEM_REASONS``)."""
        check_reason(reason)
        if reason.strip().lower() in SYSTEM_REASONS:
            raise Invalid(f"reason: {reason!r} is one the system gives its own opt-outs; "
                          "say it in other words", "reason")
        return self.opt_out(contact, reason)

    def delete(self, contact: Contact) -> dict[str, int]:
        """Delete the contact with its leads and tags (a person asked to be forgotten, or a
        bot's contact an admin cleans up). Events about it stay: they hold no body."""
        leads = self.session.exec(select(Lead).where(Lead.contact_id == contact.id)).all()
        tags = self.session.exec(select(Tag).where(Tag.contact_id == contact.id)).all()
        for row in (*tags, *leads):
            self.session.delete(row)
        self.session.flush()
        self.session.delete(contact)
        self.session.flush()
        self.recorder.record(events.CONTACT_DELETED, "contact", contact.id, contact.account_id,
                             leads=len(leads), tags=len(tags))
        return {"leads": len(leads), "tags": len(tags)}

    def tags(self, contact: Contact) -> list[str]:
        return list(self.session.exec(select(Tag.name).where(Tag.contact_id == contact.id)
                                      .order_by(Tag.name)).all())

    def tag(self, contact: Contact, name: str) -> bool:
        """Put a tag on the contact; False (and no event) when it is there."""
        name = name.strip()
        if not name:
            raise Invalid("a tag needs a name")
        exists = self.session.exec(select(Tag.id).where(Tag.contact_id == contact.id,
                                                        Tag.name == name)).first()
        if exists is not None:
            return False
        assert contact.id is not None
        self.session.add(Tag(contact_id=contact.id, name=name,
                             created_by=self.recorder.actor.name))
        self.session.flush()
        self.recorder.record(events.CONTACT_TAGGED, "contact", contact.id, contact.account_id,
                             tag=name)
        return True

    def untag(self, contact: Contact, name: str) -> bool:
        """Take a tag off; False (and no event) when it was not there."""
        row = self.session.exec(select(Tag).where(Tag.contact_id == contact.id,
                                                  Tag.name == name)).first()
        if row is None:
            return False
        self.session.delete(row)
        self.session.flush()
        self.recorder.record(events.CONTACT_UNTAGGED, "contact", contact.id, contact.account_id,
                             tag=name)
        return True

    def mark_undeliverable(self, contact: Contact, reason: str) -> bool:
        """Stop mailing the address (it bounced); False (and no event) when already so."""
        now = utcnow()
        if not self.recorder.change(contact, _UNDELIVERABLE, undeliverable_at=now,
                                    undeliverable_reason=reason, updated_at=now):
            return False
        self.recorder.record(events.CONTACT_UNDELIVERABLE, "contact", contact.id,
                             contact.account_id, reason=reason)
        return True

    def mark_deliverable(self, contact: Contact) -> bool:
        """Undo ``mark_undeliverable`` (the person fixed their mailbox); False when it was
        mailable. Soft bounces before now no longer count."""
        self.recorder.lock(contact)
        if contact.undeliverable_at is None:
            return False
        contact.undeliverable_at = contact.undeliverable_reason = None
        contact.updated_at = utcnow()
        self.session.add(contact)
        self.recorder.record(events.CONTACT_DELIVERABLE, "contact", contact.id, contact.account_id)
        return True
