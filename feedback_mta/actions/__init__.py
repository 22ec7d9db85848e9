"""The one place that changes accounts, users, contacts and leads.

Every change writes an ``Event`` row (who, what, why, from which inbound message) in the
same transaction as the change, and a log line with the same stable name once it is
committed (``audit``; the names are in ``events``). The message handlers, the scheduled
jobs and the command line all come through here, so the audit trail is complete by
construction.

A ``UnitOfWork`` is one transaction: its session, its ``Recorder`` (who acts, from which
inbound message, the events recorded, the mail queued) and one object per area, each in
its own module (``accounts``, ``contacts``, ``consent``, ``learning``, ``behaviour``, ``leads``,
``quality``, ``feedback``, ``registration``, ``mail``, ``review``, ``inbox``,
``outbox``, ``platform``). An area is given what it uses when it is made, so what depends on what is
read off the constructors (``Leads(recorder, contacts, learning)``), and a caller names
the area it acts in (``uow.leads.flag_spam(lead)``, ``uow.contacts.opt_out(...)``).
Operations are idempotent: opting out an opted-out contact changes nothing and records
nothing, so a message processed twice (or a scheduler run twice) changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import Session

from feedback_mta.actions.accounts import Accounts, normalize_email
from feedback_mta.actions.audit import (
    CLI,
    SCHEDULER,
    SYSTEM,
    ActionError,
    Actor,
    AuditedSession,
    Conflict,
    Invalid,
    NotFound,
    Recorder,
    listen,
    write_events,
)
from feedback_mta.actions.behaviour import Behaviour
from feedback_mta.actions.consent import Consent
from feedback_mta.actions.contacts import Contacts
from feedback_mta.actions.feedback import Feedback
from feedback_mta.actions.inbox import Inbox
from feedback_mta.actions.leads import Leads
from feedback_mta.actions.learning import Learning
from feedback_mta.actions.mail import Mail
from feedback_mta.actions.outbox import Outbox
from feedback_mta.actions.platform import Platform
from feedback_mta.actions.quality import Quality
from feedback_mta.actions.registration import Registration
from feedback_mta.actions.review import Review
from feedback_mta.addresses import notification_message_id

__all__ = [
    "CLI",
    "SCHEDULER",
    "SYSTEM",
    "ActionError",
    "Actor",
    "AuditedSession",
    "Conflict",
    "Invalid",
    "NotFound",
    "UnitOfWork",
    "listen",
    "normalize_email",
    "notification_message_id",
    "unit_of_work",
    "write_events",
]


class UnitOfWork:
    """The actions of one transaction, by area, over one session and one recorder.

    The areas are made here, once, each after those it is given; the processor makes one
    per message, so this stays a handful of plain objects (slots, no lookups)."""

    __slots__ = ("accounts", "behaviour", "consent", "contacts", "feedback", "inbox", "leads",
                 "learning", "mail", "outbox", "platform", "quality", "recorder",
                 "registration", "review", "session")

    def __init__(self, session: Session, actor: Actor,
                 inbound_message_id: int | None = None) -> None:
        self.session = session
        self.recorder = recorder = Recorder(session, actor, inbound_message_id)
        self.accounts = Accounts(recorder)
        self.contacts = Contacts(recorder, self.accounts)
        self.consent = Consent(recorder, self.contacts)
        self.learning = Learning(recorder)
        self.behaviour = Behaviour(session)
        self.leads = Leads(recorder, self.contacts, self.learning)
        self.quality = Quality(recorder, self.accounts, self.contacts)
        self.registration = Registration(recorder, self.contacts, self.leads, self.quality,
                                         self.learning, self.behaviour, self.consent)
        self.feedback = Feedback(recorder)
        self.mail = Mail(recorder)
        self.review = Review(session, self.mail)
        self.inbox = Inbox(recorder)
        self.outbox = Outbox(recorder)
        self.platform = Platform(recorder, self.accounts)


@contextmanager
def unit_of_work(engine: Engine, actor: Actor,
                 inbound_message_id: int | None = None) -> Iterator[UnitOfWork]:
    """A transaction for a batch of actions: commit, then log what was done."""
    with AuditedSession(engine, expire_on_commit=False) as session:
        uow = UnitOfWork(session, actor, inbound_message_id)
        yield uow
        session.commit()
        uow.recorder.emit_logs()
