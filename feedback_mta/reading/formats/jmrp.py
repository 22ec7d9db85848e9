"""Microsoft's Junk Mail Reporting Program (Outlook.com / Hotmail, "JMRP").

Not ARF: a ``multipart/mixed`` mail from ``staff@hotmail.com`` (subject "complaint about
message from <ip>") whose only part is the complained-about message as ``message/rfc822``,
with the recipient in an added ``X-HmXmrOriginalRecipient`` header (often redacted).
Sisimai's ``Sisimai::ARF`` reads the same markers.
"""

from __future__ import annotations

from feedback_mta.kinds import Kind
from feedback_mta.reading.formats.report import Report, address_in, original, unique
from feedback_mta.reading.parse import ParsedMessage

RECIPIENT_HEADER = "X-HmXmrOriginalRecipient"


def detect(msg: ParsedMessage) -> Report | None:
    returned = original(msg)
    marked = returned is not None and returned.get(RECIPIENT_HEADER) is not None
    from_microsoft = msg.from_address in ("staff@hotmail.com", "staff@outlook.com")
    if not marked and not (from_microsoft and "complaint about message"
                           in msg.subject.lower()):
        return None
    recipients = [address_in(v) for v in (returned.get_all(RECIPIENT_HEADER, [])
                                           if returned is not None else [])]
    return Report(Kind.COMPLAINT, "jmrp", feedback_type="abuse", recipients=unique(recipients),
                  original=returned, why="microsoft jmrp")
