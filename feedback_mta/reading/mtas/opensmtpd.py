"""OpenSMTPD (https://www.opensmtpd.org/), phrases from its source as Sisimai cites them: the
reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-opensmtpd.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "expired": ("envelope expired",),
    "securityerror": ("could not retrieve credentials",),
    "hostunknown": ("invalid domain name", "domain does not exist"),
    "networkerror": (
        "address family mismatch on destination mxs",
        "all routes to destination blocked",
        "bad dns lookup error code",
        "could not retrieve source address",
        "loop detected",
        "network error on destination mxs",
        "no valid route to remote mx",
        "no valid route to destination",
        "temporary failure in mx lookup",
    ),
    "notaccept": (
        "destination seem to reject all mails",
        "no mx found for domain",
        "no mx found for destination",
    ),
}


def detect(msg: ParsedMessage) -> bool:
    return (
        "Delivery status notification" in (msg.subject or "")
        or "Mailer Daemon <" in (msg.header("from") or "")
        or any(" (OpenSMTPD) with " in r for r in msg.headers.get("received", ()))
    )
