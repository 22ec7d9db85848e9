"""Apache James: its notices ("Error: ...", then "Message details:" with the envelope's
RCPT TO) name the recipient only in those details (Verizon's text gateways run it too).

Source: go-sisimai ``lhost/via-apachejames.go`` (BSD 2-Clause; the licence is in
``reading.reason_words``).
"""

from __future__ import annotations

import re

from feedback_mta.reading.parse import ParsedMessage

# Known by headers any mail James sends may carry (a JavaMail Message-ID, its Received
# line), so no bounce signal of its own (no BOUNCE_ONLY): it speaks only for a message
# already known to be a bounce (a mailer's sender, a bounce's subject).
_RCPT_TO = re.compile(r"^\s*RCPT TO:\s*<?([^<>\s@]+@[^<>\s]+?)>?\s*$",
                      re.IGNORECASE | re.MULTILINE)


def detect(msg: ParsedMessage) -> bool:
    return (msg.subject == "[BOUNCE]" or ".JavaMail." in (msg.header("message-id") or "")
            or any("JAMES SMTP Server" in r for r in msg.headers.get("received", ())))


def failed(msg: ParsedMessage, notice: str) -> list[str]:
    """The envelope recipient its "Message details:" give."""
    details = notice.find("Message details:")
    return [a.lower() for a in _RCPT_TO.findall(notice[details:])] if details >= 0 else []
