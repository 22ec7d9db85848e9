"""A lead or contact registered by the platform (``lead add``, ``POST /v1/leads``, ...):
created, then screened as it arrives. One place, so the command line and the API answer
the same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from feedback_mta.actions import accounts
from feedback_mta.actions.accounts import check_text, normalize_email, normalize_ip
from feedback_mta.actions.audit import SYSTEM, Invalid, Recorder
from feedback_mta.actions.behaviour import Behaviour
from feedback_mta.actions.consent import Consent, ConsentIn, consented, given
from feedback_mta.actions.contacts import Contacts
from feedback_mta.actions.leads import Leads, NewLead
from feedback_mta.actions.learning import Learning
from feedback_mta.actions.quality import ImportResult, Quality, policy
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.quality import spam
from feedback_mta.quality.spam import SpamScore
from feedback_mta.quality.verdict import Level, Policy, Submission, Verdict, assess, name_key
from feedback_mta.store.models import Contact, Lead, utcnow
from feedback_mta.store.states import ConsentMethod, ContactStatus


def read_comments(config: Config, text: str) -> spam.Comments:
    """A lead's comments, checked and read (``spam.read``: the part of scoring that grows
    with them) before the lead's unit of work begins, so that no write lock is held
    meanwhile; ``Invalid`` naming ``comments`` past ``[http] max_comment_bytes``."""
    limit = config.http.max_comment_bytes
    # Characters first: a text longer in characters is longer in bytes, unencoded.
    if len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit:
        raise Invalid(f"comments: longer than {limit} bytes (UTF-8); "
                      "[http] max_comment_bytes")
    return spam.read(text)


def check_ahead(engine: Engine, account_id: int, email: str, first: str, last: str,
                ip: str | None) -> None:
    """What a registration (``add_lead``, ``add_contact``) is refused for without the
    database, checked before its unit of work begins (``Invalid``): its names and, once the
    account is known to exist (``accounts.known``), its address and IP. A refusal in the
    unit of work costs the batch it is committed with a second run (``together``).
    ``_arrived`` checks again, cheaply, in its own order: an unknown account is refused
    before a bad address, and this keeps that order by leaving the address to it then."""
    check_text("first", first), check_text("last", last)
    if accounts.known(engine, account_id):
        normalize_email(email), normalize_ip(ip)


def flagging(config: Config) -> spam.Flagging:
    """``[leads]``'s threshold and false-flag budget."""
    leads = config.leads
    return spam.Flagging(leads.auto_flag_threshold, leads.false_flag_budget,
                         leads.restored_share)


@dataclass(frozen=True, slots=True)
class Registered:
    """A lead as registered: the lead, its contact's id and status, the verdict on it."""

    lead: NewLead
    contact_id: int
    contact_status: str
    verdict: Verdict


class Registration:
    """What the platform registers, created and judged at once: the contact screened
    (``quality``), the lead scored (``learning``, ``behaviour``) and flagged from the
    threshold on (``leads``)."""

    __slots__ = ("behaviour", "consent", "contacts", "leads", "learning", "quality",
                 "recorder", "session")

    def __init__(self, recorder: Recorder, contacts: Contacts, leads: Leads,
                 quality: Quality, learning: Learning, behaviour: Behaviour,
                 consent: Consent) -> None:
        self.recorder, self.session = recorder, recorder.session
        self.contacts, self.leads, self.quality = contacts, leads, quality
        self.learning, self.behaviour, self.consent = learning, behaviour, consent

    def add_lead(self, config: Config, account_id: int, email: str, first: str,
                 last: str, ip: str | None, comments: spam.Comments,
                 consent: ConsentIn | None = None,
                 default_method: str = ConsentMethod.UNKNOWN) -> Registered:
        """The new lead (of the contact, created if new), its contact's status and the
        verdict on it. ``comments``: ``read_comments``, called before the unit of work
        begins; ``consent`` and ``default_method``: ``record_consent``. A pending contact's
        lead is registered all the same: the lead exists, the contact is only not mailed.

        Prepared Core statements, not the ORM's flushes: a new contact is one INSERT made
        with its consent and its verdict (``_new_contact``), the lead one INSERT and one
        UPDATE with its Message-ID and score. A contact known already, or one the check
        suspects or finds bad, is screened through the ORM as before (``Quality.screen``:
        tags, opt-outs, the other accounts' contacts)."""
        sub, pol, same, known = self._arrived(config, account_id, email, first, last, ip)
        email, first, last, ip = sub.email, sub.first, sub.last, (sub.ips or (None,))[0]
        contact: Contact | None = None
        status = ""
        verdict: Verdict | None = None
        if known is not None:
            contact = self.contacts.get(known)
            self.record_consent(config, contact, False, consent, default_method)
            contact_id = known
        else:
            contact_id, status, verdict = self._new_contact(
                config, pol, account_id, email, first, last, ip, same, consent,
                default_method)
        lead = self.leads.insert(AddressBook.from_config(config), account_id, contact_id, ip,
                                 comments.text)
        if verdict is None:  # known already, or more to do than a verdict of ok
            contact = contact or self.contacts.get(contact_id)
            verdict = self.quality.screen(contact, pol, config.review.period)
            email, first, last = contact.email, contact.first_name, contact.last_name
        self.score_new_lead(lead, email, first, last, verdict, comments, flagging(config))
        return Registered(lead, contact_id, str(contact.status if contact else status),
                          verdict)

    def _arrived(self, config: Config, account_id: int, email: str, first: str, last: str,
                 ip: str | None) -> tuple[Submission, Policy, list[Any], int | None]:
        """What a registration is given, checked as ``Contacts.add`` checks it and in its
        order (``Invalid``, ``NotFound``), with what it is judged by: the policy, every
        account's contact with the address (``Contacts.same_address``) and the id of the
        account's own (None: a new contact)."""
        first, last = check_text("first", first).strip(), check_text("last", last).strip()
        self.contacts.accounts.check(account_id)
        email, ip = normalize_email(email), normalize_ip(ip)
        pol = policy(self.session, config)
        same = self.contacts.same_address(email)
        known = next((row.id for row in same if row.account_id == account_id), None)
        return Submission(first, last, email, (ip,) if ip else ()), pol, same, known

    def _new_contact(self, config: Config, pol: Policy, account_id: int, email: str,
                     first: str, last: str, ip: str | None, same: list[Any],
                     consent: ConsentIn | None, default_method: str
                     ) -> tuple[int, str, Verdict | None]:
        """A contact the account does not have, made in one INSERT with its consent
        (``record_consent``'s) and, when the check finds nothing, its ``ok`` verdict
        (``Quality.mark_checked``'s): (its id, its status, the verdict). Any other verdict,
        or an address under ``cross_account_threshold`` names across accounts, is
        ``Quality.screen``'s (tags, opt-outs, the other accounts' contacts): the verdict is
        then None. Its source IP is its lead's, if it is given one. The events are
        ``Contacts.add``'s and ``Consent.record``'s, in their order."""
        now = utcnow()
        values: dict[str, Any] = {
            "account_id": account_id, "email": email, "first_name": first,
            "last_name": last, "source_ip": ip, "status": ContactStatus.ACTIVE.value,
            "engagement": "", "consent_method": ConsentMethod.UNKNOWN.value,
            "consent_source": "", "created_at": now, "updated_at": now}
        consent = given(consent, default_method, new=True)
        if consent is not None:
            consent = consent.checked()
            values.update(consented(
                consent, pending=consent.method in config.consent.confirm_methods,
                confirm_within=config.consent.confirm_within, now=now))
        names = len({name_key(first, last), *(name_key(row.first_name, row.last_name)
                                               for row in same)})
        verdict = assess(Submission(first, last, email, (ip,) if ip else ()), pol,
                         names_across_accounts=names)
        checked = verdict.level is Level.OK and names < pol.cross_account_threshold
        if checked:
            values["quality"], values["quality_reasons"] = Level.OK.value, []
        contact_id = self.contacts.insert(values)
        if consent is not None:
            self.consent.recorded(contact_id, account_id, values)
        return contact_id, values["status"], verdict if checked else None

    def score_new_lead(self, lead: NewLead, email: str, first: str, last: str,
                       verdict: Verdict, comments: spam.Comments, flagging: spam.Flagging
                       ) -> SpamScore:
        """What ``add_lead`` does to score the lead it just inserted: the score
        (``_score``), written with its Message-ID in one UPDATE and, from ``flagging``'s
        threshold on, the system's flag (``Leads.scored``). ``comments``:
        ``read_comments``'s, outside the transaction. (``bench/lead_spam.py`` times it.)"""
        found, flag, features = self._score(lead, email, first, last, verdict, comments,
                                            flagging)
        self.leads.scored(lead, found.score, found.reasons, flag, features)
        return found

    def score_lead(self, lead: Lead, contact: Contact, verdict: Verdict,
                   flagging: spam.Flagging, comments: spam.Comments | None = None
                   ) -> SpamScore:
        """Score the new lead (``quality.spam``: the rules, and what people's flags and
        restores taught) and, from ``flagging``'s threshold on (moved by the restores), flag
        it as the system (``flagged_via`` ``auto``, the event a dealer's flag writes):
        before the platform forwards or exports it. A known-bad contact's lead is always
        flagged. ``comments``: the lead's comments read already (``spam.read``), outside
        the transaction."""
        found, flag, _ = self._score(lead, contact.email, contact.first_name,
                                     contact.last_name, verdict, comments, flagging)
        lead.spam_score, lead.spam_reasons = found.score, list(found.reasons)
        self.session.add(lead)
        if flag:
            with self.recorder.acting_as(SYSTEM):
                self.leads.flag_spam(lead, score=found.score, reasons=list(found.reasons))
        return found

    def _score(self, lead: Lead | NewLead, email: str, first: str, last: str,
               verdict: Verdict, comments: spam.Comments | None, flagging: spam.Flagging
               ) -> tuple[SpamScore, bool, list[str]]:
        """The lead's score, read and counted (``learning``, ``behaviour``), not written,
        whether it is to be flagged (``flagging``'s threshold now, from the counts read)
        and the model's features of it (what a flag counts: ``spam.features`` of the lead
        and the score's reasons, which are these features' reasons and the behaviour's and
        the model's, neither of which is a feature)."""
        text = comments if comments is not None else spam.read(lead.comments)
        content = spam.LeadFacts(lead.comments, email, verdict.level.value,
                                 tuple(verdict.reasons), first, last)
        said, features = spam.what_it_says(content, text)
        platform, account = self.learning.counts(lead.account_id, features)
        found = spam.judge(replace(
            content, **self.behaviour.facts(lead, email,  # type: ignore[arg-type]
                                            text.bands)), text, said, platform, account)
        self.learning.learn(lead.account_id, features, seen=1)
        return found, found.flagged(flagging.threshold(platform, account)), features

    def record_consent(self, config: Config, contact: Contact, created: bool,
                       consent: ConsentIn | None, default_method: str) -> bool:
        """How the contact came (``Consent.record``), what ``consent.given`` says is to be
        recorded (nothing for an existing contact given nothing: its record neither read nor
        locked, the lead registration's hot path costs nothing more then)."""
        consent = given(consent, default_method, created)
        if consent is None:
            return False  # nothing known: the record stays as it is
        return self.consent.record(contact, consent, new=created,
                                   confirm_methods=config.consent.confirm_methods,
                                   confirm_within=config.consent.confirm_within)

    def add_contact(self, config: Config, account_id: int, email: str, first: str = "",
                    last: str = "", ip: str | None = None, consent: ConsentIn | None = None,
                    default_method: str = ConsentMethod.UNKNOWN
                    ) -> tuple[Contact | sa.Row[Any], bool]:
        """The contact (created if new, screened either way) and whether it was new, with
        its consent (``record_consent``). A new one the check finds nothing against is made
        in one INSERT (``_new_contact``) and given as a row of ``tables.CONTACT``; any
        other as a ``Contact``, screened through the ORM (``Quality.screen``)."""
        sub, pol, same, known = self._arrived(config, account_id, email, first, last, ip)
        email, first, last, ip = sub.email, sub.first, sub.last, (sub.ips or (None,))[0]
        if known is None:
            contact_id, _, verdict = self._new_contact(config, pol, account_id, email, first,
                                                       last, ip, same, consent,
                                                       default_method)
            if verdict is not None:
                return self.contacts.row(contact_id), True
            contact = self.contacts.get(contact_id)
        else:
            contact = self.contacts.get(known)
            self.record_consent(config, contact, False, consent, default_method)
        self.quality.screen(contact, pol, config.review.period)
        return contact, known is None

    def import_contacts(self, config: Config, account_id: int,
                        rows: Sequence[tuple[int, Mapping[str, Any]]],
                        consent: ConsentIn) -> ImportResult:
        """A batch of ``contact import`` (``Quality.import_contacts``: made and checked),
        each contact's consent recorded (``pending`` counts those now waiting for the
        person's confirmation). The consent is checked before any row is."""
        consent = consent.checked()
        result = self.quality.import_contacts(account_id, rows, policy(self.session, config),
                                              config.review.period)
        for contact, created in result.contacts:
            self.record_consent(config, contact, created, consent, consent.method)
        result.counts["pending"] += sum(1 for c, _ in result.contacts
                                        if c.status == ContactStatus.PENDING)
        return result
