"""Parse a stored raw message once into a frozen ``ParsedMessage`` for the pure decisions.

The standard library's lenient parser builds the MIME tree and the headers, which is all
most decisions need (report formats are recognised by structure and headers). The decoded
text and HTML bodies come from mail-parser (charsets, transfer encodings, RFC 2047 words),
on first use only: a DSN or an ARF report is classified without decoding any body, which
keeps bulk ``parse`` and the processing path fast. (A one-part all-ASCII text body is taken
as it stands, which is what mail-parser makes of it: ``_plain_text``.) When mail-parser
gives up on a broken message, the bodies fall back to the standard library's decoding and
the defect is kept.
"""

from __future__ import annotations

import email
import re
from collections.abc import Callable, Iterable, Mapping
from email._policybase import Compat32  # email.policy's, without its header registry
from email.message import Message
from email.utils import getaddresses
from typing import Any, NamedTuple, TypeVar

from feedback_mta.reading import mime

T = TypeVar("T")



class ParseError(Exception):
    """Not even the lenient parser could read the message."""


class _Policy(Compat32):
    """compat32 (lenient, and what mail-parser expects), except that a header value is
    always a ``str``: 8-bit bytes in a header (RFC 6532 UTF-8, or junk) are read as UTF-8
    with replacement, where compat32 hands back a ``Header`` object that every string
    operation in the report formats trips over (the fuzzers found three of them)."""

    def header_fetch_parse(self, name: str, value: str) -> str:
        if isinstance(value, str):
            if value.isascii():  # nearly every header: nothing to sanitize
                return value
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:  # surrogate-escaped 8-bit bytes
                return value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
        return str(super().header_fetch_parse(name, value))


#: The policy every message and header block is parsed with (into ``mime.Message``s, also
#: where the standard library's parser reads them).
POLICY = _Policy(message_factory=mime.Message)

#: Multipart containers (``boundary`` parameters, counted as the word) a message may
#: declare. Bounces of bounces and digests stay far below; a bomb nested thousands deep
#: is refused unparsed.
MAX_MULTIPARTS = 256


class ParsedMessage(NamedTuple):
    """What the decisions need of one message: envelope, headers, text, and MIME structure.
    (A named tuple, not a dataclass: ``parse`` starts without loading dataclasses.)"""

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
    message: Message
    #: The bytes as stored (cheap checks before decoding anything).
    raw: bytes
    #: What is computed once per message on first use (``memo``): a new dict for each.
    memos: dict[str, Any]

    def __repr__(self) -> str:  # never the message itself
        return f"ParsedMessage(message_id={self.message_id!r}, subject={self.subject!r})"

    def memo(self, key: str, compute: Callable[[], T]) -> T:
        """``compute()`` once per message (bodies, the MIME tree, a report's original)."""
        try:
            return self.memos[key]  # type: ignore[no-any-return]
        except KeyError:
            value = self.memos[key] = compute()
            return value

    def header(self, name: str) -> str | None:
        values = self.headers.get(name.lower())
        return values[0] if values else None

    @property
    def content_type(self) -> str:
        return str(self.message.get_content_type())

    @property
    def tree(self) -> tuple[tuple[str, Message], ...]:
        """(content type, part) of every MIME part, walked once (formats look often)."""
        return self.memo("tree", lambda: tuple((p.get_content_type(), p)
                                               for p in self.message.walk()))

    def parts(self, *types: str) -> list[Message]:
        """Parts of these content types, in order, at any depth (never decoded: cheap)."""
        return [part for ctype, part in self.tree if ctype in types]

    @property
    def text(self) -> str:
        """All ``text/plain`` parts, decoded (mail-parser, on first use)."""
        return self._bodies()[0]

    @property
    def plain(self) -> str:
        """The ``text/plain`` parts decoded by the standard library: enough for the markers
        report formats look for (a JSON body, a bounce's wording) at a fraction of
        mail-parser's cost; replies, where every charset detail matters, use ``text``.
        Lines end in LF, whatever the message used."""
        if "bodies" in self.memos:
            return str(self.memos["bodies"][0]).replace("\r\n", "\n")
        return self.memo("plain", lambda: _stdlib_text(self.message, html=False)[0].replace(
            "\r\n", "\n"))

    @property
    def html(self) -> str:
        return self._bodies()[1]

    def _bodies(self) -> tuple[str, str]:
        return self.memo("bodies", self._decode)

    def _decode(self) -> tuple[str, str]:
        plain = _plain_text(self.message, self.raw)
        if plain is not None:
            return plain, ""
        try:
            import logging

            import mailparser  # only when a body is read (replies): startup stays light

            # mail-parser warns on stderr of every multipart it does not turn into text (a
            # bounce's multipart/alternative in a returned copy): nothing we act on.
            logging.getLogger("mailparser").setLevel(logging.ERROR)

            mp = mailparser.MailParser(self.message)
            return "\n".join(mp.text_plain), "\n".join(mp.text_html)
        except Exception:  # mail-parser is strict in places; the stdlib is not
            return _stdlib_text(self.message)


def _msgids(value: str | None) -> tuple[str, ...]:
    if not value:
        return ()
    ids = [part.strip().strip("<>").strip() for part in value.replace(",", " ").split()]
    return tuple(i for i in ids if "@" in i)


def _stdlib_headers(message: Message) -> dict[str, tuple[str, ...]]:
    headers: dict[str, list[str]] = {}
    fetch = message.policy.header_fetch_parse
    for name, value in message.raw_items():
        if not (isinstance(value, str) and value.isascii()):  # nearly all are: as they are
            value = str(fetch(name, value))
        headers.setdefault(name.lower(), []).append(value)
    return {k: tuple(v) for k, v in headers.items()}


def parse(raw: bytes, mail_from: str | None = None, rcpt_tos: tuple[str, ...] = (), *,
          guess_envelope: bool = False) -> ParsedMessage:
    """Parse ``raw``; with ``guess_envelope`` (a file, not an SMTP delivery) the envelope is
    read from the headers: Return-Path for the sender; Delivered-To / X-Original-To, else
    To and Cc, for the recipients."""
    # The stdlib parser nests a generator per multipart level: thousands of levels cost
    # seconds before it gives up with a RecursionError. No real message has this many.
    containers = raw.lower().count(b"boundary") if len(raw) > 4096 else 0
    if containers > MAX_MULTIPARTS:
        raise ParseError(f"more than {MAX_MULTIPARTS} multipart containers ({containers})")
    try:
        message = mime.read(raw.decode("ascii", "surrogateescape"), POLICY)
        if message is None:  # not well-formed: the standard library knows how to recover
            message = email.message_from_bytes(raw, policy=POLICY)
    except Exception as exc:  # RecursionError on absurd nesting, ...
        raise ParseError(f"{type(exc).__name__}: {exc}") from exc
    headers = _stdlib_headers(message)
    from_values = headers.get("from", ())
    found = _addresses(from_values[:1])[:1] if from_values else ()
    from_address = found[0] if found else None
    message_id = _msgids(headers.get("message-id", ("",))[0])
    if guess_envelope:
        mail_from, rcpt_tos = _envelope(headers)
    return ParsedMessage(
        mail_from="" if mail_from == "<>" else mail_from,
        rcpt_tos=tuple(rcpt_tos),
        headers=headers,
        # Unfolded (RFC 5322 2.2.3): a folded Subject is one line of text, and answers copy it.
        subject=" ".join(_decoded(headers.get("subject", ("",))[0]).split()),
        from_address=from_address,
        message_id=message_id[0] if message_id else None,
        in_reply_to=_msgids(headers.get("in-reply-to", ("",))[0]),
        references=_msgids(" ".join(headers.get("references", ()))),
        message=message,
        raw=raw,
        memos={},
    )


# Linear on any input (a 1 MB header of one run of letters once took the processor for
# hours): the local part excludes "@", so nothing is tried twice, and a bare address starts
# only where a separator ends, so a failed attempt inside a run costs one step.
#: An address in angle brackets (``Name <a@b>``; fml's notices name theirs so too).
ANGLE_ADDRESS = re.compile(r"<([^<>\s@]+@[^<>\s]+)>")
_BARE = re.compile(r"(?<![^\s<>\"'(),;:])[^\s<>\"'(),;:@]+@[^\s<>\"'(),;:@]+")
#: One address and one plain comment after it (``MAILER-DAEMON@host (Mail Delivery
#: System)``): the address, never the comment, as the full parser reads it.
_COMMENTED = re.compile(r"\s*([^\s<>\"'(),;:\\@]+@[^\s<>\"'(),;:\\@]+)\s*\([^()\"\\]*\)\s*")


def _addresses(values: Iterable[object]) -> tuple[str, ...]:
    """addr-specs in address headers, lower-case. Plain ``a@b, Name <c@d>`` forms are read
    by pattern (most headers, and fast); anything with quotes, comments or escapes, where a
    pattern could take a display name or comment for the address, goes to the full
    RFC 5322 parser: the From address decides who may flag a lead."""
    found: list[str] = []
    for item in values:
        value = str(item)
        if any(c in value for c in '"()\\'):
            commented = _COMMENTED.fullmatch(value)
            found += [commented.group(1)] if commented else [
                a for _, a in getaddresses([value]) if "@" in a]
        elif "<" in value:
            found += ANGLE_ADDRESS.findall(value)
        else:
            found += _BARE.findall(value)
    return tuple(a.strip().lower() for a in found)


def _decoded(value: str) -> str:
    if "=?" not in value:
        return value  # no RFC 2047 encoded word: nothing to decode
    try:
        return str(email.header.make_header(email.header.decode_header(value)))
    except Exception:
        return value


def _plain_text(message: Message, raw: bytes) -> str | None:
    """The body of an all-ASCII message that is one ``text/plain`` part in 7bit or 8bit, not
    named as a file: mail-parser's ``text_plain`` for it is that text unchanged (its
    ``_decode_body_payload``), and it cost a third of a reply's processing to be told so.
    None for anything else, which mail-parser decodes (8-bit bytes, as every charset
    detail matters there). ``tests/test_reply_text.py`` compares the two on every fixture."""
    if not raw.isascii() or message.is_multipart():
        return None
    if message.get_content_type() != "text/plain" or "content-disposition" in message:
        return None
    if message.get_param("name") is not None:
        return None
    encoding = str(message.get("content-transfer-encoding", "")).strip().lower()
    if encoding not in ("", "7bit", "8bit"):
        return None
    payload = message.get_payload()
    return payload if isinstance(payload, str) else None


def _stdlib_text(message: Message, html: bool = True) -> tuple[str, str]:
    wanted = ("text/plain", "text/html") if html else ("text/plain",)
    text: list[str] = []
    html_parts: list[str] = []
    for part in message.walk():
        if part.is_multipart():
            continue
        ctype = part.get_content_type()
        if ctype not in wanted:
            continue
        (text if ctype == "text/plain" else html_parts).append(part_text(part))
    return "\n".join(text), "\n".join(html_parts)


def part_text(part: Message) -> str:
    """A leaf part's content, decoded by its charset (UTF-8 when it names none or one
    Python does not know), with replacement; never raises."""
    payload = part.get_payload(decode=True) or b""
    assert isinstance(payload, bytes)
    try:
        return payload.decode(part.get_content_charset() or "utf-8", "replace")
    except (LookupError, ValueError, TypeError):  # unknown, or "utf-8\0" (ValueError)
        return payload.decode("utf-8", "replace")


def _envelope(headers: Mapping[str, tuple[str, ...]]) -> tuple[str | None, tuple[str, ...]]:
    return_path = headers.get("return-path")
    mail_from = return_path[0].strip().strip("<>").strip() if return_path else None
    rcpts = [v for name in ("delivered-to", "x-original-to") for v in headers.get(name, ())]
    if not rcpts:
        rcpts = [v for name in ("to", "cc") for v in headers.get(name, ())]
    return mail_from, _addresses(rcpts)
