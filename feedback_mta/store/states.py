"""The states and roles stored in the tables, as enums: what the command line offers as
choices and the models store. Kept apart from ``models`` so that a command can declare its
options without loading the database stack."""

from __future__ import annotations

from enum import StrEnum


class ContactStatus(StrEnum):
    ACTIVE = "active"
    #: Awaiting the person's confirmation (``ConsentMethod`` in ``[consent]
    #: confirm_methods``): not mailable, listed as suppressed with reason ``unconfirmed``.
    PENDING = "pending"
    OPTED_OUT = "opted_out"


#: Contacts not opted out: mailable, or awaiting the person's confirmation. A suspected
#: bot's review deadline opts out either (``suspected_invalid``).
UNDECIDED = (ContactStatus.ACTIVE.value, ContactStatus.PENDING.value)


class ConsentMethod(StrEnum):
    """How a contact came to us. A social connection, an imported or a bought list is no
    opt-in (DESIGN: "B2B spam is still spam"): by default those wait for a confirmation."""

    FORM = "form"
    DOUBLE_OPT_IN = "double_opt_in"
    API = "api"
    IMPORT = "import"
    SOCIAL = "social"
    PURCHASED = "purchased"
    UNKNOWN = "unknown"


class ConfirmedVia(StrEnum):
    """How a person confirmed: the link's POST (``/c/TOKEN``) or a reply to ``confirm+TOKEN``."""

    LINK = "link"
    REPLY = "reply"


#: The opt-out reasons of consent: the person said no; nobody confirmed in time.
DECLINED = "declined"
UNCONFIRMED = "unconfirmed"


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
