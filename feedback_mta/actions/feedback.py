"""What feedback loops and bounces say about a contact: recorded, and counted."""

from __future__ import annotations

from datetime import datetime

from sqlmodel import func, select

from feedback_mta import events
from feedback_mta.actions.audit import Recorded, Recorder, pending_events
from feedback_mta.kinds import is_complaint
from feedback_mta.reading.formats.report import Bounced
from feedback_mta.store.models import Contact, Event


class Feedback:
    """Reports about a contact (complaints, bounces) as events: what they make of the
    contact (an opt-out, undeliverable) is the handler's call, through ``contacts``."""

    __slots__ = ("recorder", "session")

    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.session = recorder, recorder.session

    def record_report(self, contact: Contact, feedback_type: str, source: str,
                        attributed_by: str) -> Recorded:
        """Record a feedback-loop report about the contact. Complaints (``kinds.is_complaint``)
        are ``contact.complained`` and count in the account's complaint rate; the rest
        (not-spam, auth-failure, opt-out) are ``contact.feedback_recorded``."""
        action = (events.CONTACT_COMPLAINED if is_complaint(feedback_type)
                  else events.CONTACT_FEEDBACK_RECORDED)
        return self.recorder.record(action, "contact", contact.id, contact.account_id,
                                    feedback_type=feedback_type, format=source,
                                    attributed_by=attributed_by)

    def record_bounce(self, contact: Contact, bounced: Bounced, source: str,
                      attributed_by: str) -> Recorded:
        """Record one bounce of mail to the contact (``contact.hard_bounced`` or
        ``contact.soft_bounced``); making it unmailable is ``Contacts.mark_undeliverable``."""
        action = events.CONTACT_HARD_BOUNCED if bounced.hard else events.CONTACT_SOFT_BOUNCED
        return self.recorder.record(action, "contact", contact.id, contact.account_id,
                                    reason=bounced.reason, status=bounced.status, format=source,
                                    attributed_by=attributed_by)

    def soft_bounces(self, contact: Contact, since: datetime) -> int:
        """Soft bounces recorded for the contact since ``since`` (this transaction's too),
        not counting those before it was last made deliverable again."""
        mine = [e for e in pending_events(self.session)
                if e.subject_type == "contact" and e.subject_id == contact.id]
        reset = self.session.exec(select(func.max(Event.at)).where(
            Event.subject_type == "contact", Event.subject_id == contact.id,
            Event.action == events.CONTACT_DELIVERABLE)).one()
        resets = [e.at for e in mine if e.action == events.CONTACT_DELIVERABLE]
        if reset is not None:
            resets.append(reset if reset.tzinfo else reset.replace(tzinfo=since.tzinfo))
        since = max([since, *resets])
        stored = self.session.exec(select(func.count()).select_from(Event).where(
            Event.subject_type == "contact", Event.subject_id == contact.id,
            Event.action == events.CONTACT_SOFT_BOUNCED, Event.at >= since)).one()
        return stored + sum(1 for e in mine
                            if e.action == events.CONTACT_SOFT_BOUNCED and e.at >= since)
