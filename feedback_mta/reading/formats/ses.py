"""Amazon SES notifications (``notificationType`` Complaint / Bounce / Delivery), as JSON
in a mail body: either the raw notification or wrapped in an SNS envelope whose
``Message`` is the notification as a string. Format: "Amazon SES notification contents"
in the SES Developer Guide.

``mail.headers`` (when the sender enabled original headers) carries our token header and
``mail.source`` the return path, so a redacted complaint is still attributed.
"""

from __future__ import annotations

import json
import re
from email.message import Message
from typing import Any

from feedback_mta.kinds import Kind
from feedback_mta.reading.formats.dsn import hardness, status_of
from feedback_mta.reading.formats.report import Bounced, Report, address_in, unique
from feedback_mta.reading.parse import ParsedMessage

#: SES bounce sub-types of a Permanent bounce that mean the address is not worth mailing
#: even when the status code is vague.
_HARD_SUBTYPES = frozenset({"general", "noemail", "suppressed", "onaccountsuppressionlist"})
#: What SES's permanent subtypes mean, in ``reasons``' words, when it gives no status.
_SUBTYPE_REASONS = {"suppressed": "suppressed", "onaccountsuppressionlist": "suppressed"}


_FOLD = re.compile(r"\r?\n ")


def _notification(text: str) -> dict[str, Any] | None:
    start = text.find("{")
    if start < 0 or "notificationType" not in text:
        return None
    body = text[start:text.rfind("}") + 1]
    try:
        data = json.loads(body)
    except ValueError:
        # SNS's mailer folds a long line every ~1,000 characters, a line break and a space
        # put in wherever it falls (inside a string too): take them out again.
        try:
            data = json.loads(_FOLD.sub("", body))
        except ValueError:
            return None
    if isinstance(data, dict) and isinstance(data.get("Message"), str):
        try:
            data = json.loads(data["Message"])
        except ValueError:
            return None
    return data if isinstance(data, dict) and "notificationType" in data else None


def _original(mail: object) -> Message | None:
    if not isinstance(mail, dict):
        return None
    original = Message()
    if mail.get("source"):
        original["Return-Path"] = f"<{mail['source']}>"
    for header in _list(mail.get("headers")):
        if isinstance(header, dict) and header.get("name"):
            original[str(header["name"])] = str(header.get("value", ""))
    return original


def _dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: object) -> list[Any]:
    return value if isinstance(value, list) else []


def _addresses(entries: object) -> list[str]:
    found = (address_in(str(e.get("emailAddress", ""))) for e in _list(entries)
             if isinstance(e, dict))
    return [a for a in found if a]


def _body(msg: ParsedMessage) -> str:
    """The text, or for ``application/json`` (SES can send that) the decoded payload."""
    if "notificationType" in msg.plain:
        return msg.plain
    for part in msg.message.walk():
        if part.get_content_type() == "application/json":
            payload = part.get_payload(decode=True) or b""
            return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
    return ""


def detect(msg: ParsedMessage) -> Report | None:
    if b"notificationType" not in msg.raw and not (msg.from_address or "").endswith(
            ("amazonaws.com", "amazonses.com")):
        return None  # neither the marker in the bytes nor an Amazon sender (encoded): not SES
    text = _body(msg)
    if "notificationType" not in text:
        return None
    data = _notification(text)
    if data is None:
        return None
    return from_notification(data)


def from_notification(data: dict[str, Any]) -> Report | None:
    """The report of one SES notification (mailed, or posted through SNS to ``/hooks/ses``);
    event publishing's ``eventType`` is read as ``notificationType``."""
    kind = str(data.get("notificationType") or data.get("eventType") or "").lower()
    original = _original(_dict(data.get("mail")))
    if kind == "complaint":
        complaint = _dict(data.get("complaint"))
        ftype = str(complaint.get("complaintFeedbackType") or "abuse").lower()
        return Report(Kind.UNSUBSCRIBE if ftype == "opt-out" else Kind.COMPLAINT, "ses",
                      feedback_type=ftype,
                      recipients=unique(_addresses(complaint.get("complainedRecipients"))),
                      original=original, why=f"ses complaint ({ftype})")
    if kind == "bounce":
        bounce = _dict(data.get("bounce"))
        permanent = str(bounce.get("bounceType", "")).lower() == "permanent"
        subtype = str(bounce.get("bounceSubType", "")).lower()
        bounces = []
        for entry in _list(bounce.get("bouncedRecipients")):
            if not isinstance(entry, dict):
                continue
            address = address_in(str(entry.get("emailAddress", "")))
            if not address:
                continue
            diagnostic = str(entry.get("diagnosticCode") or "")
            status = status_of(str(entry.get("status") or "")) or status_of(diagnostic)
            hard, reason = hardness(status if permanent else "4.0.0", diagnostic)
            if permanent and subtype in _HARD_SUBTYPES and not status:
                hard, reason = True, _SUBTYPE_REASONS.get(subtype, "userunknown")
            bounces.append(Bounced(address, hard, status, reason,
                                   " ".join(diagnostic.split())[:500]))
        return Report(Kind.BOUNCE, "ses", recipients=unique(b.address for b in bounces),
                      bounces=tuple(bounces), original=original,
                      why=f"ses bounce ({bounce.get('bounceType')}/{bounce.get('bounceSubType')})")
    if kind == "delivery":
        delivered = _list(_dict(data.get("delivery")).get("recipients"))
        return Report(Kind.AUTO_REPLY, "ses", original=original,
                      recipients=unique(address_in(str(a)) for a in delivered),
                      why="delivery report (ses)")
    return None
