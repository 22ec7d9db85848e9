"""Verizon Wireless's SMS/MMS gateways (vtext.com, vzwpix.com): the reasons its notices name in
its own words; the recipient, as Apache James's notices give it (``failed``).

Source: go-sisimai ``lhost/via-verizon.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.mtas.apachejames import failed
from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # known by its gateways' mailer senders: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "userunknown": ("550 - requested action not taken: no such user here", "no valid recipients"),
}


def detect(msg: ParsedMessage) -> bool:
    frm = msg.header("from") or ""
    return "post_master@vtext.com" in frm or ("sysadmin@" in frm and ".vzwpix.com" in frm)


__all__ = ["BOUNCE_ONLY", "PHRASES", "detect", "failed"]
