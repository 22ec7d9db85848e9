"""Microsoft Exchange Server 2003 and older (Internet Mail Service): each failed recipient
comes with an eight-digit hexadecimal code in parentheses, which says the reason.

Source: go-sisimai ``lhost/via-exchange2003.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

import re

from feedback_mta.reading.parse import ParsedMessage

CODES = {
    "000c05a6": "userunknown",  # Unknown Recipient
    "000c0595": "filtered",  # Ambiguous Recipient
    "00010256": "systemerror",  # Too many recipients
    "000d06b5": "systemerror",  # No proxy for recipient (non-SMTP mail?)
    "00120270": "networkerror",  # Too many hops
    "00050311": "contenterror",  # Conversion to Internet format failed
    "000502cc": "contenterror",  # Conversion to Internet format failed
}
_CODE = re.compile(r"\(([0-9a-f]{8})\)", re.IGNORECASE)


def detect(msg: ParsedMessage) -> bool:
    if msg.header("x-ms-embedded-report") is not None:
        return True
    mailer, mimeole = msg.header("x-mailer") or "", msg.header("x-mimeole") or ""
    return (
        mailer.startswith(
            ("Internet Mail Service (", "Microsoft Exchange Server Internet Mail Connector")
        )
        or mimeole.startswith("Produced By Microsoft Exchange")
        or any(" with Internet Mail Service (" in r for r in msg.headers.get("received", ()))
    )


def hint(msg: ParsedMessage, text: str) -> str:
    code = _CODE.search(text)
    return CODES.get(code.group(1).lower(), "") if code else ""
