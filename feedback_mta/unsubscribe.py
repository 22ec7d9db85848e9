"""Mail to an ``unsubscribe+TOKEN`` box: the ``mailto:`` target of ``List-Unsubscribe``
(RFC 2369 section 3.2). Whatever the subject or body says, the contact named by the token
is opted out with reason ``unsubscribe``: a mail client sent it because the person asked.
"""

from __future__ import annotations

from feedback_mta.actions import NotFound
from feedback_mta.addresses import Box
from feedback_mta.handler import HandlerContext, Outcome
from feedback_mta.models import MessageState


def handle(ctx: HandlerContext) -> Outcome:
    recipient = ctx.classification.recipient
    if recipient is None or recipient.box is not Box.UNSUBSCRIBE or recipient.object_id is None:
        return Outcome(MessageState.IGNORED, "no token")
    try:
        contact = ctx.actions.contact(recipient.object_id)
    except NotFound:
        return Outcome(MessageState.IGNORED, "unknown contact")
    if ctx.actions.opt_out(contact, "unsubscribe"):
        return Outcome(MessageState.PROCESSED, "opted out")
    return Outcome(MessageState.IGNORED, "already opted out")
