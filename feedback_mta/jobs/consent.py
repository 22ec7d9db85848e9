"""Confirmation requests and their deadline: the scheduled side of double opt-in.

A contact that came by a method of ``[consent] confirm_methods`` is ``pending``
(``actions.consent``) until the person confirms. The scheduler (inside ``serve``) calls
``check`` every ``[review] check_interval``, and once at start (a deadline that passed
while no server ran is caught up then):

- ``expire_due`` opts out, with reason ``unconfirmed``, every pending contact whose
  ``confirm_by`` passed (``Consent.expire``: a confirmation that raced it wins);
- with ``[outbound] relay`` set and ``[consent] send_confirmation`` on, ``send_due``
  queues one confirmation request to each pending contact not asked yet
  (``confirmation_sent_at`` NULL), and ``remind_due`` its one reminder ``[consent]
  remind_before`` the deadline.

The request is found by the job, not sent where the contact is made: an import of 50,000
rows commits its rows and answers, and the requests follow in batches of ``BATCH``, each
composed outside the write transaction and queued in the transaction that notes it sent
(the transactional outbox: a crash loses none and sends none twice, short of the outbox's
own relay-250 window). Each run holds a PostgreSQL advisory lock per step, so two nodes
on one database ask, remind and opt out each contact once.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta
from email.utils import make_msgid

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from feedback_mta import logs, tokens
from feedback_mta.actions import SCHEDULER, unit_of_work
from feedback_mta.actions.mail import digest
from feedback_mta.addresses import AddressBook, Box, confirm_link
from feedback_mta.config import Config
from feedback_mta.store import db
from feedback_mta.store.models import Account, Contact, ContactStatus, table_of, utcnow

log = logs.get(__name__)

_C = table_of(Contact)
#: Contacts per transaction: a run over a large import commits (and hands the outbox its
#: mail) every this many.
BATCH = 200
#: ``purpose`` of the queued mail (``outbox list``).
PURPOSE = "consent.confirmation"

Submit = Callable[[list[int]], None]


def _when(value: datetime) -> str:
    return db.aware(value).strftime("%Y-%m-%d %H:%M UTC")


def compose(*, contact: Contact, sender: str, book: AddressBook, page: str,
            reminder: bool = False) -> bytes:
    """The confirmation request (or its reminder) to one pending contact: who asks, what
    confirming means, how (a reply, or the link when there is a ``page``), and that
    silence is a no, by when. From the account's name, ``Reply-To: confirm+TOKEN``.
    Pure."""
    assert contact.id is not None and contact.confirm_by is not None
    link = confirm_link(book, contact.id, page)
    deadline = _when(contact.confirm_by)
    how = ('reply "yes" to this email, or click:\n\n'
           f"    {link.url}\n" if link.url else 'reply "yes" to this email.\n')
    text = (
        ("A reminder: " if reminder else "")
        + f"{sender} would like to send you emails at {contact.email}, and asks you to "
        "confirm first that you want them.\n\n"
        f"Confirming means {sender} may email you at this address. Every email from them "
        "lets you unsubscribe at any time.\n\n"
        f"To confirm, {how}\n"
        'Not interested? Reply "no", or simply ignore this email and you will not hear '
        f"from {sender} again: unless you confirm by {deadline}, your address is "
        "removed from their list.\n")
    subject = f"Please confirm: do you want emails from {sender}?"
    return digest(
        to=contact.email, reply_address=link.reply_to, from_name=sender,
        subject=f"Reminder: {subject}" if reminder else subject,
        message_id=make_msgid("confirm", domain=book.domain), text=text,
        headers={"Reply-To": link.reply_to,
                 tokens.TOKEN_HEADER: tokens.make(book.secrets[0], tokens.Purpose.FEEDBACK,
                                                  contact.id),
                 tokens.ACCOUNT_HEADER: tokens.make(book.secrets[0], tokens.Purpose.ACCOUNT,
                                                    contact.account_id)})


_PENDING = _C.c.status == ContactStatus.PENDING.value


def _ask(engine: Engine, book: AddressBook, page: str, where: tuple[sa.ColumnElement[bool], ...],
         *, reminder: bool, lock: str, submit: Submit) -> list[int]:
    """Queue the request (or reminder) to every pending contact ``where`` says, and note
    each sent; the ids of the queued mails (each batch's handed to ``submit`` once
    committed). Each batch is read and its mail composed outside the write transaction
    (composing is most of the work: a SQLite writer holds the database meanwhile), then,
    under the advisory lock ``lock``, each contact still ``where`` is queued its mail."""
    queued: list[int] = []
    while True:
        with Session(db.reader(engine)) as session:
            batch = session.exec(select(Contact).where(_PENDING, *where)
                                 .order_by(col(Contact.id)).limit(BATCH)).all()
            senders = {a: session.get_one(Account, a).name
                       for a in {c.account_id for c in batch}}
        raw = {c.id: compose(contact=c, sender=senders[c.account_id], book=book, page=page,
                             reminder=reminder) for c in batch}
        with unit_of_work(engine, SCHEDULER) as uow:
            if not db.try_lock(uow.session.connection(), lock):
                break  # another node is at it right now
            for contact in uow.session.exec(select(Contact).where(
                    col(Contact.id).in_(list(raw)), _PENDING, *where)).all():
                assert contact.id is not None
                mail = uow.mail.queue(PURPOSE, contact.email, raw[contact.id],
                                      mail_from=book.address(Box.BOUNCE, contact.id))
                uow.consent.confirmation_sent(contact, reminder=reminder, outbound_id=mail.id)
            mail_ids = list(uow.recorder.queued_mail)
        submit(mail_ids)
        queued += mail_ids
        if len(batch) < BATCH:
            break
    return queued


def send_due(engine: Engine, book: AddressBook, page: str, now: datetime | None = None,
             submit: Submit = lambda ids: None) -> list[int]:
    """Queue the request to every pending contact not asked yet (whose deadline has not
    passed: that one is opted out instead); the ids of the queued mails."""
    now = now or utcnow()
    return _ask(engine, book, page, (_C.c.confirmation_sent_at.is_(None), _C.c.confirm_by > now),
                reminder=False, lock="consent.send", submit=submit)


def remind_due(engine: Engine, book: AddressBook, page: str, remind_before: float,
               now: datetime | None = None, submit: Submit = lambda ids: None) -> list[int]:
    """Queue the one reminder to every pending contact whose deadline is within
    ``remind_before``, asked at least that long ago (a request that went late, after
    downtime, is not followed at once by its reminder); the ids of the queued mails."""
    if remind_before <= 0:
        return []
    now = now or utcnow()
    window = timedelta(seconds=remind_before)
    return _ask(engine, book, page,
                (_C.c.confirmation_reminded_at.is_(None), _C.c.confirm_by > now,
                 _C.c.confirm_by <= now + window, _C.c.confirmation_sent_at <= now - window),
                reminder=True, lock="consent.remind", submit=submit)


def expire_due(engine: Engine, now: datetime | None = None) -> int:
    """Opt out (reason ``unconfirmed``) every pending contact whose deadline passed, a
    batch per transaction; how many were."""
    now = now or utcnow()
    expired = 0
    while True:
        with unit_of_work(engine, SCHEDULER) as uow:
            if not db.try_lock(uow.session.connection(), "consent.expire"):
                break  # another node is at it right now
            ids = [row.id for row in uow.session.connection().execute(
                sa.select(_C.c.id).where(_PENDING, _C.c.confirm_by <= now)
                .order_by(_C.c.confirm_by).limit(BATCH))]
            # Locked in id order, as a processing batch locks its contacts (the review
            # job's ``expire_due`` says why).
            expired += sum(uow.consent.expire(uow.contacts.get(i), now) for i in sorted(ids))
        if len(ids) < BATCH:
            break
    if expired:
        log.info("consent.expired", opted_out=expired)
    return expired


def check(engine: Engine, config: Config, book: AddressBook, page: Callable[[], str | None],
          submit: Submit | None) -> None:
    """One run: opt out what is due; with a relay (``submit``) and ``send_confirmation``,
    ask the pending contacts not asked yet and remind those near their deadline. ``page``
    says where the link points: "" for no link (no HTTP listener), None while the
    listener is not up yet (the requests wait for the next run)."""
    expire_due(engine)
    base = page()
    if submit is None or not config.consent.send_confirmation or base is None:
        return
    sent = send_due(engine, book, base, submit=submit)
    reminded = remind_due(engine, book, base, config.consent.remind_before, submit=submit)
    if sent or reminded:
        log.info("consent.requests", queued=len(sent), reminders=len(reminded))
