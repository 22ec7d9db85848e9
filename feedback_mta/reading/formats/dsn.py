"""Delivery Status Notifications (RFC 3464) and the hard/soft decision for every bounce.

A ``multipart/report; report-type=delivery-status`` whose ``message/delivery-status`` part
has one block per recipient: ``Final-Recipient``, ``Action`` (failed, delayed, delivered,
relayed, expanded), ``Status`` (RFC 3463 ``class.subject.detail``) and ``Diagnostic-Code``.
Only ``failed`` and ``delayed`` recipients bounced; a DSN where every recipient was
delivered, relayed or expanded is a delivery notice, not a bounce.

Each failed recipient gets a reason in Sisimai's words (``reasons``), and hard or soft
from it (``hardness``): hard only when the address itself is gone (no such user, no such
domain, has moved, accepts no mail); everything else is soft, counted, and turns hard
after ``[feedback] soft_bounce_limit`` within ``soft_bounce_window``. Wrongly calling an
address dead loses a contact for good; a soft count errs on the side of the contact.
"""

from __future__ import annotations

import re
from email.message import Message

from feedback_mta.kinds import Kind
from feedback_mta.reading import reasons
from feedback_mta.reading.formats.report import (
    Bounced,
    Report,
    address_in,
    original,
    report_type,
    unfold,
    unique,
)
from feedback_mta.reading.parse import ParsedMessage

_STATUS = re.compile(r"\b([245])\.(\d{1,3})\.(\d{1,3})\b")


def status_of(text: str | None) -> str | None:
    match = _STATUS.search(text or "")
    return ".".join(match.groups()) if match else None


def specific(status: str | None, said: str | None) -> str | None:
    """The ``Status`` field, or the server's own code when that says more: a generic
    ``5.0.0`` beside ``550 5.1.1 user unknown`` of the same class."""
    if status is None or (said and status.endswith(".0.0") and said[0] == status[0]
                          and not said.endswith(".0.0")):
        return said or status
    return status


def hardness(status: str | None, diagnostic: str | None) -> tuple[bool, str]:
    """(hard?, reason) from a status code and the server's words (``reasons``). Pure; the
    single rule every bounce format uses."""
    reason = reasons.reason(status, unfold(diagnostic))
    return reasons.is_hard(reason, status), reason


def detect(msg: ParsedMessage) -> Report | None:
    message = msg.message
    found = msg.parts("message/delivery-status")
    if not found and report_type(message) != "delivery-status":
        return None
    bounces, delivered = [], []
    for part in found:
        blocks = part.get_payload()
        # The first block is per-message (Reporting-MTA); the rest are per-recipient.
        for block in blocks if isinstance(blocks, list) else ():
            if not isinstance(block, Message):
                continue
            # The address we sent to, before any alias expansion (RFC 3464 2.3.1), else
            # the one the failing server saw.
            address = address_in(block.get("Original-Recipient")) or address_in(
                block.get("Final-Recipient"))
            if address is None:
                continue
            action = unfold(block.get("Action")).lower()
            diagnostic = unfold(block.get("Diagnostic-Code"))
            status = specific(status_of(block.get("Status")), status_of(diagnostic))
            if action in ("delivered", "relayed", "expanded"):
                delivered.append(address)
                continue
            if action == "delayed" and not (status or "").startswith("4"):
                status = "4.0.0"  # delayed is temporary, whatever code it quotes
            hard, reason = hardness(status, diagnostic)
            bounces.append(Bounced(address, hard, status, reason, diagnostic[:500]))
    if not bounces and delivered:
        return Report(Kind.AUTO_REPLY, "dsn", recipients=unique(delivered),
                      original=original(msg), why="delivery report (delivered)")
    return Report(Kind.BOUNCE, "dsn", recipients=unique(b.address for b in bounces),
                  bounces=tuple(bounces), original=original(msg), why="delivery-status")
