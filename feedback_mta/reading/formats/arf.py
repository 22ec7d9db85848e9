"""ARF, the Abuse Reporting Format (RFC 5965), and authentication failure reports in it
(RFC 6591, ``Feedback-Type: auth-failure``).

A ``multipart/report; report-type=feedback-report`` with a human part, a
``message/feedback-report`` part of ``Name: value`` fields, and the original as
``message/rfc822`` or ``text/rfc822-headers`` (or left out, or redacted). Providers differ:
Yahoo and AOL redact ``Original-Rcpt-To``; Return Path's FBLs give none; trap networks
list several; opt-out reports name ``Removal-Recipient`` (RFC 5965 section 3.2).
The feedback-report part is recognised even when the outer type is not ``multipart/report``.
"""

from __future__ import annotations

from email.message import Message

from feedback_mta.kinds import Kind
from feedback_mta.reading.formats.report import (
    Report,
    address_in,
    headers_only,
    original,
    report_type,
    unfold,
    unique,
)
from feedback_mta.reading.parse import ParsedMessage


def _fields(part: Message) -> Message:
    payload = part.get_payload()
    if isinstance(payload, list) and payload and isinstance(payload[0], Message):
        return payload[0]
    if isinstance(payload, str):
        return headers_only(payload)
    return Message()


def kind_of(feedback_type: str | None) -> Kind:
    """RFC 5965 section 7.3: opt-out is an unsubscribe; the complaint types are complaints;
    not-spam and auth-failure are recorded, not acted on (still ``complaint`` reports)."""
    if feedback_type == "opt-out":
        return Kind.UNSUBSCRIBE
    return Kind.COMPLAINT


def detect(msg: ParsedMessage) -> Report | None:
    message = msg.message
    found = msg.parts("message/feedback-report")
    if not found and report_type(message) != "feedback-report":
        return None
    fields = _fields(found[0]) if found else Message()
    ftype = unfold(fields.get("Feedback-Type")).lower() or None
    if ftype is None and found:
        ftype = "abuse"  # RFC 5965 requires it; a report without one is still a complaint
    recipients = [address_in(v) for name in ("Original-Rcpt-To", "Removal-Recipient")
                  for v in fields.get_all(name, [])]
    returned = original(msg)
    if not any(recipients) and returned is not None:
        # No recipient field (Return Path style, RFC 6591 reports): the original's To, as
        # Sisimai does; redacted and "undisclosed" ones give nothing.
        recipients = [address_in(v) for v in returned.get_all("To", [])]
    return Report(kind_of(ftype), "arf", feedback_type=ftype, recipients=unique(recipients),
                  original=returned,
                  return_path=unfold(fields.get("Original-Mail-From")) or None,
                  why=f"feedback-report ({ftype or 'no type'})")
