"""Auto-replies and delivery notices: kept, never acted on (RFC 3834: never answer them).

An out-of-office answering a confirmation request says nothing of the person's consent,
whatever words it holds: it is named so (``confirm: auto-reply``)."""

from __future__ import annotations

from feedback_mta.addresses import Box
from feedback_mta.handlers import confirmation
from feedback_mta.handlers.base import HandlerContext, Outcome
from feedback_mta.store.models import MessageState


def handle(ctx: HandlerContext) -> Outcome:
    # A report format that says "auto_reply" read a delivery notice (DSN "delivered", SES).
    if ctx.classification.report is not None:
        return Outcome(MessageState.IGNORED, "delivery report")
    if any(r.box is Box.CONFIRM for r in ctx.classification.ours):
        return Outcome(MessageState.IGNORED, confirmation.AUTO_REPLY)
    return Outcome(MessageState.IGNORED, "auto-reply")
