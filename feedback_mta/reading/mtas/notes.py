"""Lotus Notes: the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-notes.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "networkerror": ("message has exceeded maximum hop count",),
    "userunknown": (
        "user not listed in public name & address book",
        "ディレクトリのリストにありません",
    ),
}


def detect(msg: ParsedMessage) -> bool:
    return (msg.subject or "").startswith("Undeliverable message")
