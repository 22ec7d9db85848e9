"""GMX and web.de: the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-gmx.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "expired": ("delivery retry timeout exceeded",),
}


def detect(msg: ParsedMessage) -> bool:
    return msg.header("x-gmx-antispam") is not None
