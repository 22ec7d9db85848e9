"""The contact check applied: known bad, suspected with a review deadline, verified,
engaged; suspect networks; the deadline's opt-out, decided by one conditional UPDATE.

``screen`` gathers the facts about a contact (its source IPs, the suspect networks, how many
names its address has across accounts), asks the pure ``quality.verdict.assess`` and makes
the contact what the verdict says. Everything that creates a contact calls it.
"""

from __future__ import annotations

import ipaddress
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from feedback_mta import events
from feedback_mta.actions.accounts import Accounts, normalize_email, normalize_ip
from feedback_mta.actions.audit import Invalid, Recorded, Recorder
from feedback_mta.actions.contacts import Contacts, preload_contacts
from feedback_mta.config import Config, QualityConfig
from feedback_mta.quality.verdict import (
    CROSS_ACCOUNT,
    EXPIRED_REASON,
    INVALID_REASON,
    INVALID_TAG,
    SUSPECTED_TAG,
    SYSTEM_TAGS,
    Engagement,
    Level,
    Policy,
    Submission,
    Verdict,
    assess,
    name_key,
)
from feedback_mta.store import db
from feedback_mta.store.models import (
    Contact,
    ContactStatus,
    Lead,
    SuspectNetwork,
    Tag,
    table_of,
    utcnow,
)
from feedback_mta.store.states import UNDECIDED


@dataclass
class ImportResult:
    """What a batch of ``import_contacts`` did: counts (created, existing, ok, suspected,
    invalid) and the refused rows as (line, why)."""

    counts: Counter[str] = field(default_factory=Counter)
    errors: list[tuple[int, str]] = field(default_factory=list)
    #: Each contact of the batch, and whether it was made now (its consent is recorded
    #: next: ``Registration.import_contacts``).
    contacts: list[tuple[Contact, bool]] = field(default_factory=list)


_C = table_of(Contact)
#: Which of an import's addresses its account has (not locked: ``import_contacts``).
_ACCOUNT_HAS = sa.select(_C.c.email).where(_C.c.account_id == sa.bindparam("b_account"),
                                     db.one_of(_C.c.email, "b_emails"))
_NETWORKS = sa.select(table_of(SuspectNetwork).c.cidr).order_by(table_of(SuspectNetwork).c.id)
#: Policies made, by (the config's ``[quality]``, the networks added): each registration
#: reads the networks (one short statement) and finds its policy made already, instead of
#: parsing every network again (a fifteenth of a registration's time).
_POLICIES: dict[tuple[QualityConfig, tuple[str, ...]], Policy] = {}


#: The transaction's policy (``policy``): (its transaction, the config's part, the policy).
_TRANSACTION_POLICY = "feedback_mta.policy"


def policy(session: Session, config: Config) -> Policy:
    """The config's quality policy plus the networks added with ``network add``; read once
    per transaction (the registrations committed together share one)."""
    session.connection()  # begun: outside a transaction there is none to key it by
    transaction = session.get_transaction()
    kept = session.info.get(_TRANSACTION_POLICY)
    if kept is not None and kept[0] is transaction and kept[1] is config.quality:
        made: Policy = kept[2]
        return made
    made = _policy(session, config)
    session.info[_TRANSACTION_POLICY] = (transaction, config.quality, made)
    return made


def _policy(session: Session, config: Config) -> Policy:
    cidrs = tuple(session.connection().execute(_NETWORKS).scalars())
    key = (config.quality, cidrs)
    made = _POLICIES.get(key)
    if made is None:
        if len(_POLICIES) >= 64:
            _POLICIES.clear()
        made = _POLICIES[key] = Policy.from_config(config, cidrs)
    return made


def verified_reasons(contact: Contact) -> list[str]:
    return list(contact.verified_reasons or ())


def source_ips(contact: Contact, lead_ips: Iterable[str | None]) -> tuple[str, ...]:
    """The contact's own source IP and its leads', once each, in order."""
    return tuple(dict.fromkeys(ip for ip in (contact.source_ip, *lead_ips) if ip))


def verdict_for(contact: Contact, pol: Policy, ips: tuple[str, ...],
                names_across_accounts: int) -> Verdict:
    """The verdict on a stored contact. Known bad is sticky: it stays what it was found."""
    if contact.quality == Level.INVALID:
        return Verdict(Level.INVALID, tuple(contact.quality_reasons or ()))
    return assess(Submission(contact.first_name, contact.last_name, contact.email, ips), pol,
                  names_across_accounts=names_across_accounts,
                  engaged=contact.engaged_at is not None, verified=verified_reasons(contact))


class Quality:
    """The contact check's decisions made real, in terms of ``contacts`` (tags, opt-outs),
    and the suspect networks it reads."""

    __slots__ = ("accounts", "contacts", "recorder", "session")

    def __init__(self, recorder: Recorder, accounts: Accounts, contacts: Contacts) -> None:
        self.recorder, self.session = recorder, recorder.session
        self.accounts, self.contacts = accounts, contacts

    def apply(self, contact: Contact, verdict: Verdict, deadline: datetime) -> bool:
        """Make the contact what the verdict says; True when something changed."""
        if verdict.level is Level.INVALID:
            return self.mark_invalid(contact, verdict.reasons)
        if verdict.level is Level.SUSPECTED:
            return self.mark_suspected(contact, verdict.reasons, deadline)
        self.mark_checked(contact)
        return False

    def screen(self, contact: Contact, pol: Policy, period: float,
               now: datetime | None = None) -> Verdict:
        """Check one contact as it arrives (or again, with a new lead) and act on the verdict.

        Known bad stays known bad: a later lead never opts it back in. When its address now
        has ``cross_account_threshold`` names across accounts, the other accounts' contacts
        with it are suspected too."""
        if contact.quality == Level.INVALID:
            return verdict_for(contact, pol, (), 0)
        same_address = list(self.session.exec(select(Contact).where(
            Contact.email == contact.email)).all())
        leads = self.session.exec(select(Lead.source_ip).where(
            Lead.contact_id == contact.id, col(Lead.source_ip).is_not(None))).all()
        deadline = (now or utcnow()) + timedelta(seconds=period)
        return self._judge(contact, pol, deadline, same_address, leads)

    def _judge(self, contact: Contact, pol: Policy, deadline: datetime,
               same_address: list[Contact], lead_ips: Iterable[str | None]) -> Verdict:
        """``screen`` once the facts are gathered (one contact, or a batch of an import)."""
        count = len({name_key(c.first_name, c.last_name) for c in same_address})
        verdict = verdict_for(contact, pol, source_ips(contact, lead_ips), count)
        self.apply(contact, verdict, deadline)
        if count >= pol.cross_account_threshold:
            for other in same_address:
                if (other.id != contact.id and other.engaged_at is None
                        and CROSS_ACCOUNT not in verified_reasons(other)):
                    self.mark_suspected(other, [CROSS_ACCOUNT], deadline)
        return verdict

    def import_contacts(self, account_id: int, rows: Sequence[tuple[int, Mapping[str, Any]]],
                        pol: Policy, period: float) -> ImportResult:
        """Add a batch of contacts (``contact import``) and check each as it arrives: what
        ``Contacts.add`` and ``screen`` do row by row, with one lookup per batch instead of
        several per row. A row with a bad address or IP is refused by its line number."""
        self.accounts.get(account_id)
        result = ImportResult()
        wanted: dict[str, tuple[str, str, str | None]] = {}
        for line, row in rows:
            try:
                email = normalize_email(str(row.get("email") or ""))
                ip = normalize_ip(row.get("ip"))
            except Invalid as exc:
                result.errors.append((line, str(exc)))
                continue
            if email in wanted:
                result.counts["existing"] += 1  # twice in the file: the first one counts
                continue
            wanted[email] = (str(row.get("first") or "").strip(),
                             str(row.get("last") or "").strip(), ip)
        if not wanted:
            return result
        emails = list(wanted)
        known = set(self.session.connection().execute(
            _ACCOUNT_HAS, {"b_account": account_id, "b_emails": emails}).scalars())
        new = [Contact(account_id=account_id, email=email, first_name=first, last_name=last,
                       source_ip=ip)
               for email, (first, last, ip) in wanted.items() if email not in known]
        self.session.add_all(new)
        self.session.flush()
        # Every contact the batch may change (the account's, the new ones with them, and
        # the other accounts' with these addresses, which ``_judge`` may suspect too) read
        # in one statement, locked in id order before any is changed and held to the end,
        # as a processing batch locks its own: taken one by one as the rows came, two
        # transactions could each hold one the other waits for (on PostgreSQL a deadlock).
        # After the INSERT: waiting there for another writer's new contact with one of
        # these addresses, the import holds none of the others yet.
        same_address = preload_contacts(self.session, emails=emails)
        made = set(map(id, new))
        found = {c.email: c for c in same_address
                 if c.account_id == account_id and id(c) not in made}
        for contact in new:
            self.recorder.record(events.CONTACT_CREATED, "contact", contact.id, account_id)
        result.counts["created"] += len(new)
        result.counts["existing"] += len(found)
        by_email: dict[str, list[Contact]] = defaultdict(list)
        for other in same_address:
            by_email[other.email].append(other)
        lead_ips: dict[int, list[str | None]] = defaultdict(list)
        if found:
            for contact_id, ip in self.session.exec(select(Lead.contact_id, Lead.source_ip).where(
                    col(Lead.contact_id).in_([c.id for c in found.values()]),
                    col(Lead.source_ip).is_not(None))):
                lead_ips[contact_id].append(ip)
        deadline = utcnow() + timedelta(seconds=period)
        result.contacts += [(c, False) for c in found.values()] + [(c, True) for c in new]
        for contact in [*found.values(), *new]:
            if contact.quality == Level.INVALID:
                verdict = verdict_for(contact, pol, (), 0)
            else:
                verdict = self._judge(contact, pol, deadline, by_email[contact.email],
                                      lead_ips[contact.id or 0])
            result.counts[verdict.level.value] += 1
        return result

    def mark_invalid(self, contact: Contact, reasons: Iterable[str]) -> bool:
        """Known bad: record why, tag it ``SYSTEM - Invalid Contact`` and opt it out
        (``invalid_contact``). Sticky: nothing but ``verify`` undoes it. False when it was
        invalid already."""
        self.recorder.lock(contact)
        if contact.quality == Level.INVALID:
            return False
        reasons = list(reasons)
        self._set_quality(contact, Level.INVALID, reasons)
        contact.review_deadline = None
        self.recorder.record(events.CONTACT_INVALID, "contact", contact.id, contact.account_id,
                             reasons=reasons)
        self.contacts.untag(contact, SUSPECTED_TAG)
        self.contacts.tag(contact, INVALID_TAG)
        self.contacts.opt_out(contact, INVALID_REASON)
        return True

    def mark_suspected(self, contact: Contact, reasons: Iterable[str],
                       deadline: datetime) -> bool:
        """Suspected: tag it ``SYSTEM - Suspected Invalid Contact`` with a review deadline.
        A contact already suspected keeps its deadline (new reasons are added); an opted-out
        or invalid one is left alone. False when nothing changed."""
        self.recorder.lock(contact)
        if contact.status == ContactStatus.OPTED_OUT or contact.quality == Level.INVALID:
            return False
        reasons = list(reasons)
        if contact.quality == Level.SUSPECTED and contact.review_deadline is not None:
            known = list(contact.quality_reasons or ())
            new = [r for r in reasons if r not in known]
            if not new:
                return False
            self._set_quality(contact, Level.SUSPECTED, known + new)
            self.recorder.record(events.CONTACT_SUSPECTED, "contact", contact.id,
                                 contact.account_id, reasons=new,
                                 review_deadline=str(contact.review_deadline))
            return True
        self._set_quality(contact, Level.SUSPECTED, reasons)
        contact.review_deadline = deadline
        contact.reminded_at = None
        self.recorder.record(events.CONTACT_SUSPECTED, "contact", contact.id, contact.account_id,
                             reasons=reasons, review_deadline=deadline.isoformat())
        self.contacts.tag(contact, SUSPECTED_TAG)
        return True

    def mark_checked(self, contact: Contact) -> None:
        """The check found nothing: record that it ran (no event: nothing changed)."""
        if contact.quality is None:
            contact.quality = Level.OK
            contact.quality_reasons = []
            self.session.add(contact)

    def _set_quality(self, contact: Contact, level: Level, reasons: list[str]) -> None:
        contact.quality = level
        contact.quality_reasons = list(reasons)
        contact.updated_at = utcnow()
        self.session.add(contact)

    def verify(self, contact: Contact) -> bool:
        """An admin says this is a real person: take the system tags off, drop the deadline,
        remember the reasons so they do not tag it again, and undo an opt-out the quality
        check made. False when it was verified and untagged already."""
        self.recorder.lock(contact)
        had_tags = [t for t in SYSTEM_TAGS if t in self.contacts.tags(contact)]
        if contact.verified_at is not None and not had_tags and contact.review_deadline is None:
            return False
        reasons = list(contact.quality_reasons or ())
        seen = verified_reasons(contact)
        contact.verified_at = contact.updated_at = utcnow()
        contact.verified_by = self.recorder.actor.name
        contact.verified_reasons = seen + [r for r in reasons if r not in seen]
        contact.review_deadline = None
        contact.quality = Level.OK
        self.session.add(contact)
        self.recorder.record(events.CONTACT_VERIFIED, "contact", contact.id, contact.account_id,
                             reasons=reasons)
        for name in had_tags:
            self.contacts.untag(contact, name)
        if contact.opt_out_reason in (INVALID_REASON, EXPIRED_REASON):
            self.contacts.opt_in(contact, "verified")
        return True

    def engage(self, contact: Contact, kind: Engagement) -> bool:
        """Record a purchase, double opt-in, open or click. An engaged contact is never
        called bad: a pending suspicion is cleared. False when this kind was known."""
        self.recorder.lock(contact)
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
        self.recorder.record(events.CONTACT_ENGAGED, "contact", contact.id, contact.account_id,
                             kind=kind.value, cleared_suspicion=cleared)
        if cleared:
            self.contacts.untag(contact, SUSPECTED_TAG)
        return True

    def expire_review(self, contact_id: int, now: datetime) -> bool:
        """Opt out one suspected contact whose review deadline passed (reason
        ``suspected_invalid``), if it still is one: active, tagged, not verified, not
        engaged. One conditional UPDATE decides, so two schedulers (two nodes) racing for
        the same contact opt it out once: the second finds nothing left to update."""
        table = table_of(Contact)
        row = self.session.connection().execute(
            sa.select(table.c.account_id, table.c.review_deadline)
            .where(table.c.id == contact_id)).first()
        if row is None:
            return False
        tags = table_of(Tag)
        tagged = sa.exists().where(tags.c.contact_id == table.c.id, tags.c.name == SUSPECTED_TAG)
        done = self.session.connection().execute(
            sa.update(table).where(
                table.c.id == contact_id, table.c.review_deadline <= now,
                table.c.status.in_(UNDECIDED), table.c.verified_at.is_(None),
                table.c.engaged_at.is_(None), tagged)
            .values(status=ContactStatus.OPTED_OUT.value, opt_out_reason=EXPIRED_REASON,
                    opted_out_at=now, updated_at=now, review_deadline=None)).rowcount
        if done != 1:
            return False
        self.recorder.record(events.CONTACT_OPTED_OUT, "contact", contact_id, row.account_id,
                             reason=EXPIRED_REASON, review_deadline=str(row.review_deadline))
        return True

    def claim_reminders(self, contact_ids: Iterable[int], now: datetime) -> list[int]:
        """Mark contacts as named in a digest; only those no other run named already."""
        table = table_of(Contact)
        claimed = []
        for contact_id in contact_ids:
            if self.session.connection().execute(sa.update(table).where(
                    table.c.id == contact_id, table.c.reminded_at.is_(None),
                    table.c.review_deadline.is_not(None)).values(reminded_at=now)).rowcount:
                claimed.append(contact_id)
        return claimed

    def refuse_review(self, reason: str, account_id: int, **data: Any) -> Recorded:
        """Record a reply to a review digest that was not allowed to act, and why."""
        return self.recorder.record(events.REVIEW_REFUSED, "account", account_id, account_id,
                                    reason=reason, **data)

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
        row = SuspectNetwork(cidr=cidr, note=note, created_by=self.recorder.actor.name)
        self.session.add(row)
        self.session.flush()
        self.recorder.record(events.NETWORK_ADDED, "network", row.id, None, cidr=cidr, note=note)
        return row, True

    def remove_network(self, cidr: str) -> bool:
        cidr, row = self._network(cidr)
        if row is None:
            return False
        self.session.delete(row)
        self.session.flush()
        self.recorder.record(events.NETWORK_REMOVED, "network", row.id, None, cidr=cidr)
        return True
