"""KDDI's au one net (dion.ne.jp): the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-kddi.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "mailboxfull": ("as their mailbox is full",),
    "norelaying": ("due to the following smtp relay error",),
    "hostunknown": ("as the remote domain doesnt exist",),
}


def detect(msg: ParsedMessage) -> bool:
    frm = msg.header("from") or ""
    return (
        "no-reply@." in frm
        or ".dion.ne.jp" in frm
        or "no-reply@app.auone-net.jp" in (msg.header("reply-to") or "")
        or any("ezweb.ne.jp (" in r or ".au.com (" in r for r in msg.headers.get("received", ()))
    )
