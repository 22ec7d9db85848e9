"""Courier MTA (https://www.courier-mta.org/): the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-courier.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "hostunknown": ("no such domain.",),
    "systemerror": ("this domain's dns violates rfc 1035.",),
    "networkerror": ("dns lookup failed.",),
}


def detect(msg: ParsedMessage) -> bool:
    subject = msg.subject or ""
    return (
        "Courier mail server at " in (msg.header("from") or "")
        or "NOTICE: mail delivery status." in subject
        or "WARNING: delayed mail." in subject
        or (msg.header("message-id") or "").strip().startswith("<courier.")
    )
