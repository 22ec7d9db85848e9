"""Contact review: the quality verdict applied to contacts, and the review deadline kept.

Where contacts come from (``lead add``, ``contact add``, ``contact import``) they pass
through ``screen``, which gathers the facts (the contact's source IPs, the suspect networks,
how many names its address has across accounts), asks ``quality.assess`` and applies the
verdict through ``actions``. ``classify_all`` does the same for every existing contact.

The scheduler (inside ``serve``) calls ``expire_due``: every suspected contact whose deadline
passed, still tagged, not verified and not engaged, is opted out (``suspected_invalid``).
Deadlines added by another process (the CLI) are found by the periodic check; the next one
is also scheduled to the second. A deadline that passed while no server ran is caught up at
start. Each contact is opted out by one conditional UPDATE (``Actions.expire_review``), and
on PostgreSQL the run holds an advisory lock, so two nodes opt each contact out once.

``remind_due`` sends each account's contact admins one digest of the contacts whose deadline
is near; a reply ``KEEP <id>`` (``reply.handle_review``) verifies them.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, formataddr, make_msgid

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from feedback_mta import db, logs
from feedback_mta.actions import SCHEDULER, Actions, Actor, unit_of_work
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.models import Account, Contact, ContactStatus, Lead, SuspectNetwork, User, utcnow
from feedback_mta.quality import (
    CROSS_ACCOUNT,
    Level,
    Policy,
    Submission,
    Verdict,
    assess,
    name_key,
)

log = logs.get("feedback_mta.review")

#: Phrases of the digest's own instructions: where one shows up in a reply, the quoted
#: digest starts, so its "KEEP <id>" example never counts.
DIGEST_MARKERS = ("to keep a contact, reply", "contacts you do not name")


def policy(session: Session, config) -> Policy:
    """The config's quality policy plus the networks added with ``network add``."""
    return Policy.from_config(config, session.exec(select(SuspectNetwork.cidr)).all())


def _verified(contact: Contact) -> list[str]:
    return json.loads(contact.verified_reasons or "[]")


def _names_across_accounts(session: Session, email: str) -> tuple[int, list[Contact]]:
    """How many different names the address has among all accounts, and those contacts."""
    rows = session.exec(select(Contact).where(Contact.email == email)).all()
    return len({name_key(c.first_name, c.last_name) for c in rows}), list(rows)


def _source_ips(contact: Contact, lead_ips: Iterable[str]) -> tuple[str, ...]:
    """The contact's own source IP and its leads', once each, in order."""
    return tuple(dict.fromkeys(ip for ip in (contact.source_ip, *lead_ips) if ip))


def verdict_for(contact: Contact, pol: Policy, ips: tuple[str, ...],
                names_across_accounts: int) -> Verdict:
    """The verdict on a stored contact. Known bad is sticky: it stays what it was found."""
    if contact.quality == Level.INVALID:
        return Verdict(Level.INVALID, tuple(json.loads(contact.quality_reasons or "[]")))
    return assess(Submission(contact.first_name, contact.last_name, contact.email, ips), pol,
                  names_across_accounts=names_across_accounts,
                  engaged=contact.engaged_at is not None, verified=_verified(contact))


def apply(act: Actions, contact: Contact, verdict: Verdict, deadline: datetime) -> bool:
    """Make the contact what the verdict says; True when something changed."""
    if verdict.level is Level.INVALID:
        return act.mark_invalid(contact, verdict.reasons)
    if verdict.level is Level.SUSPECTED:
        return act.mark_suspected(contact, verdict.reasons, deadline)
    act.mark_checked(contact)
    return False


def screen(act: Actions, contact: Contact, pol: Policy, period: float,
           now: datetime | None = None) -> Verdict:
    """Check one contact as it arrives (or again, with a new lead) and act on the verdict.

    Known bad stays known bad: a later lead never opts it back in. When its address now has
    ``cross_account_threshold`` names across accounts, the other accounts' contacts with it
    are suspected too."""
    now = now or utcnow()
    if contact.quality == Level.INVALID:
        return verdict_for(contact, pol, (), 0)
    count, same_address = _names_across_accounts(act.session, contact.email)
    leads = act.session.exec(select(Lead.source_ip).where(Lead.contact_id == contact.id,
                                                          Lead.source_ip.is_not(None))).all()
    verdict = verdict_for(contact, pol, _source_ips(contact, leads), count)
    deadline = now + timedelta(seconds=period)
    apply(act, contact, verdict, deadline)
    if count >= pol.cross_account_threshold:
        for other in same_address:
            if (other.id != contact.id and other.engaged_at is None
                    and CROSS_ACCOUNT not in _verified(other)):
                act.mark_suspected(other, [CROSS_ACCOUNT], deadline)
    return verdict


def classify_all(engine: Engine, config, *, account: int | None = None, actor: Actor,
                 progress: Callable[[int], None] | None = None, batch: int = 500) -> dict:
    """Check every contact (of one account, or all) as if it arrived now; a summary.

    Cross-account counts are computed once for every address in enough accounts, not per
    contact, so a million contacts take minutes, not hours."""
    now = utcnow()
    levels: Counter = Counter()
    reasons: Counter = Counter()
    changed = checked = 0
    with Session(db.reader(engine)) as session:
        pol = policy(session, config)
        total = session.exec(select(sa.func.count()).select_from(Contact).where(
            *(() if account is None else (Contact.account_id == account,)))).one()
        multi = session.exec(select(Contact.email).group_by(Contact.email).having(
            sa.func.count(sa.distinct(Contact.account_id))
            >= pol.cross_account_threshold)).all()
        names: dict[str, set[str]] = defaultdict(set)
        for start in range(0, len(multi), 500):
            for c in session.exec(select(Contact.email, Contact.first_name, Contact.last_name)
                                  .where(Contact.email.in_(multi[start:start + 500]))).all():
                names[c.email].add(name_key(c.first_name, c.last_name))
    deadline = now + timedelta(seconds=config.review.period)
    last_id = 0
    while True:
        with unit_of_work(engine, actor) as act:
            query = select(Contact).where(Contact.id > last_id)
            if account is not None:
                query = query.where(Contact.account_id == account)
            contacts = act.session.exec(query.order_by(Contact.id).limit(batch)).all()
            if not contacts:
                break
            ids = [c.id for c in contacts]
            lead_ips: dict[int, list[str]] = defaultdict(list)
            for cid, ip in act.session.exec(select(Lead.contact_id, Lead.source_ip).where(
                    Lead.contact_id.in_(ids), Lead.source_ip.is_not(None))).all():
                lead_ips[cid].append(ip)
            for contact in contacts:
                verdict = verdict_for(contact, pol, _source_ips(contact, lead_ips[contact.id]),
                                      len(names.get(contact.email, ())))
                changed += apply(act, contact, verdict, deadline)
                levels[verdict.level.value] += 1
                reasons.update(verdict.reasons)
            checked += len(contacts)
            last_id = ids[-1]
        if progress is not None:
            progress(len(contacts))
    summary = {"checked": checked, "total": total, "changed": changed,
               **{level.value: levels.get(level.value, 0) for level in Level},
               "reasons": dict(reasons.most_common())}
    log.info("review.classified", account_id=account, **{k: v for k, v in summary.items()
                                                          if k != "reasons"})
    return summary


# --- the deadline ----------------------------------------------------------------------------

def expire_due(engine: Engine, now: datetime | None = None, batch: int = 500) -> int:
    """Opt out every suspected contact whose deadline has passed; how many were."""
    now = now or utcnow()
    total = 0
    while True:
        with unit_of_work(engine, SCHEDULER) as act:
            if not db.try_lock(act.session.connection(), "review.expire"):
                return total  # another node is at it right now
            ids = act.session.exec(select(Contact.id).where(
                Contact.review_deadline <= now,
                Contact.status == ContactStatus.ACTIVE.value)
                .order_by(Contact.review_deadline).limit(batch)).all()
            done = sum(act.expire_review(contact_id, now) for contact_id in ids)
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
            Contact.status == ContactStatus.ACTIVE.value)).one()
    return db.aware(value) if value is not None else None


# --- the digest --------------------------------------------------------------------------------

def compose_digest(*, account: Account, contacts: list[Contact], to: str, book: AddressBook,
                   from_name: str) -> bytes:
    """The review digest for one admin of one account. Pure."""
    first = min(db.aware(c.review_deadline) for c in contacts)
    when = first.strftime("%Y-%m-%d %H:%M UTC")
    msg = EmailMessage()
    reply_to = book.address(Box.REVIEW, account.id)
    msg["From"] = formataddr((from_name, reply_to))
    msg["To"] = to
    n = len(contacts)
    msg["Subject"] = (f"{n} suspected contact{'s' if n != 1 else ''} of {account.name} will "
                      f"be opted out on {when} unless you keep them")
    msg["Date"] = format_datetime(utcnow())
    msg["Message-ID"] = make_msgid("review", domain=book.domain)
    msg["Auto-Submitted"] = "auto-generated"
    msg["X-Auto-Response-Suppress"] = "OOF, AutoReply"
    rows = []
    for c in sorted(contacts, key=lambda c: (c.review_deadline, c.id)):
        name = f"{c.first_name} {c.last_name}".strip() or "-"
        why = "; ".join(json.loads(c.quality_reasons or "[]"))
        deadline = db.aware(c.review_deadline).strftime("%Y-%m-%d %H:%M UTC")
        rows.append(f"  #{c.id:<8} {name[:30]:<30} {c.email[:40]:<40} {deadline}  {why}")
    body = (
        f"These contacts of {account.name} were tagged \"SYSTEM - Suspected Invalid Contact\":"
        "\nthey look like a form bot made them. Each is opted out at its deadline unless you "
        "keep it.\n\n"
        "To keep a contact, reply to this mail with one line per contact:\n\n"
        "    KEEP <id>        (or NOT SPAM <id>)\n\n"
        "Contacts you do not name are opted out with reason suspected_invalid.\n\n"
        f"  {'id':<9} {'name':<30} {'email':<40} {'deadline':<20}  why\n"
        + "\n".join(rows) + "\n")
    msg.set_content(body)
    return bytes(msg)


def remind_due(engine: Engine, config, book: AddressBook, now: datetime | None = None
               ) -> list[int]:
    """Queue one digest per account (to each contact admin) naming its suspected contacts
    whose deadline is within ``[review] remind_before``; the ids of the queued mails."""
    now = now or utcnow()
    horizon = now + timedelta(seconds=config.review.remind_before)
    with unit_of_work(engine, SCHEDULER) as act:
        if not db.try_lock(act.session.connection(), "review.remind"):
            return []
        due = act.session.exec(select(Contact.id, Contact.account_id).where(
            Contact.review_deadline.is_not(None), Contact.review_deadline <= horizon,
            Contact.review_deadline > now, Contact.reminded_at.is_(None),
            Contact.status == ContactStatus.ACTIVE.value)
            .order_by(Contact.account_id, Contact.review_deadline).limit(5000)).all()
        by_account: dict[int, list[int]] = defaultdict(list)
        for contact_id, account_id in due:
            by_account[account_id].append(contact_id)
        for account_id, ids in by_account.items():
            _remind_account(act, account_id, act.claim_reminders(ids, now), book,
                            config.outbound.from_name)
        return list(act.queued_mail)


def _remind_account(act: Actions, account_id: int, ids: Iterable[int], book: AddressBook,
                    from_name: str) -> None:
    ids = list(ids)
    if not ids:
        return
    account = act.account(account_id)
    contacts = act.session.exec(select(Contact).where(Contact.id.in_(ids))).all()
    admins = [u for u in act.session.exec(select(User).where(User.account_id == account_id))
              if "contact-admin" in u.role_set]
    for admin in admins:
        raw = compose_digest(account=account, contacts=list(contacts), to=admin.email,
                             book=book, from_name=from_name)
        act.queue_mail("review.digest", admin.email, raw)
    act.record("review.reminded", "account", account_id, account_id, contacts=len(ids),
               admins=len(admins))
