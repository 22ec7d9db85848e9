"""What the fuzzers (hypothesis in ``test_fuzz``, atheris in ``bench/fuzz.py``) run and generate.

``examine`` is every pure decision a stored message goes through, forced all the way:
parse, classify (all report formats), the reply reader (bodies decoded by mail-parser, the
quote trimmer, HTML to text), the KEEP reader and the token checks. The only exception it
may raise is ``ParseError``, which the processor turns into ``failed`` with the reason.
"""

from __future__ import annotations

import base64
import logging
import random
from pathlib import Path

from hypothesis import strategies as st

from feedback_mta import config as config_mod
from feedback_mta.addresses import AddressBook
from feedback_mta.handlers.commands.keep import COMMAND as KEEP
from feedback_mta.reading.candidates import candidates, verify
from feedback_mta.reading.classify import classify
from feedback_mta.reading.commands import VOCABULARY
from feedback_mta.reading.parse import ParseError, parse
from feedback_mta.reading.reply_text import html_to_text, keep_ids, new_text, read

FIXTURES = Path(__file__).parent / "fixtures"
CRASHERS = FIXTURES / "crashers"
DOMAIN = "fb.test"

BOOK = AddressBook.from_config(config_mod.from_mapping({
    "database": {"url": "sqlite:///unused"},
    "smtp": {"host": "127.0.0.1", "port": 0, "domain": DOMAIN, "lmtp": False,
             "max_message_size": 10 * 1024 * 1024},
    "security": {"secret_key": "fuzz-secret-key-0123456789"},
}, env={}))


def examine(raw: bytes) -> str:
    """Run every decision on ``raw``; returns the kind. Raises only ``ParseError``."""
    parsed = parse(raw, guess_envelope=True)
    result = classify(parsed, BOOK.resolve_all(parsed.rcpt_tos))
    read(parsed, VOCABULARY)
    text, html = parsed.text, parsed.html
    new_text(text, html)
    keep_ids(text, KEEP.phrases)
    html_to_text(html)
    for candidate in candidates(result):
        verify(candidate, BOOK)
    _ = (result.recipients, result.hard_bounce, result.feedback_type, parsed.plain)
    return result.kind.value


# mail-parser warns on every part type it does not decode: expected here, and noise.
logging.getLogger("mailparser").setLevel(logging.ERROR)


def seeds() -> list[bytes]:
    """Every real-world sample we keep, as the fuzzers' starting corpus."""
    return [p.read_bytes() for p in sorted(FIXTURES.rglob("*.eml")) if p.parent != CRASHERS]


# --- hypothesis strategies: messages built to be wrong in the ways mail is wrong ------------

_CHARSETS = ["utf-8", "iso-8859-1", "windows-1252", "utf-7", "gb2312", "shift_jis", "x-unknown",
             "utf-16", "", "bogus charset", "utf-8\x00"]
_ENCODINGS = ["7bit", "8bit", "base64", "quoted-printable", "x-uuencode", "binary", "bogus"]
_TYPES = ["text/plain", "text/html", "message/rfc822", "message/delivery-status",
          "message/feedback-report", "text/rfc822-headers", "application/zip",
          "application/octet-stream", "image/png", "multipart/mixed", "multipart/report",
          "multipart/alternative", "x-unknown/x-type"]
_NAMES = ["From", "To", "Cc", "Subject", "Message-ID", "In-Reply-To", "References",
          "Auto-Submitted", "Precedence", "Return-Path", "Delivered-To", "X-Original-To",
          "Feedback-Type", "Original-Rcpt-To", "Final-Recipient", "Status", "Action",
          "Authentication-Results", "X-Feedback-Account", "X-Feedback-Token",
          "Content-Type", "Content-Transfer-Encoding", "MIME-Version", "X-Junk"]
_WORDS = ["SPAM", "NOT SPAM", "KEEP 12", "stop", "unsubscribe", "5.1.1", "4.2.2", "wrote:",
          "On Mon, Jan 1, 2024, Ann <a@b.test> wrote:", "> quoted", "-- ", "<div>", "</p>",
          "=?utf-8?b?U1BBTQ==?=", "=?x-bogus?q?=FF?=", "=?utf-8?q?broken", "reply+1-abc@fb.test",
          "bounce+12-aaaaaaaaaaaaaaaaaaaaaaaaaa@fb.test", "fbl@fb.test", "abuse", "rfc822;",
          "\x00", "\xff\xfe", "=\r\n", "=ZZ", "====", "\t", "\r", "\n", "@", "<", ">", "\"", ";"]

_bytes_text = st.one_of(
    st.binary(max_size=200),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
    st.lists(st.sampled_from(_WORDS), max_size=30).map(lambda w: " ".join(w).encode("utf-8")),
)


@st.composite
def header(draw) -> bytes:
    name = draw(st.one_of(st.sampled_from(_NAMES), st.text("abcxyzXY-\x80:", min_size=1,
                                                             max_size=12)))
    value = draw(_bytes_text)
    folded = draw(st.booleans())
    if folded:
        value = value.replace(b" ", b"\r\n ", 2)
    return name.encode("utf-8", "surrogatepass") + b": " + value


@st.composite
def payload(draw, ctype: str, cte: str) -> bytes:
    body = draw(_bytes_text)
    if cte == "base64" and draw(st.booleans()):
        body = base64.encodebytes(body)
        if draw(st.booleans()):  # corrupt it
            body = body[: max(0, len(body) - draw(st.integers(1, 5)))] + b"!*\x00"
    if ctype == "application/zip":
        # A zip-like bomb: a local header that claims gigabytes. Never decompressed.
        body = base64.encodebytes(b"PK\x03\x04" + b"\x00" * 14 + b"\xff\xff\xff\x7f" * 2
                                  + b"\x00" * draw(st.integers(0, 4096)))
    return body


@st.composite
def part(draw, depth: int) -> bytes:
    ctype = draw(st.sampled_from(_TYPES))
    charset = draw(st.sampled_from(_CHARSETS))
    cte = draw(st.sampled_from(_ENCODINGS))
    headers = [f"Content-Type: {ctype}; charset=\"{charset}\"".encode("utf-8", "surrogatepass"),
               f"Content-Transfer-Encoding: {cte}".encode()]
    headers += draw(st.lists(header(), max_size=4))
    if ctype.startswith("multipart/") and depth > 0:
        boundary = draw(st.sampled_from(["b1", "=_x", "", "a b", "--", "b1"]))
        headers[0] = f"Content-Type: {ctype}; boundary=\"{boundary}\"".encode()
        children = draw(st.lists(part(depth - 1), max_size=4))
        body = b""
        for child in children:
            body += b"--" + boundary.encode() + b"\r\n" + child + b"\r\n"
        if draw(st.booleans()):  # a closing boundary is often missing or wrong
            body += b"--" + boundary.encode() + draw(st.sampled_from([b"--", b"", b"-"])) + b"\r\n"
    elif ctype == "message/rfc822" and depth > 0:
        body = draw(part(depth - 1))
    else:
        body = draw(payload(ctype, cte))
    return b"\r\n".join(headers) + b"\r\n\r\n" + body


@st.composite
def messages(draw) -> bytes:
    """A whole message: top-level headers (some of them ours), then a MIME tree."""
    top = draw(st.lists(header(), max_size=12))
    rcpt = draw(st.sampled_from([b"fbl@fb.test", b"reply+1-" + b"a" * 26 + b"@fb.test",
                                 b"unsubscribe+2-x@fb.test", b"someone@else.test"]))
    top.append(b"To: " + rcpt)
    if draw(st.booleans()):
        top += [b"X-Many: " + str(i).encode() for i in range(draw(st.integers(0, 3000)))]
    eol = draw(st.sampled_from([b"\r\n", b"\n", b"\r"]))
    return (eol.join(top) + eol + draw(part(depth=draw(st.integers(0, 6))))).replace(
        b"\r\n", eol)


@st.composite
def mutated(draw) -> bytes:
    """A real sample with bytes flipped, cut, repeated or inserted."""
    raw = bytearray(draw(st.sampled_from(seeds())))
    rng = random.Random(draw(st.integers(0, 2**32)))
    for _ in range(draw(st.integers(1, 20))):
        op = rng.randrange(5)
        at = rng.randrange(len(raw) + 1)
        if op == 0 and raw:
            raw[min(at, len(raw) - 1)] = rng.randrange(256)
        elif op == 1:
            del raw[at:at + rng.randrange(1, 200)]
        elif op == 2:
            raw[at:at] = raw[at:at + rng.randrange(1, 400)] * rng.randrange(1, 50)
        elif op == 3:
            raw[at:at] = rng.choice([b"\x00", b"\xff", b"=?", b"boundary=\"", b"--", b"\r\n\r\n",
                                     b"Content-Type: multipart/mixed; boundary=z\r\n"])
        else:
            raw = raw[:at]
    return bytes(raw)


__all__ = ["BOOK", "CRASHERS", "ParseError", "examine", "messages", "mutated", "seeds"]
