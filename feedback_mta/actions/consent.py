"""Consent: how each contact came to us, and the person's own confirmation.

A social connection, an imported or a bought list is no opt-in (DESIGN, "Consent"): a new
contact whose method is in ``[consent] confirm_methods`` is ``pending`` (not mailable,
suppressed with reason ``unconfirmed``) until the person confirms, by the link
(``/c/TOKEN``) or by replying "yes" to ``confirm+TOKEN@``. The record keeps what a
regulator or an ESP's compliance desk asks for (GDPR Art. 7(1): the controller must be
able to show consent): method, source, time, address and browser, and the confirmation
with its evidence. Saying no opts the contact out (reason ``declined``); so does the
deadline passing (``unconfirmed``, by a scheduled job).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from feedback_mta import events
from feedback_mta.actions.accounts import check_text, normalize_ip
from feedback_mta.actions.audit import Conflict, Invalid, Recorder
from feedback_mta.actions.contacts import Contacts
from feedback_mta.store import db
from feedback_mta.store.models import Contact, utcnow
from feedback_mta.store.states import (
    DECLINED,
    UNCONFIRMED,
    ConfirmedVia,
    ConsentMethod,
    ContactStatus,
)

#: The longest source (a form's URL, a list's name) and user agent kept.
MAX_SOURCE = 500
MAX_USER_AGENT = 300
#: Opt-outs a person's own later confirmation lifts: their own "no", and nobody answering
#: in time. Never a complaint, a bounce or a known-bad verdict (``why_kept``).
_LIFTED_BY_CONFIRMING = frozenset({DECLINED, UNCONFIRMED})


@dataclass(frozen=True, slots=True)
class ConsentIn:
    """How a contact came to us, as the platform or the admin says (``--consent-method``,
    ``"consent": {...}``); ``at`` defaults to now."""

    method: str = ConsentMethod.UNKNOWN.value
    source: str = ""
    at: datetime | None = None
    ip: str | None = None
    user_agent: str | None = None

    def checked(self) -> ConsentIn:
        """The same, every field checked (``Invalid`` naming the field otherwise)."""
        try:
            method = ConsentMethod(self.method).value
        except ValueError:
            raise Invalid(f"consent method: expected one of "
                          f"{', '.join(m.value for m in ConsentMethod)}, got {self.method!r}",
                          field="method") from None
        source = check_text("source", self.source)
        if len(source) > MAX_SOURCE:
            raise Invalid(f"source: at most {MAX_SOURCE} characters", field="source")
        agent = check_text("user_agent", self.user_agent or "")[:MAX_USER_AGENT] or None
        return ConsentIn(method, source.strip(), _utc(self.at), normalize_ip(self.ip), agent)


def given(consent: ConsentIn | None, default_method: str, new: bool) -> ConsentIn | None:
    """What is recorded of a contact's consent: as given; for a ``new`` contact given
    nothing, that it came by ``default_method`` (``api`` over HTTP), unless that is
    ``unknown``, which leaves the record as the migrated contacts have it; otherwise
    nothing (an existing contact given nothing keeps its record, neither read nor
    locked)."""
    if consent is not None:
        return consent
    if not new or default_method == ConsentMethod.UNKNOWN:
        return None
    return ConsentIn(default_method)


def _utc(at: datetime | None) -> datetime | None:
    """``at`` in UTC (UTC when it names no zone); ``Invalid`` naming ``at`` when UTC cannot
    hold it (year 1 at +05:00)."""
    if at is None:
        return None
    try:
        return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)
    except OverflowError:
        raise Invalid("at: out of range", field="at") from None


@dataclass(frozen=True, slots=True)
class Evidence:
    """What shows the person themselves answered: the reply's Message-ID (and the inbound
    message it is kept as), or the click's address and browser."""

    via: ConfirmedVia
    data: dict[str, Any] = field(default_factory=dict)


def consented(consent: ConsentIn, *, pending: bool, confirm_within: float,
              now: datetime | None = None) -> dict[str, Any]:
    """A contact's columns once its consent (checked) is recorded: how it came, and, when
    it is to be ``pending``, that status and its deadline."""
    now = now or utcnow()
    values: dict[str, Any] = {
        "consent_method": consent.method, "consent_source": consent.source,
        "consent_at": consent.at or now, "consent_ip": consent.ip,
        "consent_user_agent": consent.user_agent, "updated_at": now}
    if pending:
        values["status"] = ContactStatus.PENDING.value
        values["confirm_by"] = now + timedelta(seconds=confirm_within)
    return values


class Consent:
    """The consent record of contacts, and its changes, each an audit event."""

    __slots__ = ("contacts", "recorder")

    def __init__(self, recorder: Recorder, contacts: Contacts) -> None:
        self.recorder = recorder
        self.contacts = contacts

    def record(self, contact: Contact, consent: ConsentIn, *, new: bool,
               confirm_methods: tuple[str, ...], confirm_within: float) -> bool:
        """Keep how ``contact`` came; one just made (``new``) whose method needs a
        confirmation becomes ``pending`` with its deadline. An existing contact's record is
        only filled in where it was ``unknown``: a later import never demotes a person who
        filled in a form, nor makes a mailable contact pending. False when nothing
        changed."""
        consent = consent.checked()
        self.recorder.lock(contact)
        if contact.consent_method != ConsentMethod.UNKNOWN:
            return False
        values = consented(consent, pending=new and consent.method in confirm_methods
                           and contact.status == ContactStatus.ACTIVE,
                           confirm_within=confirm_within)
        for name, value in values.items():
            setattr(contact, name, value)
        self.recorder.session.add(contact)
        self.recorded(contact.id, contact.account_id, values)
        return True

    def recorded(self, contact_id: int | None, account_id: int, values: dict[str, Any]
                 ) -> None:
        """The event of a record made of ``values`` (``consented``): ``record``'s, and a
        registration's that makes its new contact with them at once."""
        pending = values.get("status") == ContactStatus.PENDING
        self.recorder.record(
            events.CONTACT_CONSENT_RECORDED, "contact", contact_id, account_id,
            method=values["consent_method"], source=values["consent_source"],
            pending=pending, confirm_by=values["confirm_by"].isoformat() if pending else None)

    def confirmation_sent(self, contact: Contact, *, reminder: bool = False,
                          outbound_id: int | None = None) -> None:
        """Note that the request (or its one reminder) went into the outbox."""
        now = utcnow()
        if reminder:
            contact.confirmation_reminded_at = now
        else:
            contact.confirmation_sent_at = now
        self.recorder.session.add(contact)
        self.recorder.record(events.CONTACT_CONFIRMATION_SENT, "contact", contact.id,
                             contact.account_id, reminder=reminder, outbound_id=outbound_id)

    def confirm(self, contact: Contact, evidence: Evidence) -> bool:
        """The person said yes: a pending contact becomes mailable, with the evidence; one
        who had said no, or let the deadline pass, is opted in again by their own word.
        A complaint, a bounce or a known-bad verdict stands (``Conflict``). False when it
        was confirmed already."""
        self.recorder.lock(contact)
        if contact.status == ContactStatus.OPTED_OUT:
            why = self.contacts.kept(contact)  # a complaint, a bounce, known bad: it stands
            if why is None and contact.opt_out_reason not in _LIFTED_BY_CONFIRMING:
                why = f"opted out ({contact.opt_out_reason}): not the person's to undo here"
            if why is not None:
                raise Conflict(f"{contact.email}: {why}")
        elif contact.confirmed_at is not None and contact.status == ContactStatus.ACTIVE:
            return False
        previous = str(contact.status)
        now = utcnow()
        contact.status = ContactStatus.ACTIVE
        contact.opt_out_reason = contact.opted_out_at = None
        contact.confirmed_at = now
        contact.confirmed_via = evidence.via.value
        contact.confirmation_evidence = dict(evidence.data)
        contact.confirm_by = None
        contact.updated_at = now
        self.recorder.session.add(contact)
        self.recorder.record(events.CONTACT_CONFIRMED, "contact", contact.id,
                             contact.account_id, confirmed_via=evidence.via.value,
                             previous_status=previous, **evidence.data)
        return True

    def decline(self, contact: Contact, evidence: Evidence) -> bool:
        """The person said no: opted out, reason ``declined``, with the evidence in the
        event. False when it was opted out already."""
        self.recorder.lock(contact)
        contact.confirm_by = None
        self.recorder.session.add(contact)
        return self.contacts.opt_out(contact, DECLINED, confirmed_via=evidence.via.value,
                                     **evidence.data)

    def expire(self, contact: Contact, now: datetime | None = None) -> bool:
        """Still pending at its deadline: opted out, reason ``unconfirmed``. False (and no
        change) when it is not pending or its deadline has not come (a confirmation that
        raced the job wins)."""
        self.recorder.lock(contact)
        now = now or utcnow()
        if (contact.status != ContactStatus.PENDING or contact.confirm_by is None
                or db.aware(contact.confirm_by) > now):
            return False
        contact.confirm_by = None
        self.recorder.session.add(contact)
        return self.contacts.opt_out(contact, UNCONFIRMED)
