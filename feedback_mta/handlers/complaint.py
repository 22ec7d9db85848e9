"""Feedback-loop reports (``formats``: ARF, JMRP, SES, abuse reports) -> the contact.

By Feedback-Type (RFC 5965 section 7.3, RFC 6591):

* ``abuse``, ``fraud``, ``virus``, ``other``: a complaint. The contact is opted out at once
  (reason ``complaint``) and the complaint counts in its account's complaint rate;
* ``opt-out``: an unsubscribe (reason ``unsubscribe``), handled in ``unsubscribe``;
* ``not-spam``, ``auth-failure``: recorded on the contact, nothing else: one is a user
  rescuing our mail, the other about authentication, not consent.

A report no contact can be attributed to (``attribution``) ends ``ignored`` with reason
``unattributed``: kept, logged, counted in ``stats``, and it changes nothing.
"""

from __future__ import annotations

from feedback_mta.handlers import attribution
from feedback_mta.handlers.base import UNATTRIBUTED, HandlerContext, Outcome
from feedback_mta.kinds import is_complaint
from feedback_mta.store.models import MessageState


def handle(ctx: HandlerContext) -> Outcome:
    found = attribution.resolve(ctx)
    if found is None:
        return UNATTRIBUTED
    report = ctx.classification.report
    ftype = ctx.classification.feedback_type or "abuse"
    ctx.uow.feedback.record_report(found.contact, ftype, report.format if report else "unknown",
                                   found.how)
    if not is_complaint(ftype):
        return Outcome(MessageState.PROCESSED, f"recorded ({ftype})")
    if ctx.uow.contacts.opt_out(found.contact, "complaint"):
        return Outcome(MessageState.PROCESSED, "opted out (complaint)")
    return Outcome(MessageState.PROCESSED, "complaint recorded (already opted out)")
