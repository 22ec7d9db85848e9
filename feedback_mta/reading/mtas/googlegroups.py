"""Google Groups refusing a post: the group does not exist or does not take the sender's posts.
Its notice lists four possible causes as bullets; that notice is a refusal of the sender
(``rejected``), never a dead address.

Source: go-sisimai ``lhost/via-googlegroups.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)


def detect(msg: ParsedMessage) -> bool:
    return (
        msg.header("x-failed-recipients") is not None
        and msg.header("x-google-smtp-source") is not None
        and "<mailer-daemon@googlemail.com>" in (msg.header("from") or "")
        and "Google Groups" in (msg.plain or "")
    )


def hint(msg: ParsedMessage, text: str) -> str:
    notice = (msg.plain or "").split("----- Original message -----")[0]
    bullets = max(notice.count("\n *"), notice.count("\n*"))
    return "rejected" if bullets == 4 else "onhold"
