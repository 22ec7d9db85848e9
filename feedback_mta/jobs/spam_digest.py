"""The daily digest of leads flagged spam by their score (``flagged_via`` ``auto``).

Dealers who work from their inbox never open a review page: each day, each account's
contact admins get one mail listing the leads the system flagged since the last digest
(name, address, the first words of the comments, why). A reply with ``NOT SPAM <id>``
lines (``handlers.reply.handle_review``, under the same sender rules as every reply)
restores those leads: a label the model learns from, and the lead is notified and
exported as usual from then.

Each lead is named once: ``Leads.claim_digest`` sets ``digested_at`` by a conditional
UPDATE, and on PostgreSQL the run holds an advisory lock, so two nodes send one digest.
The digest's Message-ID starts with ``addresses.SPAM_DIGEST_ID``, which is how a reply to it is told
from a reply to the contact review digest (both go to ``review+TOKEN``).
"""

from __future__ import annotations

import secrets
from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import col, select

from feedback_mta import events, logs
from feedback_mta.actions import SCHEDULER, UnitOfWork, unit_of_work
from feedback_mta.actions.mail import digest
from feedback_mta.addresses import SPAM_DIGEST_ID, AddressBook, Box
from feedback_mta.config import Config
from feedback_mta.store import db
from feedback_mta.store.models import Account, Contact, Lead, LeadStatus, table_of, utcnow

log = logs.get(__name__)

_L = table_of(Lead)
WORDS = 12


def _first_words(text: str, n: int = WORDS) -> str:
    words = (text or "").split()
    return " ".join(words[:n]) + (" ..." if len(words) > n else "")


def compose(*, account: Account, leads: list[tuple[Lead, Contact]], to: str,
            book: AddressBook, from_name: str) -> bytes:
    """The spam digest for one admin of one account. Pure."""
    n = len(leads)
    rows = []
    for lead, contact in sorted(leads, key=lambda lc: lc[0].id or 0):
        name = f"{contact.first_name} {contact.last_name}".strip() or "-"
        why = "; ".join(lead.spam_reasons or ())
        rows.append(f"  #{lead.id:<8} {name[:30]:<30} {contact.email[:40]:<40}\n"
                    f"            \"{_first_words(lead.comments)}\"\n"
                    f"            why: {why} (score {lead.spam_score or 0:.2f})")
    text = (
        f"These new leads of {account.name} were flagged as spam automatically, so they "
        "were not forwarded or exported.\n\n"
        "To put a lead back among your leads, reply to this mail with one line per lead:\n\n"
        "    NOT SPAM <id>\n\n"
        "Leads you do not name stay flagged; each restore also teaches the filter.\n\n"
        + "\n".join(rows) + "\n")
    return digest(
        to=to, reply_address=book.address(Box.REVIEW, account.id), from_name=from_name,
        subject=(f"{n} lead{'s' if n != 1 else ''} of {account.name} flagged as spam "
                 "automatically: check them"),
        message_id=f"<{SPAM_DIGEST_ID}{account.id}.{secrets.token_hex(8)}@{book.domain}>",
        text=text)


def send(engine: Engine, config: Config, book: AddressBook, now: datetime | None = None
         ) -> list[int]:
    """Queue each account's digest of its automatically flagged leads not named yet; the
    ids of the queued mails."""
    now = now or utcnow()
    with unit_of_work(engine, SCHEDULER) as uow:
        if not db.try_lock(uow.session.connection(), "leads.digest"):
            return []
        due = uow.session.connection().execute(sa.select(_L.c.id, _L.c.account_id).where(
            _L.c.status == LeadStatus.SPAM.value, _L.c.flagged_via == "auto",
            _L.c.digested_at.is_(None)).order_by(_L.c.account_id, _L.c.id).limit(5000)).all()
        by_account: dict[int, list[int]] = defaultdict(list)
        for lead_id, account_id in due:
            by_account[account_id].append(lead_id)
        for account_id, ids in by_account.items():
            _send_account(uow, account_id, uow.leads.claim_digest(ids, now), book,
                          config.outbound.from_name)
        queued = list(uow.recorder.queued_mail)
    if queued:
        log.info("review.spam_digests", queued=len(queued))
    return queued


def _send_account(uow: UnitOfWork, account_id: int, ids: list[int], book: AddressBook,
                  from_name: str) -> None:
    if not ids:
        return
    account = uow.accounts.get(account_id)
    leads = uow.session.exec(select(Lead, Contact).join(
        Contact, col(Contact.id) == col(Lead.contact_id)).where(col(Lead.id).in_(ids))).all()
    admins = uow.accounts.contact_admins(account_id)
    for admin in admins:
        raw = compose(account=account, leads=[(lead, contact) for lead, contact in leads],
                      to=admin.email, book=book, from_name=from_name)
        uow.mail.queue("review.spam_digest", admin.email, raw)
    uow.recorder.record(events.REVIEW_SPAM_DIGEST_SENT, "account", account_id, account_id,
                        leads=len(ids), admins=len(admins))
