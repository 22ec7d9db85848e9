"""Sendmail before DSNs (version 5 and the like): the transcript alone, in blocks that
start "While talking to HOST:", each with the commands sent (``>>>``), the server's
replies (``<<<``) and a line per failed recipient. A recipient's reason is in its own
line and in its block's replies, and its command is the block's last one.

Source: go-sisimai ``lhost/via-v5sendmail.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

import re
from itertools import pairwise

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

_BLOCK = re.compile(r"^While talking to [^\n]*:\n", re.MULTILINE)
_SENT = re.compile(r"^>>> ([A-Z]{4})", re.MULTILINE)
_REPLY = re.compile(r"^<<< (.*)$", re.MULTILINE)


def detect(msg: ParsedMessage) -> bool:
    if not (msg.subject or "").startswith("Returned mail:") or msg.parts(
            "message/delivery-status"):
        return False
    text = msg.plain or ""
    return "----- Transcript of session follows -----" in text and "While talking to " in text


def _block(msg: ParsedMessage, address: str) -> str:
    text = (msg.plain or "").split("----- Unsent message follows")[0]
    starts = [m.start() for m in _BLOCK.finditer(text)] + [len(text)]
    for start, end in pairwise(starts):
        if address in text[start:end].lower():
            return text[start:end]
    return ""


def recipient(msg: ParsedMessage, address: str) -> tuple[str, str]:
    """(what the bounce says of ``address``: its own line and its block's replies; the
    command its block last sent)."""
    block = _block(msg, address)
    own = next((line for line in block.splitlines()
                if address in line.lower() and not line.startswith((">>>", "<<<"))), "")
    sent = _SENT.findall(block)
    return " ".join([own, *_REPLY.findall(block)]), sent[-1] if sent else ""
