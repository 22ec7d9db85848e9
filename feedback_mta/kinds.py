"""The kinds of inbound message and the one rule that tells a complaint from other feedback.

A leaf module: the reading stage decides a kind, the handlers are registered by it, the
actions and the metrics count by it, the command line prints it; all of them import it
from here, so there is one spelling of each.
"""

from __future__ import annotations

from enum import StrEnum


class Kind(StrEnum):
    """The kinds of inbound mail; the values are what ``parse --json`` and ``inbox`` print."""

    COMPLAINT = "complaint"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    REPLY = "reply"
    AUTO_REPLY = "auto_reply"
    #: Mail to ``postmaster@`` / ``abuse@``: stored and forwarded to the operator, never acted on.
    ADMIN = "admin"
    UNKNOWN = "unknown"


#: ARF Feedback-Types (RFC 5965 section 7.3, RFC 6591) that mean "the recipient complained".
COMPLAINT_TYPES = frozenset({"abuse", "fraud", "virus", "other"})


def is_complaint(feedback_type: str | None) -> bool:
    """Does a report of this Feedback-Type count as a complaint (opt-out, complaint rate)?
    ``opt-out`` is an unsubscribe; ``not-spam`` and ``auth-failure`` are recorded only."""
    return (feedback_type or "abuse") in COMPLAINT_TYPES
