"""Bounces (``formats``: RFC 3464 DSNs, SES, non-standard ones) -> the contact.

The contact comes from ``attribution`` (the ``bounce+TOKEN`` envelope recipient, or our
token in the returned original). Of the report's recipients we take the one with the
contact's address, else the first. Its reason (``reading.reasons``) is hard or soft by
``[feedback] hard_reasons``. Hard: the contact is made undeliverable at once. Soft:
recorded, and the ``soft_bounce_limit``-th soft bounce within ``soft_bounce_window``
makes it undeliverable too, because a mailbox full for a month is as good as gone.
"""

from __future__ import annotations

from datetime import timedelta

from feedback_mta.handlers import attribution
from feedback_mta.handlers.base import UNATTRIBUTED, HandlerContext, Outcome
from feedback_mta.reading.reasons import is_hard
from feedback_mta.store.models import MessageState, utcnow


def handle(ctx: HandlerContext) -> Outcome:
    report = ctx.classification.report
    if report is None or not report.bounces:
        return Outcome(MessageState.IGNORED, "no failed recipient")
    found = attribution.resolve(ctx)
    if found is None:
        return UNATTRIBUTED
    contact = found.contact
    bounced = next((b for b in report.bounces if b.address == contact.email), report.bounces[0])
    settings = ctx.settings.feedback
    # Hard or soft by this installation's table ([feedback] hard_reasons).
    bounced = bounced._replace(hard=is_hard(bounced.reason, bounced.status,
                                            frozenset(settings.hard_reasons)))
    ctx.uow.feedback.record_bounce(contact, bounced, report.format, found.how)
    detail = f"{bounced.status} {bounced.reason}".strip() if bounced.status else bounced.reason
    if bounced.hard:
        ctx.uow.contacts.mark_undeliverable(contact, f"hard bounce: {detail}")
        return Outcome(MessageState.PROCESSED, "hard bounce")
    since = utcnow() - timedelta(seconds=settings.soft_bounce_window)
    count = ctx.uow.feedback.soft_bounces(contact, since)
    if count >= settings.soft_bounce_limit:
        ctx.uow.contacts.mark_undeliverable(
            contact, f"{count} soft bounces within {settings.soft_bounce_window / 86400:g} days"
                     f" (last: {detail})")
        return Outcome(MessageState.PROCESSED, f"soft bounce {count} of "
                                               f"{settings.soft_bounce_limit}: undeliverable")
    return Outcome(MessageState.PROCESSED, f"soft bounce {count} of {settings.soft_bounce_limit}")
