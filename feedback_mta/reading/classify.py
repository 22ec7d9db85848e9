"""Decide what kind of feedback a parsed message is. Pure: no I/O, easy to test offline.

The order matters and is the one experience teaches:

1. **a report format** (``formats``: ARF, DSN, SES, JMRP, abuse reports, Apple's
   unsubscribe mails, non-standard bounces). DSNs carry ``Auto-Submitted`` too and must
   not be mistaken for auto-replies; a DSN that only says "delivered" is an auto-reply.
   Formats recognised only by wording never override a reply to a ``reply+TOKEN``,
   ``review+TOKEN`` or ``confirm+TOKEN`` box.
2. **unsubscribe**: anything sent to an ``unsubscribe+TOKEN`` box, whatever it says.
3. **auto_reply**: RFC 3834 ``Auto-Submitted``, the common ``X-Autoreply`` /
   ``X-Autorespond`` / ``Precedence`` markers, out-of-office subjects, the null sender.
4. **reply**: a human answer to a lead notification (``reply+TOKEN`` box, or
   ``In-Reply-To`` naming a notification), to a review digest (``review+TOKEN``), or a
   contact's answer to a confirmation request (``confirm+TOKEN``).
5. **unknown**: the rest; stored, logged, no action.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import NamedTuple

from feedback_mta.addresses import ADMIN_BOXES, Box, Recipient
from feedback_mta.kinds import Kind
from feedback_mta.reading import formats
from feedback_mta.reading.formats.report import Report
from feedback_mta.reading.parse import ParsedMessage

__all__ = ["Classification", "Kind", "auto_reply_marker", "classify"]


class Classification(NamedTuple):
    kind: Kind
    #: Our box the message was addressed to (the first one of ours among the recipients).
    recipient: Recipient | None = None
    #: Why this kind (which marker decided), for logs and ``parse``.
    why: str = ""
    #: What the report format read, when one did.
    report: Report | None = None
    #: All our boxes among the envelope recipients (attribution looks at every one).
    ours: tuple[Recipient, ...] = ()
    #: Who posted it over HTTPS (``one-click``, ``mailgun``, ...; ``reading.hooks``): its
    #: signature was verified before it was stored. None for mail.
    provider: str | None = None

    @property
    def feedback_type(self) -> str | None:
        """ARF Feedback-Type (``abuse``, ``opt-out``, ...), lower-case, of the report."""
        return self.report.feedback_type if self.report is not None else None

    @property
    def recipients(self) -> tuple[str, ...]:
        """Addresses the report is about (Original-Rcpt-To, Final-Recipient), lower-case."""
        return self.report.recipients if self.report is not None else ()

    @property
    def hard_bounce(self) -> bool | None:
        return self.report.hard_bounce if self.report is not None else None


_OOO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|resposta autom[áa]tica|absence|"
    r"fuera de la oficina|vacation|urlaub)", re.IGNORECASE)


def auto_reply_marker(msg: ParsedMessage) -> str | None:
    """Which marker says this was sent by a machine, or None."""
    auto = (msg.header("auto-submitted") or "").strip().lower()
    if auto and not auto.startswith("no"):
        return "auto-submitted"
    # (X-Auto-Response-Suppress is not one: Outlook puts it on ordinary mail.)
    for name in ("x-autoreply", "x-autorespond"):
        if msg.header(name) is not None:
            return name
    precedence = (msg.header("precedence") or "").strip().lower()
    if precedence in ("bulk", "junk", "list", "auto_reply"):
        return f"precedence:{precedence}"
    if _OOO_SUBJECT.search(msg.subject or ""):
        return "subject"
    if msg.mail_from == "":
        return "null-sender"
    return None


def classify(msg: ParsedMessage, recipients: Sequence[Recipient]) -> Classification:
    """The kind of ``msg``, given which of our boxes it was delivered to."""
    ours = recipients[0] if recipients else None
    every = tuple(recipients)
    boxes = {r.box for r in recipients}

    if boxes and boxes <= ADMIN_BOXES:  # postmaster@, abuse@: for the operator's eyes only
        return Classification(Kind.ADMIN, ours, why=f"{ours.box.value} box" if ours else "",
                              ours=every)

    report = formats.detect(msg)
    human = boxes & {Box.REPLY, Box.REVIEW, Box.CONFIRM}
    if report is not None and not (report.heuristic and human):
        target = ours
        if report.kind is Kind.UNSUBSCRIBE and Box.UNSUBSCRIBE in boxes:
            target = next(r for r in recipients if r.box is Box.UNSUBSCRIBE)
        return Classification(report.kind, target, why=report.why, report=report, ours=every)

    if Box.UNSUBSCRIBE in boxes:
        unsub = next(r for r in recipients if r.box is Box.UNSUBSCRIBE)
        return Classification(Kind.UNSUBSCRIBE, unsub, why="unsubscribe box", ours=every)

    marker = auto_reply_marker(msg)
    if marker:
        return Classification(Kind.AUTO_REPLY, ours, why=marker, ours=every)

    if human:
        reply = next(r for r in recipients if r.box in human)
        return Classification(Kind.REPLY, reply, why=f"{reply.box.value} box", ours=every)
    if msg.in_reply_to or msg.references:
        return Classification(Kind.REPLY, ours, why="in-reply-to", ours=every)
    return Classification(Kind.UNKNOWN, ours, why="no marker", ours=every)
