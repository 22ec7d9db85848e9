"""Unsubscribe requests -> the contact opted out with reason ``unsubscribe``.

* Mail to an ``unsubscribe+TOKEN`` box: the ``mailto:`` target of ``List-Unsubscribe``
  (RFC 2369 section 3.2). Whatever the subject or body says, the contact named by the
  token is opted out: a mail client sent it because the person asked.
* ``opt-out`` feedback reports (RFC 5965) and Apple Mail's unsubscribe mails that reached
  another address: attributed like complaints (``attribution``); unattributed ones change
  nothing.
"""

from __future__ import annotations

from feedback_mta.actions import NotFound
from feedback_mta.addresses import Box
from feedback_mta.handlers import attribution
from feedback_mta.handlers.base import UNATTRIBUTED, HandlerContext, Outcome
from feedback_mta.store.models import MessageState


def handle(ctx: HandlerContext) -> Outcome:
    recipient = ctx.classification.recipient
    if (recipient is not None and recipient.box is Box.UNSUBSCRIBE
            and recipient.object_id is not None):
        try:
            contact = ctx.uow.contacts.get(recipient.object_id)
        except NotFound:
            return Outcome(MessageState.IGNORED, "unknown contact")
        how = "envelope"
    elif ctx.classification.report is not None:
        found = attribution.resolve(ctx)
        if found is None:
            return UNATTRIBUTED
        contact, how = found.contact, found.how
    else:
        return Outcome(MessageState.IGNORED, "no token")
    report = ctx.classification.report
    if report is not None and report.feedback_type:
        ctx.uow.feedback.record_report(contact, report.feedback_type, report.format, how)
    if ctx.uow.contacts.opt_out(contact, "unsubscribe"):
        return Outcome(MessageState.PROCESSED, "opted out")
    return Outcome(MessageState.IGNORED, "already opted out")
