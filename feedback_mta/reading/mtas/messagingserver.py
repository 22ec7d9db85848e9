"""Oracle (Sun, iPlanet) Messaging Server: the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-messagingserver.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "hostunknown": ("illegal host/domain name found",),
}


def detect(msg: ParsedMessage) -> bool:
    return "Boundary_(ID_" in (msg.header("content-type") or "") or (msg.subject or "").startswith(
        "Delivery Notification: "
    )
