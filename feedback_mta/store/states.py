"""The states and roles stored in the tables, as enums: what the command line offers as
choices and the models store. Kept apart from ``models`` so that a command can declare its
options without loading the database stack."""

from __future__ import annotations

from enum import StrEnum


class ContactStatus(StrEnum):
    ACTIVE = "active"
    OPTED_OUT = "opted_out"


class LeadStatus(StrEnum):
    ACTIVE = "active"
    SPAM = "spam"


class MessageState(StrEnum):
    """Inbound message states (DESIGN.md): received -> processed | ignored | failed."""

    RECEIVED = "received"
    PROCESSED = "processed"
    IGNORED = "ignored"
    FAILED = "failed"


class Role(StrEnum):
    CONTACT_ADMIN = "contact-admin"


class OutboundState(StrEnum):
    """Outbound mail: queued -> sent | failed (retries spent, or refused for good) |
    expired (a sign-in link that could no longer sign in by the time it could go)."""

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"
    EXPIRED = "expired"
