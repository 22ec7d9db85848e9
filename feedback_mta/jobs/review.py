"""Contact review: the deadline of suspected contacts kept, and the digest that warns admins.

(The check itself, ``Quality.screen``, runs where contacts arrive; ``jobs.classify`` runs
it over every existing contact.)

The scheduler (inside ``serve``) calls ``expire_due``: every suspected contact whose deadline
passed, still tagged, not verified and not engaged, is opted out (``suspected_invalid``).
Deadlines added by another process (the CLI) are found by the periodic check; the next one
is also scheduled to the second. A deadline that passed while no server ran is caught up at
start. Each contact is opted out by one conditional UPDATE (``Quality.expire_review``), and
on PostgreSQL the run holds an advisory lock, so two nodes opt each contact out once.

``remind_due`` sends each account's contact admins one digest of the contacts whose deadline
is near; a reply ``KEEP <id>`` (``handlers.reply.handle_review``) verifies them.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from datetime import datetime, timedelta
from email.utils import make_msgid

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from feedback_mta import events, logs
from feedback_mta.actions import SCHEDULER, UnitOfWork, unit_of_work
from feedback_mta.actions.mail import digest
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.store import db
from feedback_mta.store.models import (
    Account,
    Contact,
    table_of,
    utcnow,
)
from feedback_mta.store.states import UNDECIDED

log = logs.get(__name__)

_C = table_of(Contact)

# --- the deadline ----------------------------------------------------------------------------

def expire_due(engine: Engine, now: datetime | None = None, batch: int = 500) -> int:
    """Opt out every suspected contact whose deadline has passed; how many were."""
    now = now or utcnow()
    total = 0
    while True:
        with unit_of_work(engine, SCHEDULER) as uow:
            if not db.try_lock(uow.session.connection(), "review.expire"):
                return total  # another node is at it right now
            ids = uow.session.connection().execute(sa.select(_C.c.id).where(
                _C.c.review_deadline <= now, _C.c.status.in_(UNDECIDED))
                .order_by(_C.c.review_deadline).limit(batch)).scalars().all()
            # The earliest deadlines, changed (and so locked) in id order: the order a
            # processing batch locks its contacts in (``preload_contacts``), so that on
            # PostgreSQL the two never wait on each other in a cycle (a deadlock).
            done = sum(uow.quality.expire_review(contact_id, now)
                       for contact_id in sorted(ids))
        total += done
        if len(ids) < batch:
            break
    if total:
        log.info("review.expired", opted_out=total)
    return total


def next_deadline(engine: Engine) -> datetime | None:
    """The earliest pending review deadline (indexed), or None."""
    with Session(db.reader(engine)) as session:
        value = session.exec(select(sa.func.min(Contact.review_deadline)).where(
            col(Contact.status).in_(UNDECIDED))).one()
    return db.aware(value) if value is not None else None


# --- the digest --------------------------------------------------------------------------------

def _deadline(contact: Contact) -> datetime:
    assert contact.review_deadline is not None  # only suspected contacts are in a digest
    return db.aware(contact.review_deadline)


def compose_digest(*, account: Account, contacts: list[Contact], to: str, book: AddressBook,
                   from_name: str) -> bytes:
    """The review digest for one admin of one account. Pure."""
    first = min(_deadline(c) for c in contacts)
    when = first.strftime("%Y-%m-%d %H:%M UTC")
    n = len(contacts)
    rows = []
    for c in sorted(contacts, key=lambda c: (c.review_deadline, c.id)):
        name = f"{c.first_name} {c.last_name}".strip() or "-"
        why = "; ".join(c.quality_reasons or ())
        deadline = _deadline(c).strftime("%Y-%m-%d %H:%M UTC")
        rows.append(f"  #{c.id:<8} {name[:30]:<30} {c.email[:40]:<40} {deadline}  {why}")
    text = (
        f"These contacts of {account.name} were tagged \"SYSTEM - Suspected Invalid Contact\":"
        "\nthey look like a form bot made them. Each is opted out at its deadline unless you "
        "keep it.\n\n"
        "To keep a contact, reply to this mail with one line per contact:\n\n"
        "    KEEP <id>        (or NOT SPAM <id>)\n\n"
        "Contacts you do not name are opted out with reason suspected_invalid.\n\n"
        f"  {'id':<9} {'name':<30} {'email':<40} {'deadline':<20}  why\n"
        + "\n".join(rows) + "\n")
    return digest(
        to=to, reply_address=book.address(Box.REVIEW, account.id), from_name=from_name,
        subject=(f"{n} suspected contact{'s' if n != 1 else ''} of {account.name} will be "
                 f"opted out on {when} unless you keep them"),
        message_id=make_msgid("review", domain=book.domain), text=text)


def remind_due(engine: Engine, config, book: AddressBook, now: datetime | None = None
               ) -> list[int]:
    """Queue one digest per account (to each contact admin) naming its suspected contacts
    whose deadline is within ``[review] remind_before``; the ids of the queued mails."""
    now = now or utcnow()
    horizon = now + timedelta(seconds=config.review.remind_before)
    with unit_of_work(engine, SCHEDULER) as uow:
        if not db.try_lock(uow.session.connection(), "review.remind"):
            return []
        due = uow.session.connection().execute(sa.select(_C.c.id, _C.c.account_id).where(
            _C.c.review_deadline.is_not(None), _C.c.review_deadline <= horizon,
            _C.c.review_deadline > now, _C.c.reminded_at.is_(None),
            _C.c.status.in_(UNDECIDED))
            .order_by(_C.c.account_id, _C.c.review_deadline).limit(5000)).all()
        # Claimed (and so locked) in id order, as ``expire_due`` changes its contacts;
        # each account's digest still names them by deadline.
        claimed = set(uow.quality.claim_reminders(sorted(row.id for row in due), now))
        by_account: dict[int, list[int]] = defaultdict(list)
        for contact_id, account_id in due:
            if contact_id in claimed:
                by_account[account_id].append(contact_id)
        for account_id, ids in by_account.items():
            _remind_account(uow, account_id, ids, book, config.outbound.from_name)
        return list(uow.recorder.queued_mail)


def _remind_account(uow: UnitOfWork, account_id: int, ids: Iterable[int], book: AddressBook,
                    from_name: str) -> None:
    ids = list(ids)
    if not ids:
        return
    account = uow.accounts.get(account_id)
    contacts = uow.session.exec(select(Contact).where(col(Contact.id).in_(ids))).all()
    admins = uow.accounts.contact_admins(account_id)
    for admin in admins:
        raw = compose_digest(account=account, contacts=list(contacts), to=admin.email,
                             book=book, from_name=from_name)
        uow.mail.queue("review.digest", admin.email, raw)
    uow.recorder.record(events.REVIEW_REMINDED, "account", account_id, account_id,
                        contacts=len(ids), admins=len(admins))
