"""Auto-replies and delivery notices: kept, never acted on (RFC 3834: never answer them)."""

from __future__ import annotations

from feedback_mta.handlers.base import HandlerContext, Outcome
from feedback_mta.store.models import MessageState


def handle(ctx: HandlerContext) -> Outcome:
    # A report format that says "auto_reply" read a delivery notice (DSN "delivered", SES).
    if ctx.classification.report is not None:
        return Outcome(MessageState.IGNORED, "delivery report")
    return Outcome(MessageState.IGNORED, "auto-reply")
