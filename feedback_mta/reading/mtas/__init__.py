"""Families of mail servers whose bounces need rules of their own: one module per family,
each naming its source. Each exposes ``detect(msg)`` (is this bounce one of theirs?),
mostly ``PHRASES`` (reason -> the family's own words), and, where words are not enough:

* ``hint(msg, text)``: a reason its layout or codes pin down (Exchange's hex codes);
* ``command(msg, text)``: the SMTP command its words say was answered (qmail's "does not
  like recipient" is RCPT);
* ``notice(msg, text)``: which part of its notice speaks of the recipient (Sendmail: the
  transcript's replies, not its boilerplate);
* ``recipient(msg, address)``: what it says of one recipient, and the command (old
  Sendmail's "While talking to" blocks);
* ``failed(msg, notice)``: the failed addresses, where the family names them its own way
  (fml: in angle brackets; Verizon's and James's "RCPT TO:" details);
* ``PER_RECIPIENT = True``: each recipient's paragraph says all;
* ``BOUNCE_ONLY = True``: its ``detect`` matches only bounces (a mailer's sender, a
  bounce's subject), so it is a bounce signal of its own. Most families are known by
  headers every mail of theirs carries (GMX's, Zoho's, an ISP's domain, a relay's
  Received line): those speak only for a message already known to be a bounce, never
  for a person's reply.

The first family in ``REGISTRY`` that recognises the bounce speaks for it; ``reasons``
takes its reason before the general tables (as Sisimai takes its ``lhost`` modules').
Adding a family is adding a module and a line here, plus its samples in the corpus table
(``tests/fixtures/sisimai``); a family with a function of its own above is also a line
in that function's table below. The registry and the tables are typed by the protocols
in ``base``, so mypy fails when a family lacks ``detect`` or a listed function, or has
one with another signature.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from feedback_mta.reading.mtas import (
    apachejames,
    biglobe,
    courier,
    domino,
    dragonfly,
    einsundeins,
    exchange2003,
    exim,
    ezweb,
    fml,
    gmail,
    gmx,
    googlegroups,
    googleworkspace,
    imailserver,
    kddi,
    messagingserver,
    mfilter,
    notes,
    opensmtpd,
    qmail,
    sendmail,
    v5sendmail,
    verizon,
    zoho,
)
from feedback_mta.reading.mtas.base import (
    Commands,
    Failures,
    Family,
    Hints,
    Notices,
    Recipients,
    table,
)
from feedback_mta.reading.parse import ParsedMessage

__all__ = ["COMMANDS", "FAILURES", "HINTS", "NOTICES", "RECIPIENTS", "REGISTRY",
           "bounce_family", "command", "failed", "family", "hint", "notice", "per_recipient",
           "recipient"]

R = TypeVar("R")

#: Most specific first: a Google Groups refusal is also a Gmail notice.
REGISTRY: tuple[Family, ...] = table(
    googlegroups,
    googleworkspace,
    gmail,
    mfilter,
    exchange2003,
    ezweb,
    kddi,
    biglobe,
    verizon,
    apachejames,
    fml,
    dragonfly,
    einsundeins,
    gmx,
    zoho,
    domino,
    notes,
    imailserver,
    messagingserver,
    opensmtpd,
    courier,
    exim,
    qmail,
    v5sendmail,
    sendmail,
)


# The families with functions of their own (``base`` says what each does).
HINTS: tuple[Hints, ...] = table(exchange2003, exim, fml, googlegroups, qmail)
COMMANDS: tuple[Commands, ...] = table(mfilter, qmail)
NOTICES: tuple[Notices, ...] = table(sendmail)
RECIPIENTS: tuple[Recipients, ...] = table(v5sendmail)
FAILURES: tuple[Failures, ...] = table(apachejames, fml, verizon)

_HINT: dict[Family, Callable[[ParsedMessage, str], str]] = {f: f.hint for f in HINTS}
_COMMAND: dict[Family, Callable[[ParsedMessage, str], str]] = {f: f.command for f in COMMANDS}
_NOTICE: dict[Family, Callable[[ParsedMessage, str], str]] = {f: f.notice for f in NOTICES}
_RECIPIENT: dict[Family, Callable[[ParsedMessage, str], tuple[str, str] | None]] = {
    f: f.recipient for f in RECIPIENTS}
_FAILED: dict[Family, Callable[[ParsedMessage, str], list[str]]] = {
    f: f.failed for f in FAILURES}


def family(msg: ParsedMessage) -> Family | None:
    """The family that wrote this bounce, if we know it."""
    found: Family | None = msg.memo(
        "mta_family", lambda: next((m for m in REGISTRY if m.detect(msg)), None))
    return found


def _flag(msg: ParsedMessage, name: str) -> Any:
    """The family's data ``name`` (a flag, its phrases), or None when it has none."""
    return getattr(family(msg), name, None)


def _own(msg: ParsedMessage, functions: dict[Family, R]) -> R | None:
    """The family's function of this table, or None when it has none."""
    found = family(msg)
    return None if found is None else functions.get(found)


def bounce_family(msg: ParsedMessage) -> Family | None:
    """The family, if its detection alone says the message is a bounce."""
    return family(msg) if _flag(msg, "BOUNCE_ONLY") else None


def per_recipient(msg: ParsedMessage) -> bool:
    """Does each recipient's paragraph say all (no need to read the whole notice for a lone
    recipient)?"""
    return bool(_flag(msg, "PER_RECIPIENT"))


def notice(msg: ParsedMessage, text: str) -> str:
    """The part of a bounce's notice (``text``) that speaks of its recipient: all of it,
    unless the family says which part (Sendmail: its transcript's replies)."""
    read = _own(msg, _NOTICE)
    return read(msg, text) if read else text


def recipient(msg: ParsedMessage, address: str) -> tuple[str, str] | None:
    """(what the bounce says of ``address``, the SMTP command it answered) where the
    family knows better than the lines next to the address (old Sendmail's transcript
    blocks), else None."""
    read = _own(msg, _RECIPIENT)
    return read(msg, address) if read else None


def failed(msg: ParsedMessage, notice: str) -> list[str]:
    """The failed addresses, where the family names them its own way, else none."""
    read = _own(msg, _FAILED)
    return read(msg, notice) if read else []


def command(msg: ParsedMessage, text: str) -> str:
    """The SMTP command a family's words say the server answered (qmail: "does not like
    recipient" is RCPT), or ""."""
    read = _own(msg, _COMMAND)
    return read(msg, text) if read else ""


def hint(msg: ParsedMessage, text: str) -> str:
    """The reason the family's own words give for one recipient (``text``: what the
    bounce says of it), or ""."""
    lowered = text.lower()
    for reason, phrases in (_flag(msg, "PHRASES") or {}).items():
        if any(phrase in lowered for phrase in phrases):
            return str(reason)
    read = _own(msg, _HINT)
    return read(msg, text) if read else ""
