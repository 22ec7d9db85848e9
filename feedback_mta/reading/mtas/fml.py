"""fml, a Japanese mailing-list manager: the list's own notices to a sender it refused (not a
member, a loop, a security alert). The address it speaks of is the one it names in angle
brackets (the list's); the reason is in its words, else in its subject.

Source: go-sisimai ``lhost/via-fml.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

from feedback_mta.reading.parse import ANGLE_ADDRESS, ParsedMessage

# Known by the list server's header, its -admin sender and its own Message-ID all at once:
# a list member's post through fml keeps the member's From.
BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

PHRASES: dict[str, tuple[str, ...]] = {
    "rejected": (" header may cause mail loop", "not member article from ", "reject mail from ",
                 "reject spammers:", "you are not a member of this mailing list"),
    "systemerror": (" has detected a loop condition so that", "duplicated message-id",
                    "loop back warning:"),
    "securityerror": ("security alert:",),
}

#: The same reasons by the notice's subject, when its words say none.
_TITLES: dict[str, tuple[str, ...]] = {
    "rejected": (" are not member", "not member article from ", "reject mail ",
                 "spam mail from a spammer is rejected"),
    "systemerror": ("fml system error message", "loop alert: ", "loop back warning: ",
                    "warning: unix from loop"),
    "securityerror": ("security alert",),
}


def detect(msg: ParsedMessage) -> bool:
    return (msg.header("x-mlserver") is not None
            and "-admin@" in (msg.header("from") or "")[1:]
            and ".FML" in (msg.header("message-id") or "")[2:])


def failed(msg: ParsedMessage, notice: str) -> list[str]:
    """Each line of the notice that names an address in angle brackets speaks of it."""
    return [found.group(1).lower() for line in notice.splitlines()
            if (found := ANGLE_ADDRESS.search(line))]


def hint(msg: ParsedMessage, text: str) -> str:
    subject = (msg.subject or "").lower()
    return next((reason for reason, titles in _TITLES.items()
                 if any(title in subject for title in titles)), "")
