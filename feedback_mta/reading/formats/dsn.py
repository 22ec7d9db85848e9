"""Delivery Status Notifications (RFC 3464) and the hard/soft decision for every bounce.

A ``multipart/report; report-type=delivery-status`` whose ``message/delivery-status`` part
has one block per recipient: ``Final-Recipient``, ``Action`` (failed, delayed, delivered,
relayed, expanded), ``Status`` (RFC 3463 ``class.subject.detail``) and ``Diagnostic-Code``.
Only ``failed`` and ``delayed`` recipients bounced; a DSN where every recipient was
delivered, relayed or expanded is a delivery notice, not a bounce.

Hard or soft (``hardness``) follows Sisimai's reasons: hard only when the address itself
is gone (no such user, no such domain, has moved, null MX); everything else (mailbox
full, blocked, policy, timeouts, unknown permanent errors) is soft, counted, and turns hard
after ``[feedback] soft_bounce_limit`` within ``soft_bounce_window``. Wrongly calling an
address dead loses a contact for good; a soft count errs on the side of the contact.
"""

from __future__ import annotations

import re
from email.message import Message

from feedback_mta.kinds import Kind
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

#: RFC 3463 statuses that say the address is gone: bad mailbox (5.1.1), bad domain (5.1.2),
#: bad syntax (5.1.3), moved (5.1.6), Exchange's 5.1.10, null MX (5.1.10 / RFC 7505 5.1.10).
_HARD_STATUSES = frozenset({"5.1.1", "5.1.2", "5.1.3", "5.1.6", "5.1.10", "5.4.4"})

_HARD_TEXT = re.compile(
    r"user (?:unknown|not found|does not exist)|unknown (?:user|recipient|local part|"
    r"mailbox)|no such (?:user|mailbox|recipient|address|domain)|(?:mailbox|account|address|"
    r"recipient) (?:does not exist|doesn't exist|not found|unknown|unavailable|"
    r"is not valid|invalid)|does not exist|recipient ?not ?found|invalid (?:recipient|"
    r"mailbox|address)|(?:host|domain)(?: name)? not found|nxdomain|no mx|has moved|"
    r"not our customer|address rejected: user unknown|no mailbox here|addressee unknown",
    re.IGNORECASE)

_SOFT_TEXT = re.compile(
    r"mailbox (?:is )?full|over ?quota|quota exceeded|insufficient (?:storage|space)|"
    r"exceeded storage|blocked|blacklist|block ?list|spamhaus|spam|policy|dmarc|rate limit|"
    r"too many|try again|temporar|timed? ?out|deferred|greylist",
    re.IGNORECASE)


def status_of(text: str | None) -> str | None:
    match = _STATUS.search(text or "")
    return ".".join(match.groups()) if match else None


def hardness(status: str | None, diagnostic: str | None) -> tuple[bool, str]:
    """(hard?, reason) from a status code and the server's words. Pure; the single rule
    every bounce format uses."""
    text = unfold(diagnostic)
    if status and status.startswith("4"):
        return False, "temporary failure"
    soft, hard = _SOFT_TEXT.search(text), _HARD_TEXT.search(text)
    if soft and not hard:
        return False, soft.group(0).lower()
    if status in _HARD_STATUSES:
        return True, {"5.1.1": "user unknown", "5.1.2": "domain not found",
                      "5.1.3": "bad address syntax", "5.1.6": "has moved",
                      "5.1.10": "recipient not found", "5.4.4": "domain not found"}[status]
    if hard and (status is None or status.startswith("5")):
        return True, hard.group(0).lower()
    if status == "5.2.2" or (status or "").startswith("5.7"):
        return False, "mailbox full" if status == "5.2.2" else "blocked"
    return False, "permanent failure" if (status or "").startswith("5") else "unknown"


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
            address = address_in(block.get("Final-Recipient")) or address_in(
                block.get("Original-Recipient"))
            if address is None:
                continue
            action = unfold(block.get("Action")).lower()
            diagnostic = unfold(block.get("Diagnostic-Code"))
            status = status_of(block.get("Status")) or status_of(diagnostic)
            if action in ("delivered", "relayed", "expanded"):
                delivered.append(address)
                continue
            hard, reason = hardness(status if action != "delayed" else "4.0.0", diagnostic)
            bounces.append(Bounced(address, hard, status, reason))
    if not bounces and delivered:
        return Report(Kind.AUTO_REPLY, "dsn", recipients=unique(delivered),
                      original=original(msg), why="delivery report (delivered)")
    return Report(Kind.BOUNCE, "dsn", recipients=unique(b.address for b in bounces),
                  bounces=tuple(bounces), original=original(msg), why="delivery-status")
