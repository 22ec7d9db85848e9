"""What every format module returns: a frozen ``Report``, plus the small helpers they share.

A report says what a message is (complaint, bounce, unsubscribe, delivery notice), the
addresses it is about *as found in it*, and the headers of the message it returns (the
"original"), because that is where our token is when the provider redacted the recipient.
Attribution to a contact happens later (``attribution``); nothing here touches a database.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from email.message import Message
from typing import TYPE_CHECKING, NamedTuple

from feedback_mta.kinds import Kind
from feedback_mta.reading import mime
from feedback_mta.reading.parse import POLICY, part_text

if TYPE_CHECKING:
    from feedback_mta.reading.parse import ParsedMessage


class Bounced(NamedTuple):
    """One recipient of a bounce: hard (the address is gone) or soft (try again later)."""

    address: str
    hard: bool
    #: RFC 3463 status (``5.1.1``) when the report gives one.
    status: str | None = None
    #: Why, in Sisimai's vocabulary (``userunknown``, ``mailboxfull``, ...: ``reasons``).
    reason: str = ""
    #: What the receiving server said (``Diagnostic-Code``, or the lines about the address),
    #: unfolded, at most 500 characters; never the returned message's text.
    diagnostic: str = ""
    #: The address an alias expanded ``address`` to, where the DSN names both
    #: (``Final-Recipient`` beside the ``Original-Recipient`` we sent to).
    final: str | None = None


class Report(NamedTuple):
    kind: Kind
    #: The module that read it (``arf``, ``dsn``, ``jmrp``, ...).
    format: str
    #: ARF Feedback-Type, lower-case; ``abuse`` for complaint formats that have none.
    feedback_type: str | None = None
    #: The complained-about / bounced / unsubscribing addresses, lower-case, in order, once.
    recipients: tuple[str, ...] = ()
    #: Per-recipient results of a bounce.
    bounces: tuple[Bounced, ...] = ()
    #: Headers of the returned original message, when the report carries them.
    original: Message | None = None
    #: Envelope sender of the original as the report gives it (ARF ``Original-Mail-From``):
    #: our ``bounce+TOKEN`` return path when the provider dropped the original's headers.
    return_path: str | None = None
    #: True when only a heuristic (subject, sender, wording) recognised the format.
    heuristic: bool = False
    #: Short note for logs and ``parse`` (which marker decided).
    why: str = ""

    @property
    def hard_bounce(self) -> bool | None:
        """True if any recipient bounced hard, False if all soft, None when not a bounce."""
        if self.kind is not Kind.BOUNCE or not self.bounces:
            return None
        return any(b.hard for b in self.bounces)


# Linear on any input, like parse._BARE: starts only after a separator, no "@" in the parts.
_ADDRESS = re.compile(r"(?<![^\s<>\"'();,:])[^\s<>\"'();,:@]+@[^\s<>\"'();,:@]+\.[^\s<>\"'();,:@]+")


def address_in(value: str | None) -> str | None:
    """The address in a report field (``rfc822; <User@Example.com>``), lower-case, or None
    when there is none (``REDACTED``, ``redacted@aol.com``, an empty value)."""
    if not value:
        return None
    _, _, tail = " ".join(value.split()).rpartition(";")
    match = _ADDRESS.search(tail) or _ADDRESS.search(value)
    if not match:
        return None
    address = match.group(0).strip(".").lower()
    if address.split("@")[0] in ("redacted", "undisclosed", "xxxxx"):
        return None
    return address


def unique(addresses: Iterable[str | None]) -> tuple[str, ...]:
    """Drop empties and repeats, keep the first order."""
    return tuple(dict.fromkeys(a for a in addresses if a))


def unfold(value: str | None) -> str:
    return " ".join(str(value or "").split())


def headers_only(text: str) -> Message:
    """A header block given as text (``text/rfc822-headers``, a bounce's quoted copy)."""
    return mime.message_from_string(text.lstrip("\r\n"), POLICY)


def original(msg: ParsedMessage) -> Message | None:
    """The returned original: a ``message/rfc822`` part, else a ``text/rfc822-headers`` part
    (RFC 6522; ``text/rfc822-header`` is a common misspelling). None when it was left out."""
    return msg.memo("original", lambda: _original(msg))


def _original(msg: ParsedMessage) -> Message | None:
    for ctype, part in msg.tree:
        if ctype == "message/rfc822":
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
        elif ctype in ("text/rfc822-headers", "text/rfc822-header"):
            text = part.get_payload(decode=True) or b""
            assert isinstance(text, bytes)
            return headers_only(text.decode("utf-8", "replace"))
    return None


def notice(msg: ParsedMessage) -> str:
    """The human-readable notice of a report: its text parts before the first machine part
    (``message/delivery-status``, the returned original), decoded, on one line. It often
    says what the per-recipient fields leave out (the SMTP command, the server's words)."""
    return msg.memo("notice", lambda: _notice(msg))


_MACHINE = frozenset({"message/delivery-status", "message/rfc822", "text/rfc822-headers",
                      "text/rfc822-header", "message/feedback-report",
                      "message/global-delivery-status"})


def _notice(msg: ParsedMessage) -> str:
    texts = []
    for ctype, part in msg.tree:
        if ctype in _MACHINE:
            break
        if ctype == "text/plain":
            texts.append(part_text(part))
    return " ".join(" ".join(texts).split())


def report_type(message: Message) -> str:
    """``report-type`` of a ``multipart/report``, wherever it stands in the Content-Type."""
    if message.get_content_type() != "multipart/report":
        return ""
    return str(message.get_param("report-type") or "").strip().lower()

