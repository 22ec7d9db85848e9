"""Biglobe and the Japanese ISPs on its mail system (inacatv, tmtv, ttv): the reasons its
notices name in its own words.

Source: go-sisimai ``lhost/via-biglobe.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "filtered": ("mail delivery failed... user unknown",),
    "mailboxfull": ("the number of messages in recipient's mailbox exceeded the local limit.",),
}


def detect(msg: ParsedMessage) -> bool:
    frm = msg.header("from") or ""
    return (
        "postmaster@" in frm
        and (msg.subject or "").startswith("Returned mail:")
        and any(f"@{isp}.ne.jp" in frm for isp in ("biglobe", "inacatv", "tmtv", "ttv"))
    )
