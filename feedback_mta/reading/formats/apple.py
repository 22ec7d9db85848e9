"""Apple Mail's one-tap unsubscribe (iOS 10 and later, macOS, iCloud Mail): a mail with an
empty subject sent to the ``mailto:`` of ``List-Unsubscribe`` (RFC 2369) whose body reads
``Apple Mail sent this email to unsubscribe from the message "<subject>".`` (``iOS Mail``
on older systems). The sender is the person unsubscribing.
"""

from __future__ import annotations

import re

from feedback_mta.kinds import Kind
from feedback_mta.reading.formats.report import Report, address_in, unique
from feedback_mta.reading.parse import ParsedMessage

_BODY = re.compile(r"^\s*(?:apple|ios|ipados|macos|icloud)?\s*mail sent this (?:e-?mail|message)"
                   r" to unsubscribe from", re.IGNORECASE)


def detect(msg: ParsedMessage) -> Report | None:
    if msg.message.is_multipart() or (msg.subject.strip() and b" to unsubscribe" not in msg.raw):
        return None  # Apple's mail is one text part with an empty subject
    if not _BODY.match(msg.plain or ""):
        return None
    return Report(Kind.UNSUBSCRIBE, "apple", feedback_type="opt-out",
                  recipients=unique([address_in(msg.from_address)]), heuristic=True,
                  why="apple mail unsubscribe")
