"""The one place that changes accounts, users, contacts and leads.

Every change writes an ``Event`` row (who, what, why, from which inbound message) in the same
transaction as the change, and a log line with the same stable name once it is committed.
The SMTP processing, the scheduler and the command line all come through here, so the
audit trail is complete by construction.

Operations are idempotent: opting out an opted-out contact changes nothing and records
nothing, so a message processed twice (or a scheduler run twice) changes nothing twice.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import func
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from feedback_mta import logs
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
    User,
    utcnow,
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
        for action, fields in self._logged:
            log.info(action, **fields)
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
                    last: str = "") -> tuple[Contact, bool]:
        """The account's contact with this address (created if new) and whether it was new."""
        self.account(account_id)
        email = normalize_email(email)
        contact = self.session.exec(
            select(Contact).where(Contact.account_id == account_id,
                                  Contact.email == email)).first()
        if contact is not None:
            return contact, False
        contact = Contact(account_id=account_id, email=email, first_name=first.strip(),
                          last_name=last.strip())
        self.session.add(contact)
        self.session.flush()
        self.record("contact.created", "contact", contact.id, account_id)
        return contact, True

    def add_lead(self, book: AddressBook, account_id: int, email: str, first: str = "",
                 last: str = "", ip: str | None = None, comments: str = "") -> Lead:
        contact, _ = self.add_contact(account_id, email, first, last)
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
