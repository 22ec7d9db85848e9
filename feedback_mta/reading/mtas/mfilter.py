"""m-FILTER (Digital Arts), a Japanese mail filter: its notice gives the server's message
and the SMTP command under their own dashed headings.

Source: go-sisimai ``lhost/via-mfilter.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

import re

from feedback_mta.reading.parse import ParsedMessage

BOUNCE_ONLY = True  # its detect matches bounces only: a bounce signal (``mtas``)

_COMMAND = re.compile(r"^-------SMTP command\s*\n\s*([A-Z]{4})", re.MULTILINE)


def detect(msg: ParsedMessage) -> bool:
    return msg.header("x-mailer") == "m-FILTER" and msg.subject == "failure notice"


def command(msg: ParsedMessage, text: str) -> str:
    found = _COMMAND.search(msg.plain or "")
    return found.group(1) if found else ""
