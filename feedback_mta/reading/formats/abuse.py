"""Plain abuse reports that are not ARF: spam-trap networks and reporting services
(SpamCop, older Return Path and ISP abuse desks) that send a human-readable text plus the
offending message attached as ``message/rfc822`` (or its headers).

Recognised only by wording (subject and sender), hence ``heuristic``: ``classify`` never
lets it override a dealer's reply to a ``reply+TOKEN`` box. Such reports rarely name the
recipient (it is a trap), so the token in the attached original is what attributes them.
"""

from __future__ import annotations

import re

from feedback_mta.kinds import Kind
from feedback_mta.reading.formats.report import Report, original
from feedback_mta.reading.parse import ParsedMessage

_SUBJECT = re.compile(r"\[spamcop|abuse report|spam ?report|spam ?complaint|complaint about|"
                      r"spamtrap|spam ?trap|report of spam|unsolicited (?:bulk |commercial )?"
                      r"e-?mail", re.IGNORECASE)
_SENDER = re.compile(r"@(?:[\w-]+\.)*(?:spamcop\.net|abusix\.(?:org|com)|knujon\.com)$|"
                     r"^(?:abuse|fbl|feedback|feedbackloop|scomp|spam)[\w.+-]*@")


def detect(msg: ParsedMessage) -> Report | None:
    from_ = msg.from_address or ""
    if not (_SUBJECT.search(msg.subject or "") or _SENDER.search(from_)):
        return None
    returned = original(msg)
    if returned is None:
        return None
    return Report(Kind.COMPLAINT, "abuse", feedback_type="abuse", original=returned,
                  heuristic=True, why=f"abuse report from {from_ or 'unknown sender'}")
