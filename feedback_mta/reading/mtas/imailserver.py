"""Ipswitch IMail Server: the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-imailserver.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "hostunknown": ("unknown host",),
    "userunknown": ("unknown user", "invalid final delivery userid"),
    "mailboxfull": ("user mailbox exceeds allowed size",),
    "virusdetected": ("requested action not taken: virus detected",),
    "spamdetected": ("blacklisted url in message",),
    "expired": ("delivery failed ",),
}


def detect(msg: ParsedMessage) -> bool:
    return (msg.subject or "").startswith("Undeliverable Mail ") or (
        msg.header("x-mailer") or ""
    ).startswith("<SMTP32 v")
