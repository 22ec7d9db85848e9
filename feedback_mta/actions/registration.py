"""A lead or contact registered by the platform (``lead add``, ``POST /v1/leads``, ...):
created, then screened as it arrives. One place, so the command line and the API answer
the same."""

from __future__ import annotations

from dataclasses import replace

from feedback_mta.actions.audit import SYSTEM, Invalid, Recorder
from feedback_mta.actions.behaviour import Behaviour
from feedback_mta.actions.contacts import Contacts
from feedback_mta.actions.leads import Leads
from feedback_mta.actions.learning import Learning
from feedback_mta.actions.quality import Quality, policy
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.quality import spam
from feedback_mta.quality.spam import SpamScore
from feedback_mta.quality.verdict import Verdict
from feedback_mta.store.models import Contact, Lead


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


class Registration:
    """What the platform registers, created and judged at once: the contact screened
    (``quality``), the lead scored (``learning``, ``behaviour``) and flagged from the
    threshold on (``leads``)."""

    __slots__ = ("behaviour", "contacts", "leads", "learning", "quality", "recorder",
                 "session")

    def __init__(self, recorder: Recorder, contacts: Contacts, leads: Leads,
                 quality: Quality, learning: Learning, behaviour: Behaviour) -> None:
        self.recorder, self.session = recorder, recorder.session
        self.contacts, self.leads, self.quality = contacts, leads, quality
        self.learning, self.behaviour = learning, behaviour

    def add_lead(self, config: Config, account_id: int, email: str, first: str,
                 last: str, ip: str | None,
                 comments: spam.Comments) -> tuple[Lead, Contact, Verdict]:
        """The new lead (of the contact, created if new), its contact and the verdict on it.
        ``comments``: ``read_comments``, called before the unit of work begins."""
        lead = self.leads.add(AddressBook.from_config(config), account_id, email, first, last,
                              ip, comments.text)
        contact = self.contacts.get(lead.contact_id)
        verdict = self.quality.screen(contact, policy(self.session, config),
                                      config.review.period)
        self.score_lead(lead, contact, verdict, config.leads.auto_flag_threshold, comments)
        return lead, contact, verdict

    def score_lead(self, lead: Lead, contact: Contact, verdict: Verdict,
                   threshold: float, comments: spam.Comments | None = None) -> SpamScore:
        """Score the new lead (``quality.spam``: the rules, and what people's flags and
        restores taught) and, from ``threshold`` on, flag it as the system (``flagged_via``
        ``auto``, the event a dealer's flag writes): before the platform forwards or
        exports it. A known-bad contact's lead is always flagged. ``comments``: the lead's
        comments read already (``spam.read``), outside the transaction."""
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
        if found.flagged(threshold):
            with self.recorder.acting_as(SYSTEM):
                self.leads.flag_spam(lead, score=found.score, reasons=list(found.reasons))
        return found

    def add_contact(self, config: Config, account_id: int, email: str, first: str = "",
                    last: str = "", ip: str | None = None) -> tuple[Contact, bool]:
        """The contact (created if new, screened either way) and whether it was new."""
        contact, created = self.contacts.add(account_id, email, first, last, ip)
        self.quality.screen(contact, policy(self.session, config), config.review.period)
        return contact, created
