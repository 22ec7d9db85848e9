"""Google Workspace's notices that carry no DSN fields (mailer-daemon@googlemail.com): the
reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-googleworkspace.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "networkerror": (" had no relevant answers.", " responded with code nxdomain"),
    "notaccept": ("null mx",),
    "userunknown": (
        "because the address couldn't be found. check for typos or unnecessary "
        "spaces and try again.",
    ),
}


def detect(msg: ParsedMessage) -> bool:
    return (
        "<mailer-daemon@googlemail.com>" in (msg.header("from") or "")
        and "Delivery Status Notification" in (msg.subject or "")
        and not msg.parts("message/delivery-status")
        and (msg.plain or "").lstrip().startswith("** ")  # "** Address not found **"
    )
