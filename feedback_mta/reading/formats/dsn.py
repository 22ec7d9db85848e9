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
from typing import NamedTuple

from feedback_mta.kinds import Kind
from feedback_mta.reading import mtas, reasons
from feedback_mta.reading.formats.report import (
    Bounced,
    Report,
    address_in,
    headers_only,
    notice,
    original,
    report_type,
    unfold,
    unique,
)
from feedback_mta.reading.parse import ParsedMessage

# "\b" before the first digit, written as a lookbehind after it: a pattern that starts with
# a digit class is searched digit to digit, one that starts with "\b" at every character.
_STATUS = re.compile(r"([245])(?<!\w.)\.(\d{1,3})\.(\d{1,3})\b")


def status_of(text: str | None) -> str | None:
    match = _STATUS.search(text or "")
    return ".".join(match.groups()) if match else None


def hardness(status: str | None, diagnostic: str | None, *, command: str = "",
             action: str = "", kind: str = "", hint: str = "", remote: str | None = None,
             recipient: str | None = None, reporting: str | None = None) -> tuple[bool, str]:
    """(hard?, reason) from a status code and the server's words (``reasons``). Pure; the
    single rule every bounce format uses."""
    reason = reasons.reason(status, unfold(diagnostic), command=command, action=action,
                            kind=kind, hint=hint, remote=remote, recipient=recipient,
                            reporting=reporting)
    return reasons.is_hard(reason, status), reason


def _recipients_of(block: Message) -> list[Message]:
    """A recipient block, or several run together without the blank line between them
    (AOL's): split where a recipient field comes round again."""
    if len(block.get_all("Final-Recipient", [])) < 2:
        return [block]
    groups: list[Message] = []
    for name, value in block.items():
        key = name.lower()
        if not groups or (key in ("final-recipient", "original-recipient")
                          and key in (k.lower() for k in groups[-1])):
            groups.append(Message())
        groups[-1][name] = value
    return groups


def _line_about(msg: ParsedMessage, address: str) -> str:
    """The notice's line naming ``address``, for a recipient whose block gives no
    Diagnostic-Code (OpenSMTPD: ``user@example.org: 550 5.1.1 ... User unknown``)."""
    for line in (msg.plain or "").splitlines():
        if address in line.lower():
            return " ".join(line.split())
    return ""


def _hostname(field: str | None) -> str:
    """The host of an ``MTA`` field (``dns; mx.example.org [192.0.2.1]``)."""
    words = unfold(field).rpartition(";")[2].split()
    return words[0].strip("[]") if words else ""


#: PowerMTA's own per-recipient field names its reason (``X-PowerMTA-BounceCategory``;
#: go-sisimai ``rfc3464/powermta.go``).
_POWERMTA = {
    "bad-domain": "hostunknown", "bad-mailbox": "userunknown", "inactive-mailbox": "suspend",
    "message-expired": "expired", "no-answer-from-host": "networkerror",
    "policy-related": "policyviolation", "quota-issues": "mailboxfull",
    "routing-errors": "systemerror", "spam-related": "spamdetected",
}
_FIELDS = re.compile(r"^(?:final|original)-recipient:", re.IGNORECASE | re.MULTILINE)
_RETURNED = re.compile(r"^content-type:\s*(?:message/rfc822|text/rfc822-headers?)",
                       re.IGNORECASE | re.MULTILINE)


def _text_blocks(msg: ParsedMessage) -> tuple[list[Message], str]:
    """The DSN's field blocks read from the message's text, where its MIME structure is
    broken (a boundary that does not match, a part that starts with a space): every
    paragraph before the returned copy that names a recipient, and the words before the
    first of them."""
    body = msg.raw.decode("utf-8", "replace").replace("\r\n", "\n")
    body = body[body.find("\n\n") + 2:]  # past the headers
    returned = _RETURNED.search(body)
    body = body[:returned.start()] if returned else body[:20000]
    first = _FIELDS.search(body)
    if first is None:
        return [], ""
    blocks = [headers_only(paragraph) for paragraph in re.split(r"\n[ \t]*\n", body)
              if _FIELDS.search(paragraph) or paragraph.lstrip().lower().startswith(
                  "reporting-mta:")]
    before = [line for line in body[:first.start()].splitlines()
              if not line.lower().startswith(("content-", "--", " --", "reporting-mta",
                                              "arrival-date", "x-postfix"))]
    return blocks, " ".join(" ".join(before).split())[-2000:]


class _Failed(NamedTuple):
    """One failed recipient's block, as read."""

    address: str
    action: str
    status: str  # the Status field, with its comment
    kind: str  # the Diagnostic-Code type: SMTP, X-UNIX, ...
    diagnostic: str
    remote: str  # the Remote-MTA host
    final: str | None  # the Final-Recipient, where an alias changed the address
    category: str  # PowerMTA's reason, if it gave one


def _failed(block: Message, delivered: list[str]) -> _Failed | None:
    """The failed recipient a block names; a delivered one goes to ``delivered``."""
    # The address we sent to, before any alias expansion (RFC 3464 2.3.1), else the one
    # the failing server saw.
    fields: dict[str, str] = {}  # each field's first value, as block.get gives it
    for name, value in block.items():
        fields.setdefault(name.lower(), value)
    final = address_in(fields.get("final-recipient"))
    address = address_in(fields.get("original-recipient")) or final
    if address is None:
        return None
    action = unfold(fields.get("action")).lower()
    status = unfold(fields.get("status"))
    if action in ("delivered", "relayed", "expanded", "deliverable") or (
            action not in ("failed", "delayed") and status.startswith("2.")):
        delivered.append(address)
        return None
    kind, _, diagnostic = unfold(fields.get("diagnostic-code")).partition(";")
    if kind.strip().lower().startswith(("smtp", "x-", "dns")) and len(kind) < 20:
        kind = kind.strip()
    else:
        kind, diagnostic = "", unfold(fields.get("diagnostic-code"))
    category = unfold(fields.get("x-powermta-bouncecategory")).lower()
    return _Failed(address, action, status, kind.upper(), diagnostic.strip(),
                   _hostname(fields.get("remote-mta")), final if final != address else None,
                   _POWERMTA.get(category, ""))


def detect(msg: ParsedMessage) -> Report | None:
    message = msg.message
    found = msg.parts("message/delivery-status")
    if not found and report_type(message) != "delivery-status":
        return None
    blocks = [block for part in found for block in (
        part.get_payload() if isinstance(part.get_payload(), list) else ())
        if isinstance(block, Message)]
    whole = notice(msg)
    if not any("Final-Recipient" in b or "Original-Recipient" in b for b in blocks):
        blocks, before = _text_blocks(msg)  # a broken MIME structure: read the text
        whole = whole or before
    delivered: list[str] = []
    # The first block is per-message (Reporting-MTA); the rest are per-recipient.
    failed = [one for one in (_failed(block, delivered) for joined in blocks
                              for block in _recipients_of(joined)) if one is not None]
    # The per-message block (the first) names the server that wrote the report.
    reporting = next((_hostname(b.get("Reporting-MTA")) for b in blocks
                      if "Reporting-MTA" in b), "")
    words = mtas.notice(msg, whole)  # what of the notice speaks of the recipient
    bounces = [_bounced(msg, one, words if len(failed) == 1 else "", whole, reporting)
               for one in failed]
    if not bounces and delivered:
        return Report(Kind.AUTO_REPLY, "dsn", recipients=unique(delivered),
                      original=original(msg), why="delivery report (delivered)")
    return Report(Kind.BOUNCE, "dsn", recipients=unique(b.address for b in bounces),
                  bounces=tuple(bounces), original=original(msg), why="delivery-status")


def _bounced(msg: ParsedMessage, one: _Failed, words: str, whole: str,
             reporting: str) -> Bounced:
    """One failed recipient's reason. A lone recipient's ``words`` (the notice) speak of it
    too, and often say more (the SMTP command, the server's whole answer) than its
    Diagnostic-Code; with several, a recipient without one gets its line of the notice."""
    text = one.diagnostic
    if words and one.diagnostic.lower() not in words.lower():
        text = f"{words} {one.diagnostic}"
    elif words:
        text = words
    elif not one.diagnostic:
        text = _line_about(msg, one.address)
    comment = one.status.partition("(")[2].rstrip(")")  # "5.2.1 (mailbox disabled)"
    if comment and comment.lower() not in text.lower():
        text = f"{text} {comment}".strip()
    status = reasons.preferred_status(status_of(one.status), text)[0] or None
    if one.action == "delayed" and not (status or "").startswith("4"):
        status = "4.0.0"  # delayed is temporary, whatever code it quotes
    command = reasons.command_in(one.diagnostic) or reasons.command_in(whole)
    hard, reason = hardness(status, text, command=command, action=one.action, kind=one.kind,
                            hint=one.category or mtas.hint(msg, text), remote=one.remote,
                            recipient=one.address, reporting=reporting)
    return Bounced(one.address, hard, status, reason, one.diagnostic[:500], one.final)
