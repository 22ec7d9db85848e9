"""A lead or contact registered by the platform (``lead add``, ``POST /v1/leads``, ...):
created, then screened as it arrives. One place, so the command line and the API answer
the same."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from feedback_mta.actions.audit import SYSTEM, Invalid, Recorder
from feedback_mta.actions.behaviour import Behaviour
from feedback_mta.actions.consent import Consent, ConsentIn
from feedback_mta.actions.contacts import Contacts
from feedback_mta.actions.leads import Leads
from feedback_mta.actions.learning import Learning
from feedback_mta.actions.quality import ImportResult, Quality, policy
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.quality import spam
from feedback_mta.quality.spam import SpamScore
from feedback_mta.quality.verdict import Verdict
from feedback_mta.store.models import Contact, Lead
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


def flagging(config: Config) -> spam.Flagging:
    """``[leads]``'s threshold and false-flag budget."""
    leads = config.leads
    return spam.Flagging(leads.auto_flag_threshold, leads.false_flag_budget,
                         leads.restored_share)


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
                 default_method: str = ConsentMethod.UNKNOWN) -> tuple[Lead, Contact, Verdict]:
        """The new lead (of the contact, created if new), its contact and the verdict on it.
        ``comments``: ``read_comments``, called before the unit of work begins; ``consent``
        and ``default_method``: ``record_consent``. A pending contact's lead is registered
        all the same: the lead exists, the contact is only not mailed."""
        contact, created = self.contacts.add(account_id, email, first, last, ip)
        self.record_consent(config, contact, created, consent, default_method)
        lead = self.leads.add_for(AddressBook.from_config(config), contact, ip, comments.text)
        verdict = self.quality.screen(contact, policy(self.session, config),
                                      config.review.period)
        self.score_lead(lead, contact, verdict, flagging(config), comments)
        return lead, contact, verdict

    def score_lead(self, lead: Lead, contact: Contact, verdict: Verdict,
                   flagging: spam.Flagging, comments: spam.Comments | None = None
                   ) -> SpamScore:
        """Score the new lead (``quality.spam``: the rules, and what people's flags and
        restores taught) and, from ``flagging``'s threshold on (moved by the restores), flag
        it as the system (``flagged_via`` ``auto``, the event a dealer's flag writes):
        before the platform forwards or exports it. A known-bad contact's lead is always
        flagged. ``comments``: the lead's comments read already (``spam.read``), outside
        the transaction."""
        text = comments if comments is not None else spam.read(lead.comments)
        content = spam.LeadFacts(lead.comments, contact.email, verdict.level.value,
                                 tuple(verdict.reasons), contact.first_name, contact.last_name)
        said, features = spam.what_it_says(content, text)
        platform, account = self.learning.counts(lead.account_id, features)
        found = spam.judge(replace(
            content, **self.behaviour.facts(lead, contact.email,  # type: ignore[arg-type]
                                            text.bands)), text, said, platform, account)
        self.learning.learn(lead.account_id, features, seen=1)
        lead.spam_score, lead.spam_reasons = found.score, list(found.reasons)
        self.session.add(lead)
        if found.flagged(flagging.threshold(platform, account)):
            with self.recorder.acting_as(SYSTEM):
                self.leads.flag_spam(lead, score=found.score, reasons=list(found.reasons))
        return found

    def record_consent(self, config: Config, contact: Contact, created: bool,
                       consent: ConsentIn | None, default_method: str) -> bool:
        """How the contact came (``Consent.record``): as given; a ``created`` one given
        nothing came by ``default_method`` (``api`` over HTTP; on the command line
        ``unknown``, which leaves the record as the migrated contacts have it). An existing
        contact given nothing keeps its record, neither read nor locked: the lead
        registration's hot path costs nothing more then."""
        if consent is None:
            if not created or default_method == ConsentMethod.UNKNOWN:
                return False  # nothing known: the record stays as it is (``unknown``)
            consent = ConsentIn(default_method)
        return self.consent.record(contact, consent, new=created,
                                   confirm_methods=config.consent.confirm_methods,
                                   confirm_within=config.consent.confirm_within)

    def add_contact(self, config: Config, account_id: int, email: str, first: str = "",
                    last: str = "", ip: str | None = None, consent: ConsentIn | None = None,
                    default_method: str = ConsentMethod.UNKNOWN) -> tuple[Contact, bool]:
        """The contact (created if new, screened either way) and whether it was new, with
        its consent (``record_consent``)."""
        contact, created = self.contacts.add(account_id, email, first, last, ip)
        self.record_consent(config, contact, created, consent, default_method)
        self.quality.screen(contact, policy(self.session, config), config.review.period)
        return contact, created

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
