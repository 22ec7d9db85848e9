"""Zoho Mail: the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-zoho.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "expired": ("host not reachable",),
}


def detect(msg: ParsedMessage) -> bool:
    return msg.header("x-zohomail") is not None
