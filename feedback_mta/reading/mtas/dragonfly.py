"""DragonFly Mail Agent (dma, https://github.com/corecode/dma): the reasons its notices name in
its own words.

Source: go-sisimai ``lhost/via-dragonfly.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "expired": ("could not deliver for the last ",),
    "hostunknown": ("dns lookup failure: host ",),
}


def detect(msg: ParsedMessage) -> bool:
    return "Mail delivery failed" in (msg.subject or "") and any(
        " (DragonFly Mail Agent" in r for r in msg.headers.get("received", ())
    )
