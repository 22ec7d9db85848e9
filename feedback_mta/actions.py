"""The one place that changes accounts, users, contacts and leads.

Every change writes an ``Event`` row (who, what, why, from which inbound message) in the same
transaction as the change, and a log line with the same stable name once it is committed.
The SMTP processing, the scheduler and the command line all come through here, so the
audit trail is complete by construction.

Operations are idempotent: opting out an opted-out contact changes nothing and records
nothing, so a message processed twice (or a scheduler run twice) changes nothing twice.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from feedback_mta import logs, metrics
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.formats.report import COMPLAINT_TYPES, Bounced
from feedback_mta.models import (
    Account,
    Contact,
    ContactStatus,
    Event,
    Lead,
    LeadStatus,
    OutboundMessage,
    Role,
    SentCount,
    SuspectNetwork,
    Tag,
    User,
    utcnow,
)
from feedback_mta.quality import (
    EXPIRED_REASON,
    INVALID_REASON,
    INVALID_TAG,
    SUSPECTED_TAG,
    SYSTEM_TAGS,
    Engagement,
    Level,
)

log = logs.get("feedback_mta.actions")


class ActionError(Exception):
    """An action that cannot be done as asked (the message says why)."""


class NotFound(ActionError):
    pass


class Invalid(ActionError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who acts: ``cli``, ``email:<sender>``, ``scheduler``, ``system``; and by which way."""

    name: str
    via: str = "cli"


CLI = Actor("cli", "cli")
SYSTEM = Actor("system", "auto")
SCHEDULER = Actor("scheduler", "auto")

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[a-z0-9.-]+\.[a-z0-9-]+$")


def normalize_email(address: str) -> str:
    """Lower-case and check the shape of an address (full validation comes with quality checks)."""
    address = address.strip().lower()
    if not _EMAIL.match(address) or len(address) > 254:
        raise Invalid(f"not an email address: {address!r}")
    return address


@dataclass
class Actions:
    session: Session
    actor: Actor
    inbound_message_id: int | None = None
    _logged: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Outbound mail queued in this transaction, to hand to the sender after the commit.
    queued_mail: list[int] = field(default_factory=list)

    # -- audit ------------------------------------------------------------------------------
    def record(self, action: str, subject_type: str, subject_id: int | None,
               account_id: int | None, reason: str | None = None, **data: Any) -> Event:
        """Write an audit event now and queue its log line for after the commit."""
        event = Event(account_id=account_id, actor=self.actor.name, action=action,
                      subject_type=subject_type, subject_id=subject_id,
                      inbound_message_id=self.inbound_message_id, reason=reason,
                      data=json.dumps(data, default=str, sort_keys=True))
        self.session.add(event)
        fields = {f"{subject_type}_id": subject_id, "account_id": account_id,
                  "actor": self.actor.name, "via": self.actor.via}
        if reason:
            fields["reason"] = reason
        if self.inbound_message_id is not None:
            fields["inbound_message_id"] = self.inbound_message_id
        fields.update(data)
        self._logged.append((action, fields))
        return event

    def emit_logs(self) -> None:
        """After the commit: each event's log line, and its count where a metric counts it."""
        for action, fields in self._logged:
            log.info(action, **fields)
            metrics.count_event(action, fields)
        self._logged.clear()

    # -- lookups ----------------------------------------------------------------------------
    def account(self, account_id: int) -> Account:
        account = self.session.get(Account, account_id)
        if account is None:
            raise NotFound(f"no account {account_id}")
        return account

    def contact(self, contact_id: int) -> Contact:
        contact = self.session.get(Contact, contact_id)
        if contact is None:
            raise NotFound(f"no contact {contact_id}")
        return contact

    def lead(self, lead_id: int) -> Lead:
        lead = self.session.get(Lead, lead_id)
        if lead is None:
            raise NotFound(f"no lead {lead_id}")
        return lead

    def lead_by_notification(self, message_ids: Iterable[str]) -> Lead | None:
        """The lead whose notification has one of these Message-IDs (first match wins)."""
        ids = [m for m in message_ids if m]  # parse already took off the angle brackets
        if not ids:
            return None
        found = {lead.notification_message_id: lead for lead in self.session.exec(
            select(Lead).where(Lead.notification_message_id.in_(ids)))}
        return next((found[m] for m in ids if m in found), None)

    def contact_by_email(self, account_id: int, email: str) -> Contact | None:
        """The account's contact with this address, or None (indexed: account, email)."""
        return self.session.exec(select(Contact).where(
            Contact.account_id == account_id, Contact.email == email.strip().lower())).first()

    def soft_bounces(self, contact: Contact, since: datetime) -> int:
        """Soft bounces recorded for the contact since ``since`` (this transaction's too),
        not counting those before it was last made deliverable again."""
        reset = self.session.exec(select(func.max(Event.at)).where(
            Event.subject_type == "contact", Event.subject_id == contact.id,
            Event.action == "contact.deliverable")).one()
        if reset is not None:
            since = max(since, reset if reset.tzinfo else reset.replace(tzinfo=since.tzinfo))
        return self.session.exec(select(func.count()).select_from(Event).where(
            Event.subject_type == "contact", Event.subject_id == contact.id,
            Event.action == "contact.soft_bounced", Event.at >= since)).one()

    def user(self, account_id: int, email: str) -> User | None:
        """The account's user with this address, or None."""
        return self.session.exec(select(User).where(
            User.account_id == account_id, User.email == email.strip().lower())).first()

    # -- changes ----------------------------------------------------------------------------
    def add_account(self, name: str) -> Account:
        name = name.strip()
        if not name:
            raise Invalid("an account needs a name")
        account = Account(name=name)
        self.session.add(account)
        self.session.flush()
        self.record("account.created", "account", account.id, account.id, name=name)
        return account

    def add_user(self, account_id: int, email: str, roles: Iterable[str] = ()) -> User:
        """Add a user, or grant more roles to an existing one."""
        self.account(account_id)
        email = normalize_email(email)
        roles = {Role(r).value for r in roles}
        user = self.user(account_id, email)
        if user is None:
            user = User(account_id=account_id, email=email, roles=" ".join(sorted(roles)))
            self.session.add(user)
            self.session.flush()
            self.record("user.created", "user", user.id, account_id, roles=sorted(roles))
        elif not roles <= user.role_set:
            user.roles = " ".join(sorted(user.role_set | roles))
            self.session.add(user)
            self.record("user.roles_granted", "user", user.id, account_id, roles=sorted(roles))
        return user

    def add_contact(self, account_id: int, email: str, first: str = "",
                    last: str = "", ip: str | None = None) -> tuple[Contact, bool]:
        """The account's contact with this address (created if new) and whether it was new."""
        self.account(account_id)
        email = normalize_email(email)
        contact = self.session.exec(
            select(Contact).where(Contact.account_id == account_id,
                                  Contact.email == email)).first()
        if contact is not None:
            return contact, False
        contact = Contact(account_id=account_id, email=email, first_name=first.strip(),
                          last_name=last.strip(), source_ip=ip or None)
        self.session.add(contact)
        self.session.flush()
        self.record("contact.created", "contact", contact.id, account_id)
        return contact, True

    def add_lead(self, book: AddressBook, account_id: int, email: str, first: str = "",
                 last: str = "", ip: str | None = None, comments: str = "") -> Lead:
        contact, _ = self.add_contact(account_id, email, first, last, ip)
        lead = Lead(account_id=account_id, contact_id=contact.id, source_ip=ip or None,
                    comments=comments)
        self.session.add(lead)
        self.session.flush()
        lead.notification_message_id = notification_message_id(book, lead.id)
        self.session.add(lead)
        self.record("lead.created", "lead", lead.id, account_id, contact_id=contact.id)
        return lead

    def opt_out(self, contact: Contact, reason: str) -> bool:
        """Opt the contact out; False (and no event) when it already was."""
        if contact.status == ContactStatus.OPTED_OUT:
            return False
        contact.status = ContactStatus.OPTED_OUT
        contact.opt_out_reason = reason
        contact.opted_out_at = contact.updated_at = utcnow()
        self.session.add(contact)
        self.record("contact.opted_out", "contact", contact.id, contact.account_id, reason=reason)
        return True

    def opt_in(self, contact: Contact, reason: str) -> bool:
        """Undo an opt-out the system made by mistake (``verify``); False when not opted out."""
        if contact.status != ContactStatus.OPTED_OUT:
            return False
        previous = contact.opt_out_reason
        contact.status = ContactStatus.ACTIVE
        contact.opt_out_reason = contact.opted_out_at = None
        contact.updated_at = utcnow()
        self.session.add(contact)
        self.record("contact.opted_in", "contact", contact.id, contact.account_id,
                    reason=reason, previous_reason=previous)
        return True

    def delete_contact(self, contact: Contact) -> dict[str, int]:
        """Delete the contact with its leads and tags (a person asked to be forgotten, or a
        bot's contact an admin cleans up). Events about it stay: they hold no body."""
        leads = self.session.exec(select(Lead).where(Lead.contact_id == contact.id)).all()
        tags = self.session.exec(select(Tag).where(Tag.contact_id == contact.id)).all()
        for row in (*tags, *leads):
            self.session.delete(row)
        self.session.flush()
        self.session.delete(contact)
        self.session.flush()
        self.record("contact.deleted", "contact", contact.id, contact.account_id,
                    leads=len(leads), tags=len(tags))
        return {"leads": len(leads), "tags": len(tags)}

    # -- tags and the quality check -----------------------------------------------------------
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
        self.session.add(Tag(contact_id=contact.id, name=name, created_by=self.actor.name))
        self.session.flush()
        self.record("contact.tagged", "contact", contact.id, contact.account_id, tag=name)
        return True

    def untag(self, contact: Contact, name: str) -> bool:
        """Take a tag off; False (and no event) when it was not there."""
        row = self.session.exec(select(Tag).where(Tag.contact_id == contact.id,
                                                  Tag.name == name)).first()
        if row is None:
            return False
        self.session.delete(row)
        self.session.flush()
        self.record("contact.untagged", "contact", contact.id, contact.account_id, tag=name)
        return True

    def mark_invalid(self, contact: Contact, reasons: Iterable[str]) -> bool:
        """Known bad: record why, tag it ``SYSTEM - Invalid Contact`` and opt it out
        (``invalid_contact``). Sticky: nothing but ``verify`` undoes it. False when it was
        invalid already."""
        if contact.quality == Level.INVALID:
            return False
        reasons = list(reasons)
        self._set_quality(contact, Level.INVALID, reasons)
        contact.review_deadline = None
        self.record("contact.invalid", "contact", contact.id, contact.account_id,
                    reasons=reasons)
        self.untag(contact, SUSPECTED_TAG)
        self.tag(contact, INVALID_TAG)
        self.opt_out(contact, INVALID_REASON)
        return True

    def mark_suspected(self, contact: Contact, reasons: Iterable[str],
                       deadline: datetime) -> bool:
        """Suspected: tag it ``SYSTEM - Suspected Invalid Contact`` with a review deadline.
        A contact already suspected keeps its deadline (new reasons are added); an opted-out
        or invalid one is left alone. False when nothing changed."""
        if contact.status != ContactStatus.ACTIVE or contact.quality == Level.INVALID:
            return False
        reasons = list(reasons)
        if contact.quality == Level.SUSPECTED and contact.review_deadline is not None:
            known = json.loads(contact.quality_reasons or "[]")
            new = [r for r in reasons if r not in known]
            if not new:
                return False
            self._set_quality(contact, Level.SUSPECTED, known + new)
            self.record("contact.suspected", "contact", contact.id, contact.account_id,
                        reasons=new, review_deadline=str(contact.review_deadline))
            return True
        self._set_quality(contact, Level.SUSPECTED, reasons)
        contact.review_deadline = deadline
        contact.reminded_at = None
        self.record("contact.suspected", "contact", contact.id, contact.account_id,
                    reasons=reasons, review_deadline=deadline.isoformat())
        self.tag(contact, SUSPECTED_TAG)
        return True

    def mark_checked(self, contact: Contact) -> None:
        """The check found nothing: record that it ran (no event: nothing changed)."""
        if contact.quality is None:
            contact.quality = Level.OK
            contact.quality_reasons = "[]"
            self.session.add(contact)

    def _set_quality(self, contact: Contact, level: Level, reasons: list[str]) -> None:
        contact.quality = level
        contact.quality_reasons = json.dumps(reasons, ensure_ascii=False)
        contact.updated_at = utcnow()
        self.session.add(contact)

    def verify(self, contact: Contact) -> bool:
        """An admin says this is a real person: take the system tags off, drop the deadline,
        remember the reasons so they do not tag it again, and undo an opt-out the quality
        check made. False when it was verified and untagged already."""
        had_tags = [t for t in SYSTEM_TAGS if t in self.tags(contact)]
        if contact.verified_at is not None and not had_tags and contact.review_deadline is None:
            return False
        reasons = json.loads(contact.quality_reasons or "[]")
        seen = json.loads(contact.verified_reasons or "[]")
        contact.verified_at = contact.updated_at = utcnow()
        contact.verified_by = self.actor.name
        contact.verified_reasons = json.dumps(seen + [r for r in reasons if r not in seen],
                                              ensure_ascii=False)
        contact.review_deadline = None
        contact.quality = Level.OK
        self.session.add(contact)
        self.record("contact.verified", "contact", contact.id, contact.account_id,
                    reasons=reasons)
        for name in had_tags:
            self.untag(contact, name)
        if contact.opt_out_reason in (INVALID_REASON, EXPIRED_REASON):
            self.opt_in(contact, "verified")
        return True

    def engage(self, contact: Contact, kind: Engagement) -> bool:
        """Record a purchase, double opt-in, open or click. An engaged contact is never
        called bad: a pending suspicion is cleared. False when this kind was known."""
        kinds = set(contact.engagement.split())
        if kind.value in kinds:
            return False
        contact.engagement = " ".join(sorted(kinds | {kind.value}))
        contact.engaged_at = contact.engaged_at or utcnow()
        contact.updated_at = utcnow()
        cleared = contact.quality == Level.SUSPECTED
        if cleared:
            contact.quality = Level.OK
            contact.review_deadline = None
        self.session.add(contact)
        self.record("contact.engaged", "contact", contact.id, contact.account_id,
                    kind=kind.value, cleared_suspicion=cleared)
        if cleared:
            self.untag(contact, SUSPECTED_TAG)
        return True

    def expire_review(self, contact_id: int, now: datetime) -> bool:
        """Opt out one suspected contact whose review deadline passed (reason
        ``suspected_invalid``), if it still is one: active, tagged, not verified, not
        engaged. One conditional UPDATE decides, so two schedulers (two nodes) racing for the
        same contact opt it out once: the second finds nothing left to update."""
        table = Contact.__table__
        row = self.session.exec(select(Contact.account_id, Contact.review_deadline)
                                .where(Contact.id == contact_id)).first()
        if row is None:
            return False
        tagged = sa.exists().where(Tag.contact_id == table.c.id, Tag.name == SUSPECTED_TAG)
        done = self.session.execute(
            sa.update(table).where(
                table.c.id == contact_id, table.c.review_deadline <= now,
                table.c.status == ContactStatus.ACTIVE.value, table.c.verified_at.is_(None),
                table.c.engaged_at.is_(None), tagged)
            .values(status=ContactStatus.OPTED_OUT.value, opt_out_reason=EXPIRED_REASON,
                    opted_out_at=now, updated_at=now, review_deadline=None)).rowcount
        if done != 1:
            return False
        self.record("contact.opted_out", "contact", contact_id, row.account_id,
                    reason=EXPIRED_REASON, review_deadline=str(row.review_deadline))
        return True

    def claim_reminders(self, contact_ids: Iterable[int], now: datetime) -> list[int]:
        """Mark contacts as named in a digest; only those no other run named already."""
        table = Contact.__table__
        claimed = []
        for contact_id in contact_ids:
            if self.session.execute(sa.update(table).where(
                    table.c.id == contact_id, table.c.reminded_at.is_(None),
                    table.c.review_deadline.is_not(None)).values(reminded_at=now)).rowcount:
                claimed.append(contact_id)
        return claimed

    # -- suspect networks ---------------------------------------------------------------------
    def _network(self, cidr: str) -> tuple[str, SuspectNetwork | None]:
        """The normalized CIDR and its row, if it is in the table."""
        try:
            cidr = str(ipaddress.ip_network(cidr.strip(), strict=False))
        except ValueError:
            raise Invalid(f"not a network such as 203.0.113.0/24: {cidr!r}") from None
        return cidr, self.session.exec(select(SuspectNetwork)
                                       .where(SuspectNetwork.cidr == cidr)).first()

    def add_network(self, cidr: str, note: str = "") -> tuple[SuspectNetwork, bool]:
        cidr, row = self._network(cidr)
        if row is not None:
            return row, False
        row = SuspectNetwork(cidr=cidr, note=note, created_by=self.actor.name)
        self.session.add(row)
        self.session.flush()
        self.record("network.added", "network", row.id, None, cidr=cidr, note=note)
        return row, True

    def remove_network(self, cidr: str) -> bool:
        cidr, row = self._network(cidr)
        if row is None:
            return False
        self.session.delete(row)
        self.session.flush()
        self.record("network.removed", "network", row.id, None, cidr=cidr)
        return True

    def record_feedback(self, contact: Contact, feedback_type: str, source: str,
                        attributed_by: str) -> Event:
        """Record a feedback-loop report about the contact. Complaints (abuse, fraud, virus,
        other) are ``contact.complained`` and count in the account's complaint rate; the rest
        (not-spam, auth-failure, opt-out) are ``contact.feedback_recorded``."""
        action = ("contact.complained" if feedback_type in COMPLAINT_TYPES
                  else "contact.feedback_recorded")
        return self.record(action, "contact", contact.id, contact.account_id,
                           feedback_type=feedback_type, format=source,
                           attributed_by=attributed_by)

    def record_bounce(self, contact: Contact, bounced: Bounced, source: str,
                      attributed_by: str) -> Event:
        """Record one bounce of mail to the contact (``contact.hard_bounced`` or
        ``contact.soft_bounced``); making it unmailable is ``mark_undeliverable``."""
        action = "contact.hard_bounced" if bounced.hard else "contact.soft_bounced"
        return self.record(action, "contact", contact.id, contact.account_id,
                           reason=bounced.reason, status=bounced.status, format=source,
                           attributed_by=attributed_by)

    def mark_undeliverable(self, contact: Contact, reason: str) -> bool:
        """Stop mailing the address (it bounced); False (and no event) when already so."""
        if contact.undeliverable_at is not None:
            return False
        contact.undeliverable_at = contact.updated_at = utcnow()
        contact.undeliverable_reason = reason
        self.session.add(contact)
        self.record("contact.undeliverable", "contact", contact.id, contact.account_id,
                    reason=reason)
        return True

    def mark_deliverable(self, contact: Contact) -> bool:
        """Undo ``mark_undeliverable`` (the person fixed their mailbox); False when it was
        mailable. Soft bounces before now no longer count."""
        if contact.undeliverable_at is None:
            return False
        contact.undeliverable_at = contact.undeliverable_reason = None
        contact.updated_at = utcnow()
        self.session.add(contact)
        self.record("contact.deliverable", "contact", contact.id, contact.account_id)
        return True

    def add_sent(self, account_id: int, day: str, count: int) -> SentCount:
        """Add to the messages the account sent on ``day`` (ISO date)."""
        self.account(account_id)
        if count < 0:
            raise Invalid("a sent count cannot be negative")
        row = self.session.exec(select(SentCount).where(
            SentCount.account_id == account_id, SentCount.day == day)).first()
        if row is None:
            row = SentCount(account_id=account_id, day=day, count=0)
        row.count += count
        self.session.add(row)
        self.session.flush()
        self.record("account.sent_recorded", "account", account_id, account_id, day=day,
                    count=count, total=row.count)
        return row

    def flag_spam(self, lead: Lead) -> bool:
        """Mark this lead (only this activity) spam: it leaves the inbox, search, reports and,
        if not exported yet, the CRM export. False (and no event) when it already was."""
        if lead.status == LeadStatus.SPAM:
            return False
        lead.status = LeadStatus.SPAM
        lead.flagged_at = utcnow()
        lead.flagged_by = self.actor.name
        lead.flagged_via = self.actor.via
        self.session.add(lead)
        self.record("lead.flagged_spam", "lead", lead.id, lead.account_id,
                    contact_id=lead.contact_id, exported=lead.exported_at is not None)
        return True

    def restore(self, lead: Lead) -> bool:
        """Undo ``flag_spam``; False (and no event) when the lead is not spam."""
        if lead.status != LeadStatus.SPAM:
            return False
        lead.status = LeadStatus.ACTIVE
        lead.flagged_at = lead.flagged_by = lead.flagged_via = None
        self.session.add(lead)
        self.record("lead.restored", "lead", lead.id, lead.account_id,
                    contact_id=lead.contact_id)
        return True

    def mark_exported(self, lead: Lead) -> bool:
        """Record that the lead went to the CRM; spam leads are never exported."""
        if lead.status != LeadStatus.ACTIVE or lead.exported_at is not None:
            return False
        lead.exported_at = utcnow()
        self.session.add(lead)
        self.record("lead.exported", "lead", lead.id, lead.account_id)
        return True

    def refuse(self, reason: str, lead: Lead | None, **data: Any) -> Event:
        """Record an asked-for change we did not make, and why (a reply not allowed, ...)."""
        return self.record("reply.refused", "lead", lead.id if lead else None,
                           lead.account_id if lead else None, reason=reason, **data)

    # -- outbound mail ----------------------------------------------------------------------
    def queue_mail(self, purpose: str, rcpt_to: str, raw: bytes,
                   lead: Lead | None = None) -> OutboundMessage:
        """Queue a mail in this transaction; it is sent after the commit (see ``outbound``)."""
        mail = OutboundMessage(inbound_message_id=self.inbound_message_id,
                               lead_id=lead.id if lead else None, purpose=purpose,
                               mail_from="", rcpt_to=rcpt_to, raw=raw)
        self.session.add(mail)
        self.session.flush()
        self.queued_mail.append(mail.id)
        self._logged.append(("mail.queued", {
            "outbound_id": mail.id, "purpose": purpose,
            "lead_id": lead.id if lead else None,
            "inbound_message_id": self.inbound_message_id}))
        return mail


def notification_message_id(book: AddressBook, lead_id: int) -> str:
    """The Message-ID (without brackets) for the lead-notification email of ``lead_id``."""
    token = book.address(Box.REPLY, lead_id).split("@")[0].partition("+")[2]
    return f"lead.{token}@{book.domain}"


@contextmanager
def unit_of_work(engine: Engine, actor: Actor,
                 inbound_message_id: int | None = None) -> Iterator[Actions]:
    """A transaction for a batch of actions: commit, then log what was done."""
    with Session(engine, expire_on_commit=False) as session:
        actions = Actions(session, actor, inbound_message_id)
        yield actions
        session.commit()
        actions.emit_logs()
