"""Decide what kind of feedback a parsed message is. Pure: no I/O, easy to test offline.

The order matters and is the one experience teaches:

1. **bounce** first: DSNs (RFC 3464, ``multipart/report; report-type=delivery-status``)
   carry ``Auto-Submitted`` too, and must not be mistaken for auto-replies.
2. **complaint**: ARF (RFC 5965, ``message/feedback-report``).
3. **unsubscribe**: anything sent to an ``unsubscribe+TOKEN`` box, whatever it says.
4. **auto-reply**: RFC 3834 ``Auto-Submitted``, the common ``X-Autoreply`` /
   ``X-Autorespond`` / ``Precedence`` markers, out-of-office subjects, the null sender.
5. **reply**: a human answer to a lead notification (``reply+TOKEN`` box, or
   ``In-Reply-To`` naming a notification).
6. **unknown**: the rest; stored, logged, no action.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import Message
from enum import StrEnum

from feedback_mta.addresses import Box, Recipient
from feedback_mta.parse import ParsedMessage


class Kind(StrEnum):
    COMPLAINT = "complaint"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    REPLY = "reply"
    AUTO_REPLY = "auto-reply"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class Classification:
    kind: Kind
    #: Our box the message was addressed to (the first one of ours among the recipients).
    recipient: Recipient | None = None
    #: ARF Feedback-Type (``abuse``, ``opt-out``, ...), lower-case.
    feedback_type: str | None = None
    #: Addresses the report is about (Original-Rcpt-To, Final-Recipient), lower-case.
    recipients: tuple[str, ...] = ()
    #: Why this kind (which marker decided), for logs and ``parse``.
    why: str = ""


_OOO_SUBJECT = re.compile(
    r"^\s*(auto(matic)?[ -]?(reply|response|antwort)|out of (the )?office|abwesenheit|"
    r"r[ée]ponse automatique|respuesta autom[áa]tica|resposta autom[áa]tica|absence|"
    r"fuera de la oficina|vacation|urlaub)", re.IGNORECASE)


def _report_parts(message: Message, subtype: str) -> list[Message]:
    return [p for p in message.walk() if p.get_content_type() == f"message/{subtype}"]


def _report_type(message: Message) -> str:
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type") or "").lower()


def _field_address(value: str | None) -> str | None:
    """``rfc822; user@example.com`` -> ``user@example.com``."""
    if not value:
        return None
    _, _, address = value.rpartition(";")
    address = address.strip().strip("<>").strip().lower()
    return address if "@" in address else None


def feedback_report(message: Message) -> tuple[str | None, tuple[str, ...]] | None:
    """(Feedback-Type, Original-Rcpt-To addresses) of an ARF report, or None."""
    parts = _report_parts(message, "feedback-report")
    if not parts:
        return None
    payload = parts[0].get_payload()
    fields = payload[0] if isinstance(payload, list) and payload else None
    if fields is None:
        return ("unknown", ())
    ftype = (fields.get("Feedback-Type") or "").strip().lower() or None
    rcpts = [_field_address(v) for v in fields.get_all("Original-Rcpt-To", [])]
    rcpts += [_field_address(v) for v in fields.get_all("Removal-Recipient", [])]
    return ftype, tuple(r for r in rcpts if r)


def delivery_status(message: Message) -> tuple[str, ...] | None:
    """Final-Recipient addresses of a DSN, or None when it is not one."""
    parts = _report_parts(message, "delivery-status")
    if not parts:
        return None
    blocks = parts[0].get_payload()
    rcpts = []
    for block in blocks if isinstance(blocks, list) else ():
        address = _field_address(block.get("Final-Recipient") or block.get("Original-Recipient"))
        if address:
            rcpts.append(address)
    return tuple(rcpts)


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
    boxes = {r.box for r in recipients}
    report_type = _report_type(msg.message)

    dsn = delivery_status(msg.message)
    if dsn is not None or report_type == "delivery-status":
        return Classification(Kind.BOUNCE, ours, recipients=dsn or (), why="delivery-status")

    arf = feedback_report(msg.message)
    if arf is not None or report_type == "feedback-report":
        ftype, rcpts = arf or (None, ())
        return Classification(Kind.COMPLAINT, ours, feedback_type=ftype, recipients=rcpts,
                              why="feedback-report")

    if Box.UNSUBSCRIBE in boxes:
        unsub = next(r for r in recipients if r.box is Box.UNSUBSCRIBE)
        return Classification(Kind.UNSUBSCRIBE, unsub, why="unsubscribe box")

    marker = auto_reply_marker(msg)
    if marker:
        return Classification(Kind.AUTO_REPLY, ours, why=marker)

    if Box.REPLY in boxes:
        reply = next(r for r in recipients if r.box is Box.REPLY)
        return Classification(Kind.REPLY, reply, why="reply box")
    if msg.in_reply_to or msg.references:
        return Classification(Kind.REPLY, ours, why="in-reply-to")
    return Classification(Kind.UNKNOWN, ours, why="no marker")
