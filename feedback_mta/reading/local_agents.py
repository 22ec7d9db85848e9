"""What local delivery agents (Dovecot, mail.local, procmail, maildrop, vpopmail,
vmailmgr) mean by their own words, when they refused to put a message in a mailbox (pure
data and one lookup). "mail.local: unknown user" is a real unknown user, even when the
server's DSN says only 5.5.0 "Service unavailable".

Source: go-sisimai ``lda/lib.go``, lower-cased (BSD 2-Clause; the licence is in
``reason_words``).
"""

from __future__ import annotations

#: Agent -> the words that show it wrote the message.
AGENTS: dict[str, tuple[str, ...]] = {
    "dovecot": ("your message to <", "> was automatically rejected:"),
    "mail.local": ("mail.local: ",),
    "procmail": ("procmail: ", "/procmail "),
    "maildrop": ("maildrop: ",),
    "vpopmail": ("vdelivermail: ",),
    "vmailmgr": ("vdeliver: ",),
}

#: Agent -> reason -> its phrases.
PHRASES: dict[str, dict[str, tuple[str, ...]]] = {
    "dovecot": {
        "mailboxfull": ("not enough disk space", "quota exceeded",
                        "quota exceeded (mailbox for user is full)"),
        "userunknown": ("mailbox doesn't exist: ",),
    },
    "mail.local": {
        "mailboxfull": ("disc quota exceeded", "mailbox full or quota exceeded"),
        "systemerror": ("temporary file write error",),
        "userunknown": (": invalid mailbox path", ": unknown user:",
                        ": user missing home directory", ": user unknown"),
    },
    "procmail": {
        "mailboxfull": ("quota exceeded while writing", "user over quota"),
        "systemerror": ("service unavailable",),
        "systemfull": ("no space left to finish writing",),
    },
    "maildrop": {
        "mailboxfull": ("maildir over quota.",),
        "userunknown": ("cannot find system user", "invalid user specified."),
    },
    "vpopmail": {
        "filtered": ("user does not exist, but will deliver to ",),
        "mailboxfull": ("domain is over quota", "user is over quota"),
        "suspend": ("account is locked email bounced",),
        "userunknown": ("sorry, no mailbox here by that name.",),
    },
    "vmailmgr": {
        "mailboxfull": ("delivery failed due to system quota violation",),
        "userunknown": ("invalid or unknown base user or domain",
                        "invalid or unknown virtual user",
                        "user name does not refer to a virtual user"),
    },
}


def reason(text: str, command: str = "") -> str:
    """The reason a local delivery agent's words give (``text`` lower-cased), or "": a
    ``mailererror`` when it failed in words we do not know."""
    if not text or command not in ("", "DATA"):
        return ""
    agent = next((name for name, words in AGENTS.items()
                  if any(word in text for word in words)), "")
    if not agent:
        return ""
    return next((found for found, phrases in PHRASES[agent].items()
                 if any(phrase in text for phrase in phrases)), "mailererror")
