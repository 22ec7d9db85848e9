"""Parse a stored raw message once into a frozen ``ParsedMessage`` for the pure decisions.

mail-parser does the decoding (charsets, transfer encodings, RFC 2047 words); when it gives
up on a broken message we fall back to the standard library's lenient parser and record
the defect, so odd mail is still classified instead of failing.
"""

from __future__ import annotations

import email
import email.policy
from collections.abc import Mapping
from dataclasses import dataclass, field
from email.message import Message
from email.utils import getaddresses

import mailparser


class ParseError(Exception):
    """Not even the lenient parser could read the message."""


@dataclass(frozen=True)
class ParsedMessage:
    """What the decisions need of one message: envelope, headers, text, and MIME structure."""

    #: Envelope sender; "" is the null sender ``<>``, None when unknown (a file on disk).
    mail_from: str | None
    rcpt_tos: tuple[str, ...]
    #: Lower-case header name -> values, in order (top-level headers only).
    headers: Mapping[str, tuple[str, ...]]
    subject: str
    from_address: str | None
    message_id: str | None
    in_reply_to: tuple[str, ...]
    references: tuple[str, ...]
    text: str
    html: str
    defects: tuple[str, ...]
    message: Message = field(compare=False, repr=False)

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def content_type(self) -> str:
        return self.message.get_content_type()


def _msgids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    ids = [part.strip().strip("<>").strip() for part in value.replace(",", " ").split()]
    return tuple(i for i in ids if "@" in i)


def _stdlib_headers(message: Message) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    for name, value in message.items():
        headers.setdefault(name.lower(), []).append(str(value))
    return {k: tuple(v) for k, v in headers.items()}


def parse(raw: bytes, mail_from: str | None = None,
          rcpt_tos: tuple[str, ...] = ()) -> ParsedMessage:
    defects: list[str] = []
    try:
        mp = mailparser.parse_from_bytes(raw)
        message = mp.message
        text = "\n".join(mp.text_plain)
        html = "\n".join(mp.text_html)
        defects.extend(str(d) for d in (mp.defects_categories or ()))
    except Exception as exc:  # mail-parser is strict in places; the stdlib parser is not
        defects.append(f"mail-parser: {type(exc).__name__}")
        try:
            message = email.message_from_bytes(raw, policy=email.policy.compat32)
        except Exception as inner:
            raise ParseError(f"{type(inner).__name__}: {inner}") from inner
        text, html = _stdlib_text(message)
    headers = _stdlib_headers(message)
    from_values = headers.get("from", ())
    from_address = None
    if from_values:
        pairs = getaddresses([from_values[0]])
        if pairs and "@" in pairs[0][1]:
            from_address = pairs[0][1].strip().lower()
    message_id = _msgids(headers.get("message-id", ("",))[0])
    return ParsedMessage(
        mail_from="" if mail_from == "<>" else mail_from,
        rcpt_tos=tuple(rcpt_tos),
        headers=headers,
        subject=_decoded(headers.get("subject", ("",))[0]),
        from_address=from_address,
        message_id=message_id[0] if message_id else None,
        in_reply_to=_msgids(headers.get("in-reply-to", ("",))[0]),
        references=_msgids(" ".join(headers.get("references", ()))),
        text=text,
        html=html,
        defects=tuple(defects),
        message=message,
    )


def _decoded(value: str) -> str:
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


def _stdlib_text(message: Message) -> tuple[str, str]:
    text, html = [], []
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in ("text/plain", "text/html"):
            continue
        payload = part.get_payload(decode=True) or b""
        charset = part.get_content_charset() or "utf-8"
        try:
            decoded = payload.decode(charset, "replace")
        except LookupError:
            decoded = payload.decode("utf-8", "replace")
        (text if ctype == "text/plain" else html).append(decoded)
    return "\n".join(text), "\n".join(html)


def envelope_from_headers(parsed: ParsedMessage) -> tuple[str | None, tuple[str, ...]]:
    """Best guess at the envelope of a message read from a file (``feedback-mta parse``):
    Return-Path for the sender; Delivered-To / X-Original-To, else To and Cc, for recipients."""
    return_path = parsed.header("return-path")
    mail_from = None
    if return_path is not None:
        mail_from = return_path.strip().strip("<>").strip()
    rcpts = [v for name in ("delivered-to", "x-original-to") for v in parsed.headers.get(name, ())]
    if not rcpts:
        rcpts = [v for name in ("to", "cc") for v in parsed.headers.get(name, ())]
    addresses = tuple(a.lower() for _, a in getaddresses(rcpts) if "@" in a)
    return mail_from, addresses
