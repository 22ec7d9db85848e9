"""Sendmail ("Returned mail: see transcript for details"): its DSN's Diagnostic-Code says
what the server answered, and the transcript before it the server's replies (``<<<``
lines) and the command they answered; the rest of the notice is Sendmail's own
boilerplate, which says nothing about the reason.

Source: go-sisimai ``lhost/via-sendmail.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

import re

from feedback_mta.reading.parse import ParsedMessage

_REPLIES = re.compile(r"^<<< (.+)$", re.MULTILINE)


def detect(msg: ParsedMessage) -> bool:
    subject = msg.subject or ""
    return msg.header("x-aol-ip") is None and (
        subject.startswith("Warning: ") or subject.endswith("see transcript for details"))


def notice(msg: ParsedMessage, text: str) -> str:
    """Of the notice, only the server's replies in the transcript."""
    return " ".join(_REPLIES.findall(msg.plain or ""))
