"""Why a recipient bounced, in Sisimai's vocabulary (pure).

Sisimai (https://libsisimai.org/en/reason/) names some thirty reasons; mail operators,
Mautic, Postmark and SES speak of bounces the same way, so we do too, and we decide them
the way Sisimai does, so that a bounce means the same here as in the reference parser:
the order of the checks is go-sisimai's ``reason/find.go`` and ``reason/why-*.go``, the
status table its ``smtp/status``, and the words its tables (``reason_words``).

A reason is decided from what one failed recipient's report says (``Facts``):

1. a reason the format itself already knows (a queue that gave up is ``expired``);
2. the *probes*, in a fixed order (mailbox full, message too big, ..., user unknown,
   filtered, ..., blocked): each asks the enhanced status's meaning, the server's words
   and the SMTP command it answered. "User unknown" at RCPT is ``userunknown``; the same
   words after DATA (or with no command) come from a filter, ``filtered``; words about
   the sender at MAIL FROM are ``rejected``;
3. the words alone of the rest (policy, system, network, ...), then the status's class;
4. ``onhold`` when the server said something we cannot place, ``undefined`` when nothing.

Hard or soft follows from the reason by one table (``bounces.HARD``, ``[feedback]
hard_reasons``): only a reason that says the address itself is gone is hard (Sisimai's
choice too, and a 4.x.x status never is); the rest are soft, counted, and turn hard after
``[feedback] soft_bounce_limit``. Calling a live address dead loses a contact for good.

Ported from go-sisimai, Copyright (c) 2020-2025, azumakuniyuki and sisimai development
team, under the BSD 2-Clause License (its text is in ``reason_words``).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import NamedTuple

from feedback_mta import bounces
from feedback_mta.reading import local_agents, remote_hosts
from feedback_mta.reading.reason_words import PHRASES, WORDS

__all__ = ["PROBES", "STATUS", "WORDS", "Facts", "command_in", "decide", "is_hard", "prefer",
           "preferred_status", "reason", "reply_in", "status_in"]

#: RFC 3463 enhanced status -> reason (go-sisimai ``smtp/status.Name``).
STATUS = {
    "4.1.6": "hasmoved", "4.1.7": "rejected", "4.1.8": "rejected", "4.1.9": "systemerror",
    "4.2.1": "blocked", "4.2.2": "mailboxfull", "4.2.3": "exceedlimit", "4.2.4": "filtered",
    "4.3.0": "systemerror", "4.3.1": "systemfull", "4.3.2": "notaccept",
    "4.3.3": "systemerror", "4.3.5": "systemerror", "4.4.0": "networkerror",
    "4.4.1": "expired", "4.4.2": "networkerror", "4.4.3": "systemerror",
    "4.4.4": "networkerror", "4.4.5": "systemfull", "4.4.6": "networkerror",
    "4.4.7": "expired", "4.4.8": "networkerror", "4.5.0": "networkerror",
    "4.5.3": "systemerror", "4.5.5": "systemerror", "4.6.0": "contenterror",
    "4.6.2": "contenterror", "4.6.5": "contenterror", "4.7.0": "securityerror",
    "4.7.1": "blocked", "4.7.2": "blocked", "4.7.5": "securityerror",
    "4.7.6": "securityerror", "4.7.7": "securityerror", "4.7.12": "securityerror",
    "4.7.15": "securityerror", "4.7.16": "mesgtoobig", "4.7.24": "authfailure",
    "4.7.25": "requireptr", "4.7.26": "authfailure",
    "5.1.0": "userunknown", "5.1.1": "userunknown", "5.1.2": "hostunknown",
    "5.1.3": "userunknown", "5.1.4": "filtered", "5.1.6": "hasmoved", "5.1.7": "rejected",
    "5.1.8": "rejected", "5.1.9": "systemerror", "5.1.10": "notaccept",
    "5.2.0": "filtered", "5.2.1": "filtered", "5.2.2": "mailboxfull",
    "5.2.3": "exceedlimit", "5.2.4": "filtered", "5.3.0": "systemerror",
    "5.3.1": "systemfull", "5.3.2": "notaccept", "5.3.3": "systemerror",
    "5.3.4": "mesgtoobig", "5.3.5": "systemerror", "5.4.0": "networkerror",
    "5.4.3": "systemerror", "5.4.4": "hostunknown", "5.5.2": "syntaxerror",
    "5.5.3": "toomanyconn", "5.5.4": "systemerror", "5.5.5": "systemerror",
    "5.5.6": "syntaxerror", "5.6.0": "contenterror", "5.6.1": "contenterror",
    "5.6.2": "contenterror", "5.6.3": "contenterror", "5.6.5": "contenterror",
    "5.6.6": "contenterror", "5.6.7": "contenterror", "5.6.8": "contenterror",
    "5.6.9": "contenterror", "5.7.0": "securityerror", "5.7.1": "securityerror",
    "5.7.2": "securityerror", "5.7.3": "securityerror", "5.7.4": "securityerror",
    "5.7.5": "securityerror", "5.7.6": "securityerror", "5.7.7": "securityerror",
    "5.7.8": "securityerror", "5.7.9": "securityerror", "5.7.10": "securityerror",
    "5.7.11": "securityerror", "5.7.13": "suspend", "5.7.14": "securityerror",
    "5.7.15": "securityerror", "5.7.16": "mesgtoobig", "5.7.17": "hasmoved",
    "5.7.18": "hasmoved", "5.7.19": "securityerror", "5.7.20": "authfailure",
    "5.7.21": "authfailure", "5.7.22": "authfailure", "5.7.23": "authfailure",
    "5.7.24": "authfailure", "5.7.25": "requireptr", "5.7.26": "authfailure",
    "5.7.27": "notaccept", "5.7.28": "spamdetected", "5.7.29": "authfailure",
    "5.7.30": "failedstarttls",
}

#: Reasons a format may name that the probes still look past (they say little alone).
RETRIED = frozenset({"undefined", "onhold", "systemerror", "securityerror", "expired",
                     "networkerror", "hostunknown", "userunknown"})
#: Commands answered before the message was sent: nothing there judged its content.
BEFORE_DATA = frozenset({"CONN", "EHLO", "HELO", "MAIL", "RCPT"})


class Facts(NamedTuple):
    """What a bounce says about one recipient, as the probes read it."""

    #: RFC 3463 enhanced status (``5.1.1``), the preferred one of the report's.
    status: str = ""
    #: The server's words, lower-cased on one line.
    text: str = ""
    #: The SMTP command the server answered (``RCPT``, ``DATA``, ...), when known.
    command: str = ""
    #: The SMTP reply code (``550``), when known.
    reply: str = ""
    #: The DSN's ``Action`` (``failed``, ``delayed``).
    action: str = ""
    #: The ``Diagnostic-Code`` type (``SMTP``, ``X-UNIX``, ...).
    kind: str = ""
    #: A reason the format already decided, if any.
    hint: str = ""
    #: The phrases of the reason tables ``text`` holds (``reason_words.PHRASES``).
    found: frozenset[str] = frozenset()

    @property
    def named(self) -> str:
        return STATUS.get(self.status, "")

    def says(self, reason: str) -> bool:
        """Do the server's words say ``reason``?"""
        return WORDS[reason].said(self.found, self.text)


Probe = Callable[[Facts], bool]


def _named(name: str) -> Probe:  # a probe: the format said so, the status says so, or the words do
    def probe(f: Facts) -> bool:
        return f.hint == name or f.named == name or f.says(name)
    return probe


def _words(name: str) -> Probe:  # a probe that looks at the words only
    def probe(f: Facts) -> bool:
        return f.hint == name or f.says(name)
    return probe


def _mesgtoobig(f: Facts) -> bool:
    if f.hint == "mesgtoobig" or f.named == "mesgtoobig":
        return True
    if f.named == "exceedlimit" or f.status == "5.2.3":
        return False
    return f.says("mesgtoobig")


def _suspend(f: Facts) -> bool:
    return f.hint == "suspend" or f.reply == "525" or f.says("suspend")


def _norelaying(f: Facts) -> bool:
    if f.hint == "norelaying":
        return True
    if f.hint in ("securityerror", "systemerror", "undefined") or f.command in (
            "CONN", "EHLO", "HELO"):
        return False
    return f.says("norelaying")


_NOT_UNKNOWN = ("norelaying", "blocked", "mailboxfull", "hasmoved", "rejected", "notaccept")


def _userunknown(f: Facts) -> bool:
    if f.hint == "userunknown":
        return True
    if f.named == "suspend":
        return False
    if f.named == "userunknown":  # 5.1.1, unless the words say something else
        return not any(f.says(other) for other in _NOT_UNKNOWN)
    return f.command == "RCPT" and f.says("userunknown")


def _filtered(f: Facts) -> bool:
    if f.hint == "filtered":
        return True
    if f.named == "suspend":
        return False
    if f.named != "filtered" and f.command in BEFORE_DATA:
        return False
    return f.says("filtered") or f.says("userunknown")


def _contenterror(f: Facts) -> bool:
    if f.hint == "contenterror":
        return True
    if _spamdetected(f):
        return False
    return f.named == "contenterror" or f.says("contenterror")


def _rejected(f: Facts) -> bool:
    if f.hint == "rejected" or f.named == "rejected":
        return True
    named = f.named or "undefined"
    if f.command == "MAIL":
        return f.says("rejected")
    if f.command == "DATA":
        return named != "userunknown" and f.says("rejected")
    if named in ("undefined", "onhold", "securityerror", "systemerror"):
        return f.says("rejected")
    return False


def _hostunknown(f: Facts) -> bool:
    if f.hint == "hostunknown":
        return True
    if f.named == "hostunknown":
        return not f.says("networkerror")
    return f.says("hostunknown")


def _spamdetected(f: Facts) -> bool:
    if not f.status:
        return False
    if f.hint == "spamdetected" or f.named == "spamdetected":
        return True
    return f.command not in BEFORE_DATA and f.says("spamdetected")


#: The probes, in Sisimai's order: the first that says yes decides.
PROBES = (
    ("mailboxfull", _named("mailboxfull")), ("mesgtoobig", _mesgtoobig),
    ("exceedlimit", _named("exceedlimit")), ("suspend", _suspend),
    ("hasmoved", _words("hasmoved")), ("norelaying", _norelaying),
    ("authfailure", _named("authfailure")), ("userunknown", _userunknown),
    ("filtered", _filtered), ("requireptr", _named("requireptr")),
    ("notcompliantrfc", _words("notcompliantrfc")),
    ("badreputation", _words("badreputation")), ("contenterror", _contenterror),
    ("rejected", _rejected), ("hostunknown", _hostunknown),
    ("spamdetected", _spamdetected), ("speeding", _words("speeding")),
    ("toomanyconn", _named("toomanyconn")), ("blocked", _named("blocked")),
)
#: Then the words alone, in this order.
WORDS_ONLY = ("mailboxfull", "authfailure", "badreputation", "speeding", "spamdetected",
              "virusdetected", "policyviolation", "norelaying", "systemerror",
              "networkerror", "suspend", "contenterror", "systemfull", "notaccept",
              "expired", "failedstarttls", "securityerror", "mailererror")


def decide(f: Facts) -> str:
    """The reason of one failed recipient (go-sisimai ``reason.Find``)."""
    if f.hint and f.hint not in RETRIED:
        return f.hint
    if f.status.startswith("2."):
        return "delivered"
    if f.kind in ("SMTP", ""):
        found = next((name for name, probe in PROBES if probe(f)), "")
        if found:
            return found
    found = _another(f) or ("expired" if f.action == "delayed" else "")
    return found or ("onhold" if f.text else f.hint or "undefined")


def _another(f: Facts) -> str:
    """The words alone, then the status's class (go-sisimai ``reason.anotherone``)."""
    if f.hint and f.hint not in ("undefined", "onhold"):
        return f.hint
    named = f.named
    if named and named not in RETRIED and f.kind != "SMTP":
        return named
    for name in WORDS_ONLY:
        if f.says(name):
            return name
    if named:
        return named
    subject = f.status[:3]
    if subject in ("5.6", "4.6"):
        return "contenterror"
    if subject in ("5.7", "4.7"):
        return "securityerror"
    if f.kind.startswith("X-UNIX"):
        return "mailererror"
    if f.reply.isdigit() and (400 < int(f.reply) < 408 or 500 < int(f.reply) < 508):
        return "syntaxerror"
    if f.action in ("delayed", "expired"):
        return "expired"
    if f.command in ("EHLO", "HELO"):
        return "blocked"
    return named


# -- reading the facts out of a server's words ------------------------------------------

#: Commands as they appear in transcripts and notices, in the order of a session: the
#: latest one named is the one the server answered.
_COMMANDS = ("HELO", "EHLO", "STARTTLS", "AUTH PLAIN", "AUTH LOGIN", "AUTH CRAM-",
             "AUTH DIGEST-", "MAIL F", "RCPT", "RCPT T", "DATA", "QUIT", "XFORWARD")
_LONG = {"STAR": "STARTTLS", "XFOR": "XFORWARD"}
_WORDCHAR = re.compile(r"[0-9@-Z`-z]")


def command_in(text: str | None) -> str:
    """The SMTP command a server's words say it answered (go-sisimai ``command.Find``):
    ``in reply to RCPT TO command`` is RCPT; a command inside a word (DATABASE@...) is not
    one."""
    if not text or len(text) < 4:
        return ""
    padded = f" {text} "
    found: list[str] = []
    for word in _COMMANDS:
        at = text.find(word)
        if at < 0:
            continue
        if " " not in word and (_WORDCHAR.match(padded[at]) or
                                _WORDCHAR.match(padded[at + len(word) + 1])):
            continue
        short = word[:4]
        if any(short.startswith(seen) or seen.startswith(short) for seen in found):
            continue
        found.append(_LONG.get(short, short))
    return found[-1] if found else ""


# The lookbehinds stand after the first digit, where they look back over it: a pattern that
# starts with a digit class lets the regex engine skip to the digits, where one that starts
# with a lookbehind tries every character (3.4x slower on the corpus, the same matches).
_REPLY = re.compile(r"([245](?<![.\d].)[0-5]\d)(?![.\d])")
_REPLIES = frozenset((
    "211", "214", "220", "221", "235", "250", "251", "252", "253", "354", "421", "422", "430",
    "432", "450", "451", "452", "453", "454", "455", "456", "458", "459", "500", "501", "502",
    "503", "504", "520", "521", "523", "524", "525", "530", "533", "534", "535", "538", "550",
    "551", "552", "553", "554", "555", "556", "557"))


def reply_in(text: str | None, status: str | None = None) -> str:
    """The SMTP reply code in a server's words, of the status's class when one is known."""
    if not text or "x-unix" in text.lower():
        return ""
    first = (status or "")[:1]
    for match in _REPLY.finditer(text):
        code = match.group(1)
        if code in _REPLIES and (first not in "245" or not first or code[0] == first):
            return code
    return ""


_ENHANCED = re.compile(r"([245])(?<![\dvV.].)\.([0-7])\.(\d{1,3})(?!\d)")


def status_in(text: str | None) -> str:
    """The enhanced status a server's words give (``550 5.1.1 ...``): the most telling of
    them when there are several, ``x.0.0`` and ``4.4.7`` only when there is no other."""
    codes, generic, success = [], "", ""
    for match in _ENHANCED.finditer(text or ""):
        code = ".".join(match.groups())
        if code.startswith("2."):
            success = success or code  # a transcript's "250 2.1.5 Ok" is not the failure
        elif code.endswith(".0.0") or code == "4.4.7":
            generic = code
        else:
            codes.append(code)
    if not codes and not generic:
        return success
    if generic:
        codes.append(generic)
    found = codes[0] if codes else ""
    for code in codes[1:]:
        found = prefer(found, code)
    return found


def prefer(field: str | None, said: str | None, reply: str = "") -> str:
    """The ``Status`` field or the code in the server's words, whichever says more
    (go-sisimai ``status.Prefer``)."""
    field, said = field or "", said or ""
    if not field or len(field) < 5:
        return said or field
    if not said or len(said) < 5:
        return field
    if reply and field[0] != said[0]:
        if reply[0] == field[0]:
            return field
        if reply[0] == said[0]:
            return said
    if field == said:
        return field
    if ".0.0" in field:
        return said if ".0.0" not in said else field
    if ".0" in field and ".0" not in said:
        return said
    if ".0.0" in said:
        return field
    if field in ("4.4.7", "4.7.0") or field.startswith("5.3.") or field[1:4] in (
            ".5.1", ".5.2", ".5.4", ".5.5"):
        return said
    if field == "5.1.1":
        return field if ".0" in said or said.startswith("5.5.") else said
    if field == "5.1.3" and said.startswith("5.7."):
        return said
    return field


def preferred_status(field: str | None, text: str) -> tuple[str, str]:
    """(the status that says most: the report's field or a code in the server's words
    (``prefer``); the SMTP reply code in the words)."""
    said = status_in(text)
    reply = reply_in(text, said or field)
    return prefer(field, said, reply), reply


def reason(status: str | None, diagnostic: str | None = None, *, command: str = "",
           action: str = "", kind: str = "", hint: str = "", remote: str | None = None,
           recipient: str | None = None, reporting: str | None = None) -> str:
    """The reason of one failed recipient from its enhanced status (``5.1.1``), the
    server's words, and what else the report says: the SMTP command, the DSN's action and
    diagnostic type, a reason the bounce's format knows (``hint``), the server that
    refused (``remote``), the one that wrote the bounce (``reporting``) and the address."""
    raw = " ".join((diagnostic or "").split())
    status, reply = preferred_status(status, raw)
    text = raw.lower()
    facts = Facts(status=status, text=text, command=command or command_in(raw), reply=reply,
                  action=action.lower(), kind=kind.upper(), hint=hint,
                  found=PHRASES.in_text(text))
    if not hint or hint in RETRIED:  # a mailbox's or a big server's own words come first
        local = local_agents.reason(facts.text, facts.command)
        if local:
            return local
        domain = (recipient or "").rpartition("@")[2]
        said = remote_hosts.reason(remote, domain, facts.text, facts.status, facts.reply,
                                   facts.command, reporting)
        if said:
            return said
    return decide(facts)


def is_hard(name: str, status: str | None = None,
            hard_reasons: frozenset[str] = bounces.HARD) -> bool:
    """Is a bounce for this reason hard? Never when the failure was temporary (a 4.x.x
    status: the server itself says to try again, whatever its words)."""
    return name in hard_reasons and not (status or "").startswith("4")
