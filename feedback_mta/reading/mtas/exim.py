"""Exim (https://www.exim.org/), phrases from its source as Sisimai cites them: the reasons its
notices name in its own words.

Source: go-sisimai ``lhost/via-exim.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ParsedMessage

TITLES = ("Delivery Status Notification", "Mail delivery failed", "Mail failure",
          "Message frozen", "Warning: message ", "error(s) in forwarding or filtering")

PHRASES: dict[str, tuple[str, ...]] = {
    "userunknown": ("user not found",),
    "hostunknown": (
        "all host address lookups failed permanently",
        "all relevant mx records point to non-existent hosts",
        "unrouteable address",
    ),
    "mailboxfull": ("mailbox is full", "error: quota exceed"),
    "notaccept": (
        "an mx or srv record indicated no smtp service",
        "no host found for existing smtp connection",
    ),
    "syntaxerror": (
        "angle-brackets nested too deep",
        'expected word or "<"',
        "domain missing in source-routed address",
        "malformed address:",
    ),
    "systemerror": (
        "delivery to file forbidden",
        "delivery to pipe forbidden",
        "local delivery failed",
        "lmtp error after ",
    ),
    "contenterror": ('too many "received" headers',),
}


def detect(msg: ParsedMessage) -> bool:
    """Two of: From "Mail Delivery System", Exim's Message-ID shape (``<XXXXXX-XXXXXX-XX@``),
    one of its subjects; or the headers of MXLogic, which runs Exim."""
    subject, message_id = msg.subject or "", (msg.header("message-id") or "").strip()
    signs = ("Mail Delivery System" in (msg.header("from") or ""),
             message_id.find("<") == 0 and message_id.find("-") == 8
             and message_id.find("@") == 18,
             any(title in subject for title in TITLES))
    third_party = (any(msg.header(h) is not None for h in ("x-mx-bounce", "x-mxl-hash",
                                                           "x-mxl-notehash"))
                   or "<mxl~" in message_id)
    return sum(signs) >= 2 or third_party


#: Words of a delivery that was retried until it gave up (retry.c, deliver.c, smtp.c).
DELAYED = ("retry timeout exceeded", "no action is required on your part",
           "retry time not reached for any host after a long failure period",
           "all hosts have been failing for a long time and were last tried",
           "delay reason: ", "has been frozen", "was frozen on arrival by ")


def hint(msg: ParsedMessage, text: str) -> str:
    """A queue that gave up is ``expired``."""
    lowered = text.lower()
    return "expired" if any(word in lowered for word in DELAYED) else ""

