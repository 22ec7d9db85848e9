"""qmail (https://cr.yp.to/qmail.html), qmail-send.c and qmail-remote.c as Sisimai cites them:
the reasons its notices name in its own words.

Source: go-sisimai ``lhost/via-qmail.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

#: Each recipient's paragraph says all; the notice's preamble ("I'm afraid I wasn't able
#: to deliver...") is boilerplate.
PER_RECIPIENT = True

PHRASES: dict[str, tuple[str, ...]] = {
    "hostunknown": ("sorry, i couldn't find any host ",),
    "mailboxfull": ("disk quota exceeded",),
    "mesgtoobig": ("message size exceeds fixed maximum message size:",),
    "networkerror": (
        "sorry, i wasn't able to establish an smtp connection",
        "sorry. although i'm listed as a best-preference mx or a for that host",
    ),
    "notaccept": ("sorry, i couldn't find a mail exchanger or ip address",),
    "systemerror": ("bad interpreter: no such file or directory", "system error", "unable to"),
    "systemfull": ("requested action not taken: mailbox unavailable (not enough free space)",),
    "userunknown": ("no mailbox here by that name",),
}


def detect(msg: ParsedMessage) -> bool:
    return msg.subject in ("failure notice", "Failure Notice") or any(
        "(qmail " in r and ("invoked for bounce)" in r or "network)" in r)
        for r in msg.headers.get("received", ())
    )


#: qmail-remote.c's words for where the dialogue failed, as the SMTP command.
COMMANDS = {
    "CONN": (" but greeting failed.",),
    "EHLO": (" but my name was rejected.",),
    "MAIL": (" but sender was rejected.",),
    "RCPT": (" does not like recipient.",),
    "DATA": (" failed on data command", " failed after i sent the message"),
}


def command(msg: ParsedMessage, text: str) -> str:
    lowered = text.lower()
    return next((name for name, words in COMMANDS.items()
                 if any(word in lowered for word in words)), "")


def hint(msg: ParsedMessage, text: str) -> str:
    """A refusal of our HELO is about us (``blocked``)."""
    return "blocked" if command(msg, text) == "EHLO" else ""

