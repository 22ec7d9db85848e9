"""Gmail's own notices (mailer-daemon@googlemail.com): the reasons its notices name in its own
words.

Source: go-sisimai ``lhost/via-gmail.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "expired": (
        "dns error: could not contact dns servers",
        "delivery to the following recipient has been delayed",
        "the recipient server did not accept our requests to connect",
    ),
    "hostunknown": (
        "dns error: domain name not found",
        "dns error: dns server returned answer with no data",
    ),
}


def detect(msg: ParsedMessage) -> bool:
    return "<mailer-daemon@googlemail.com>" in (
        msg.header("from") or ""
    ) and "Delivery Status Notification" in (msg.subject or "")
