"""1&1 (Ionos) mail: the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-einsundeins.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "mesgtoobig": ("mail size limit exceeded",),
}


def detect(msg: ParsedMessage) -> bool:
    return (msg.header("from") or "").startswith(
        '"Mail Delivery System"'
    ) and msg.subject == "Mail delivery failed: returning message to sender"
