"""Mail to ``postmaster@`` and ``abuse@``: kept, forwarded to the operator, never acted on.

RFC 5321 section 4.5.1 requires a postmaster box, and feedback-loop sign-ups (Yahoo,
Microsoft SNDS/JMRP and others) verify the domain by mail to postmaster@ or abuse@. A person
has to read those, so the message goes, unchanged but for ``Resent-*`` fields (RFC 5322
section 3.6.6), to ``[smtp] postmaster`` through the outbound relay. Nothing in it changes a
lead or a contact, whatever it says. (Mail to an admin box and to one of our other boxes at
once is read as mail to the other box: ``reading.classify``.)
"""

from __future__ import annotations

from email.utils import format_datetime, make_msgid

from feedback_mta.handlers.base import HandlerContext, Outcome
from feedback_mta.store.models import MessageState, utcnow


def resent(raw: bytes, *, to: str, by: str, domain: str) -> bytes:
    """``raw`` with Resent-* fields in front: the forwarded copy. Pure."""
    fields = (f"Resent-From: {by}\r\nResent-To: {to}\r\n"
              f"Resent-Date: {format_datetime(utcnow())}\r\n"
              f"Resent-Message-ID: {make_msgid('fwd', domain=domain)}\r\n")
    return fields.encode() + raw


def handle(ctx: HandlerContext) -> Outcome:
    to = ctx.settings.forward_admin_to
    box = ctx.classification.recipient.box.value if ctx.classification.recipient else "admin"
    if not to:
        return Outcome(MessageState.IGNORED, f"{box} mail kept (no [smtp] postmaster or "
                                             "[outbound] relay to forward it)")
    raw = resent(ctx.parsed.raw, to=to, by=f"{box}@{ctx.book.domain}", domain=ctx.book.domain)
    ctx.uow.mail.queue(f"forward.{box}", to, raw)
    return Outcome(MessageState.PROCESSED, f"forwarded to {to}")
