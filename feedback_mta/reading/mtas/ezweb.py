"""au by KDDI's EZweb mail (ezweb.ne.jp, au.com): the reasons its notices name in its own
words.

Source: go-sisimai ``lhost/via-ezweb.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

PHRASES: dict[str, tuple[str, ...]] = {
    "expired": ("your message was not delivered within ",),
    "mailboxfull": ("the user(s) account is temporarily over quota",),
    "onhold": ("each of the following recipients was rejected by a remote mail server",),
    "suspend": ("the user(s) account is disabled.", "the user(s) account is temporarily limited."),
}


def detect(msg: ParsedMessage) -> bool:
    frm, mid = msg.header("from") or "", msg.header("message-id") or ""
    signs = (
        "Postmaster@ezweb.ne.jp" in frm,
        "Postmaster@au.com" in frm,
        msg.subject == "Mail System Error - Returned Mail",
        any(
            "ezweb.ne.jp (EZweb Mail) with" in r or ".au.com (" in r
            for r in msg.headers.get("received", ())
        ),
        ".ezweb.ne.jp>" in mid,
        ".au.com>" in mid,
    )
    return sum(signs) >= 2
