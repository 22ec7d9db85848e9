"""The tables. Changing one means writing an alembic migration (``migrations/versions``);
``tests/test_migrations.py`` fails when the models and the migrations disagree.

Names follow ``shared/DESIGN.md``: account, user, contact, lead, tag, inbound message, event.
Every index here serves a lookup the flow makes (token -> lead, Message-ID -> lead,
sender -> user of an account, state -> inbound messages to process), so nothing scans.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy import Column, DateTime, Index, LargeBinary, Text, UniqueConstraint
from sqlalchemy.ext.hybrid import hybrid_property
from sqlmodel import Field, SQLModel, col
from sqlmodel._compat import SQLModelConfig

from feedback_mta.store.states import (
    UNCONFIRMED,
    ConsentMethod,
    ContactStatus,
    LeadStatus,
    MessageState,
    OutboundState,
    Role,
)
from feedback_mta.store.tables import BOUNCED, JsonText, not_mailable_reason

__all__ = ["BOUNCED", "ContactStatus", "JsonText", "LeadStatus", "MessageState",
           "OutboundState", "Role"]


def utcnow() -> datetime:
    return datetime.now(UTC)


def table_of(model: type[SQLModel]) -> sa.Table:
    """A model's Core table, for prepared Core statements (SQLModel's types hide it)."""
    table: sa.Table = model.__table__  # type: ignore[attr-defined]
    return table


def _ts(nullable: bool = False, index: bool = False) -> Column:
    return Column(DateTime(timezone=True), nullable=nullable, index=index)


class Account(SQLModel, table=True):
    __tablename__ = "account"

    id: int | None = Field(default=None, primary_key=True)
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    #: What the account guard advises the sending platform: ``ok``, ``warned`` or
    #: ``paused`` (``jobs.guard``), with the figures and lines that decided it.
    sending: str = Field(default="ok", sa_column=Column(Text, nullable=False,
                                                        server_default="ok"))
    sending_reasons: list[str] | None = Field(default=None, sa_column=Column(JsonText))
    sending_changed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: When a pause was last cleared (``account resume``): the guard counts from then on.
    resumed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class User(SQLModel, table=True):
    """A person of an account who may write to us (``user`` is reserved in PostgreSQL)."""

    __tablename__ = "app_user"
    __table_args__ = (
        UniqueConstraint("account_id", "email", name="uq_app_user_account_email"),
        Index("ix_app_user_email", "email"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", nullable=False)
    #: Lower-cased addr-spec; senders are compared lower-cased too.
    email: str = Field(sa_column=Column(Text, nullable=False))
    #: Space-separated roles, e.g. ``contact-admin``.
    roles: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())

    @property
    def role_set(self) -> frozenset[str]:
        return frozenset(self.roles.split())


class Contact(SQLModel, table=True):
    __tablename__ = "contact"
    __table_args__ = (
        UniqueConstraint("account_id", "email", name="uq_contact_account_email"),
        Index("ix_contact_email", "email"),
        # The scheduler's "whose review deadline has passed?" and the digest's lookup.
        Index("ix_contact_review_deadline", "review_deadline"),
        # The scheduler's "whose confirmation deadline has passed?".
        Index("ix_contact_confirm_by", "confirm_by"),
    )
    # ``mailable`` and ``not_mailable_reason`` below: SQL expressions too, not fields.
    model_config = SQLModelConfig(ignored_types=(hybrid_property,))

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", nullable=False)
    email: str = Field(sa_column=Column(Text, nullable=False))
    first_name: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    last_name: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    status: str = Field(default=ContactStatus.ACTIVE,
                        sa_column=Column(Text, nullable=False, server_default="active"))
    opt_out_reason: str | None = Field(default=None, sa_column=Column(Text))
    opted_out_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: Set when mail to the address bounced hard (or soft too often): it is not mailable,
    #: whatever its opt-in status. ``undeliverable_reason`` says why (``5.1.1 user unknown``).
    undeliverable_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    undeliverable_reason: str | None = Field(default=None, sa_column=Column(Text))
    #: Source IP of the form that created it (``contact add --ip``; leads keep their own).
    source_ip: str | None = Field(default=None, sa_column=Column(Text))
    #: What the quality check said (``quality``): ok | suspected | invalid, and why (JSON list).
    quality: str | None = Field(default=None, sa_column=Column(Text))
    quality_reasons: list[str] | None = Field(default=None, sa_column=Column(JsonText))
    #: Set while the contact is tagged suspected: when it is opted out unless verified.
    review_deadline: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: When its account's admins were sent the review digest naming it (once per deadline).
    reminded_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: An admin said it is a real person; the reasons it was tagged for then (JSON list) do
    #: not tag it again.
    verified_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    verified_by: str | None = Field(default=None, sa_column=Column(Text))
    verified_reasons: list[str] | None = Field(default=None, sa_column=Column(JsonText))
    #: First purchase, double opt-in, open or click: an engaged contact is never called bad.
    engaged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: Space-separated kinds of engagement seen (``purchase click``).
    engagement: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    #: Consent (GDPR Art. 7(1): the controller shows the person consented): how the contact
    #: came to us (``ConsentMethod``), from where (a form's URL, a list's name), when, from
    #: which address and browser. Contacts from before consent was kept are ``unknown``.
    consent_method: str = Field(default=ConsentMethod.UNKNOWN, sa_column=Column(
        Text, nullable=False, server_default=ConsentMethod.UNKNOWN.value))
    consent_source: str = Field(default="", sa_column=Column(Text, nullable=False,
                                                             server_default=""))
    consent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    consent_ip: str | None = Field(default=None, sa_column=Column(Text))
    consent_user_agent: str | None = Field(default=None, sa_column=Column(Text))
    #: The person's own confirmation: when, how (``ConfirmedVia``), and the evidence (the
    #: confirming reply's Message-ID and inbound message, or the click's IP and agent).
    confirmed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    confirmed_via: str | None = Field(default=None, sa_column=Column(Text))
    confirmation_evidence: dict[str, Any] | None = Field(default=None,
                                                         sa_column=Column(JsonText))
    #: While pending: when it is opted out (reason ``unconfirmed``) unless confirmed; when
    #: the confirmation request, and the reminder, were sent.
    confirm_by: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    confirmation_sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    confirmation_reminded_at: datetime | None = Field(default=None,
                                                      sa_column=_ts(nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_ts())

    # What "mailable" means, defined once: here, for an object and in SQL alike (the
    # command line, the API, the suppressions list and its CSV all read these two).
    # Mail may be sent exactly when nothing stands in the way: the contact is not opted
    # out, not pending (awaiting confirmation: any status but active) and its address did
    # not bounce. ``not_mailable_reason`` says what stands in the way: the opt-out's
    # reason, else the status, else ``bounced``; None when the contact is mailable.

    @hybrid_property
    def not_mailable_reason(self) -> str | None:
        if self.status == ContactStatus.OPTED_OUT:
            return self.opt_out_reason or ContactStatus.OPTED_OUT.value
        if self.status == ContactStatus.PENDING:
            return UNCONFIRMED
        if self.status != ContactStatus.ACTIVE:
            return str(self.status)
        return BOUNCED if self.undeliverable_at is not None else None

    @not_mailable_reason.inplace.expression
    @classmethod
    def _not_mailable_reason(cls) -> sa.ColumnElement[str | None]:
        return not_mailable_reason(col(cls.status), col(cls.opt_out_reason),
                                   col(cls.undeliverable_at))

    @hybrid_property
    def mailable(self) -> bool:
        return self.not_mailable_reason is None

    @mailable.inplace.expression
    @classmethod
    def _mailable(cls) -> sa.ColumnElement[bool]:
        return cls.not_mailable_reason.is_(None)


class SuspectNetwork(SQLModel, table=True):
    """A network whose form submissions are suspected (``feedback-mta network add``), on top
    of ``[quality] suspect_networks`` in the config."""

    __tablename__ = "suspect_network"
    __table_args__ = (UniqueConstraint("cidr", name="uq_suspect_network_cidr"),)

    id: int | None = Field(default=None, primary_key=True)
    #: Normalized CIDR (``203.0.113.0/24``, ``2001:db8::/32``).
    cidr: str = Field(sa_column=Column(Text, nullable=False))
    note: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_by: str = Field(default="cli",
                            sa_column=Column(Text, nullable=False, server_default="cli"))


class SentCount(SQLModel, table=True):
    """Messages an account reports having sent on a day (``feedback-mta account sent``):
    the denominator of its complaint rate, as mailbox providers compute it."""

    __tablename__ = "sent_count"
    __table_args__ = (UniqueConstraint("account_id", "day", name="uq_sent_count_account_day"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", nullable=False)
    #: ISO date (``2026-11-21``), UTC.
    day: str = Field(sa_column=Column(Text, nullable=False))
    count: int = 0


class Lead(SQLModel, table=True):
    """One activity of a contact (a form submission)."""

    __tablename__ = "lead"
    __table_args__ = (
        Index("ix_lead_account_status_created", "account_id", "status", "created_at"),
        Index("ix_lead_contact_id", "contact_id"),
        Index("uq_lead_notification_message_id", "notification_message_id", unique=True),
        # Behaviour: leads from one address, and from one network, in the last hour.
        Index("ix_lead_source_ip_created", "source_ip", "created_at"),
        Index("ix_lead_source_net_created", "source_net", "created_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = Field(foreign_key="account.id", nullable=False)
    contact_id: int = Field(foreign_key="contact.id", nullable=False)
    source_ip: str | None = Field(default=None, sa_column=Column(Text))
    #: The network of ``source_ip`` (IPv4 /24, IPv6 /64), for the behaviour signals.
    source_net: str | None = Field(default=None, sa_column=Column(Text))
    comments: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    status: str = Field(default=LeadStatus.ACTIVE,
                        sa_column=Column(Text, nullable=False, server_default="active"))
    flagged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    flagged_by: str | None = Field(default=None, sa_column=Column(Text))
    #: How it was flagged: ``email``, ``cli``, ``api`` or ``auto``.
    flagged_via: str | None = Field(default=None, sa_column=Column(Text))
    #: What ``quality.spam`` said when it arrived: 0-1, and why (JSON list).
    spam_score: float | None = Field(default=None, sa_column=Column(sa.Float))
    spam_reasons: list[str] | None = Field(default=None, sa_column=Column(JsonText))
    exported_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: When an automatically flagged lead was named in its account's spam digest.
    digested_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: Message-ID (without angle brackets) to put on the lead-notification email, so a reply's
    #: In-Reply-To / References finds the lead when the reply went to another address.
    notification_message_id: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class CommentBand(SQLModel, table=True):
    """One band of a lead's comments' MinHash signature (``quality.campaigns``): leads that
    share a band within hours wrote the same, or nearly the same, comments."""

    __tablename__ = "comment_band"
    __table_args__ = (Index("ix_comment_band_band_created", "band", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    band: int = Field(sa_column=Column(sa.BigInteger, nullable=False))
    lead_id: int = Field(nullable=False)
    account_id: int = Field(nullable=False)
    #: The contact's address: one buyer asking several dealers the same is no campaign.
    sender: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())


class ReviewLink(SQLModel, table=True):
    """A sign-in link to the review page, mailed to a contact admin: single use, short
    lived; only the SHA-256 of its secret is kept."""

    __tablename__ = "review_link"

    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(sa_column=Column(Text, nullable=False))
    secret_hash: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    expires_at: datetime = Field(sa_column=_ts())
    used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class SpamFeature(SQLModel, table=True):
    """What the lead spam model learned (``quality.spam``): per feature of a lead (a word of
    its comments, a rule's reason, its address's domain), in how many new leads it was
    seen, and how many of those people flagged (spam) or restored (ham) and the system
    flagged (auto). ``account_id`` 0
    is the whole platform; the feature ``LABELS`` counts the labels themselves."""

    __tablename__ = "spam_feature"
    __table_args__ = (UniqueConstraint("account_id", "feature",
                                       name="uq_spam_feature_account_feature"),)

    id: int | None = Field(default=None, primary_key=True)
    account_id: int = 0
    feature: str = Field(sa_column=Column(Text, nullable=False))
    seen: int = 0
    spam: int = 0
    ham: int = 0
    #: Flagged by the system and not restored (counted as spam until a person says not).
    auto: int = Field(default=0, sa_column=Column(sa.Integer, nullable=False,
                                                  server_default="0"))


class Tag(SQLModel, table=True):
    """A label on a contact; ``SYSTEM - ...`` tags are set by the system."""

    __tablename__ = "tag"
    __table_args__ = (
        UniqueConstraint("contact_id", "name", name="uq_tag_contact_name"),
        Index("ix_tag_name", "name"),
    )

    id: int | None = Field(default=None, primary_key=True)
    contact_id: int = Field(foreign_key="contact.id", nullable=False)
    name: str = Field(sa_column=Column(Text, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    created_by: str = Field(default="system",
                            sa_column=Column(Text, nullable=False, server_default="system"))


class InboundMessage(SQLModel, table=True):
    """One message received over SMTP/LMTP, stored raw before we said 250."""

    __tablename__ = "inbound_message"
    __table_args__ = (
        Index("ix_inbound_message_state_id", "state", "id"),
        Index("ix_inbound_message_message_id", "message_id"),
        Index("ix_inbound_message_content_hash", "content_hash"),
        Index("uq_inbound_message_dedupe_key", "dedupe_key", unique=True),
        Index("ix_inbound_message_purged_at_processed_at", "purged_at", "processed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    received_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    #: ``smtp``, ``lmtp`` or ``http``.
    protocol: str = Field(default="smtp", sa_column=Column(Text, nullable=False))
    peer: str | None = Field(default=None, sa_column=Column(Text))
    helo: str | None = Field(default=None, sa_column=Column(Text))
    #: Envelope sender; empty for the null sender ``<>`` of bounces.
    mail_from: str = Field(default="", sa_column=Column(Text, nullable=False))
    #: Envelope recipients, JSON list.
    rcpt_tos: list[str] = Field(default_factory=list,
                                sa_column=Column(JsonText, nullable=False))
    size: int = 0
    #: Message-ID header without angle brackets, if any.
    message_id: str | None = Field(default=None, sa_column=Column(Text))
    #: Hash of recipients + Message-ID + content without trace headers: the same message
    #: delivered twice (even through different relays) has the same hash.
    content_hash: str = Field(sa_column=Column(Text, nullable=False))
    #: Set to ``content_hash`` in the same transaction that acts on the message; the unique
    #: index makes a second copy fail to claim it, so it is acted on once (even on two nodes).
    dedupe_key: str | None = Field(default=None, sa_column=Column(Text))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default=MessageState.RECEIVED,
                       sa_column=Column(Text, nullable=False, server_default="received"))
    #: Why it is ignored (``duplicate``, ``no action``, ...).
    reason: str | None = Field(default=None, sa_column=Column(Text))
    #: Why it failed (exception type and message), for ``inbox retry``.
    error: str | None = Field(default=None, sa_column=Column(Text))
    #: What classify said: complaint | bounce | unsubscribe | reply | auto_reply | unknown.
    kind: str | None = Field(default=None, sa_column=Column(Text))
    attempts: int = 0
    processed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    duplicate_of: int | None = None
    #: When ``retention`` emptied ``raw`` ([retention] raw_days); the row and its audit stay.
    purged_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: Who sent it over HTTP: ``one-click``, ``ses``, ``sendgrid``, ``mailgun``,
    #: ``postmark`` (``raw`` is then the request's body, or one event of it); None for mail.
    provider: str | None = Field(default=None, sa_column=Column(Text))


class HookNonce(SQLModel, table=True):
    """A one-time value of a signed webhook (Mailgun's ``token``), kept a while so a
    captured request replayed with another body is refused."""

    __tablename__ = "hook_nonce"
    __table_args__ = (UniqueConstraint("provider", "nonce", name="uq_hook_nonce_provider_nonce"),)

    id: int | None = Field(default=None, primary_key=True)
    provider: str = Field(sa_column=Column(Text, nullable=False))
    nonce: str = Field(sa_column=Column(Text, nullable=False))
    #: What it signed (the event's content hash): the same delivery again is no replay.
    content_hash: str = Field(sa_column=Column(Text, nullable=False))
    seen_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))


class Event(SQLModel, table=True):
    """One audit record of a change: who/what/why, from which inbound message."""

    __tablename__ = "event"
    __table_args__ = (
        Index("ix_event_subject", "subject_type", "subject_id"),
        Index("ix_event_inbound_message_id", "inbound_message_id"),
        Index("ix_event_account_id_at", "account_id", "at"),
        # The feed of one account's key (GET /v1/events) and its webhooks read by id.
        Index("ix_event_account_id_id", "account_id", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    account_id: int | None = None
    #: Who did it: ``cli``, ``email:<sender>``, ``scheduler``, ``system``.
    actor: str = Field(sa_column=Column(Text, nullable=False))
    #: Stable event name, the same as the log line (``lead.flagged_spam``, ...).
    action: str = Field(sa_column=Column(Text, nullable=False))
    subject_type: str = Field(sa_column=Column(Text, nullable=False))
    subject_id: int | None = None
    inbound_message_id: int | None = None
    reason: str | None = Field(default=None, sa_column=Column(Text))
    #: Extra detail as JSON (never message bodies).
    data: dict[str, Any] = Field(default_factory=dict, sa_column=Column(
        JsonText, nullable=False, server_default="{}"))
    #: By which way the actor acted: ``cli``, ``email``, ``api``, ``auto`` (None before 0006).
    via: str | None = Field(default=None, sa_column=Column(Text))

    def fields(self) -> dict[str, Any]:
        """The event as its log line, the feed and the webhooks show it (no ``id``)."""
        return event_fields(self)


def event_fields(event: Any) -> dict[str, Any]:
    """An event's fields as its log line, the feed and the webhooks show them: of a stored
    ``Event`` or of one recorded and not yet inserted (``actions.audit.Recorded``)."""
    out: dict[str, Any] = {f"{event.subject_type}_id": event.subject_id,
                           "account_id": event.account_id, "actor": event.actor,
                           "via": event.via}
    if event.reason:
        out["reason"] = event.reason
    if event.inbound_message_id is not None:
        out["inbound_message_id"] = event.inbound_message_id
    out.update(event.data)
    return out





class OutboundMessage(SQLModel, table=True):
    """A mail we send (acknowledgements of dealer replies): written in the transaction that
    decided to send it, delivered through ``[outbound] relay`` after the commit, retried by
    the scheduler (a transactional outbox, so a crash neither loses nor invents a mail)."""

    __tablename__ = "outbound_message"
    __table_args__ = (
        Index("ix_outbound_message_state_next", "state", "next_attempt_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    #: The inbound message this answers, if any.
    inbound_message_id: int | None = None
    lead_id: int | None = None
    #: What it says: ``ack.flagged``, ``ack.restored``, ``ack.refused``, ...
    purpose: str = Field(sa_column=Column(Text, nullable=False))
    #: Envelope sender; empty: the null sender, so nothing ever answers an answer.
    mail_from: str = Field(default="", sa_column=Column(Text, nullable=False))
    rcpt_to: str = Field(sa_column=Column(Text, nullable=False))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    state: str = Field(default=OutboundState.QUEUED,
                       sa_column=Column(Text, nullable=False, server_default="queued"))
    attempts: int = 0
    next_attempt_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    sent_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class ApiKey(SQLModel, table=True):
    """A key of the HTTP API: one account's, or every account's (``account_id`` None).
    Only a hash is kept; the key itself is shown once, when made."""

    __tablename__ = "api_key"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = None
    name: str = Field(default="", sa_column=Column(Text, nullable=False, server_default=""))
    #: SHA-256 of the whole key, hex: keys are 256 random bits, so no salt or stretching.
    key_hash: str = Field(sa_column=Column(Text, nullable=False, unique=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    revoked_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    #: When a request last came with it, to the minute (``actions.platform.note_key_used``).
    last_used_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class Webhook(SQLModel, table=True):
    """A subscription: committed events that match go to ``url``, signed with ``secret``,
    one at a time and in order. ``cursor`` is the last event done with (delivered, or
    failed for good); the event table itself is the outbox, so an event and its delivery
    are committed together."""

    __tablename__ = "webhook"

    id: int | None = Field(default=None, primary_key=True)
    account_id: int | None = None
    url: str = Field(sa_column=Column(Text, nullable=False))
    secret: str = Field(sa_column=Column(Text, nullable=False))
    #: Event type patterns (``lead.*``); None: every event.
    event_types: list[str] | None = Field(default=None, sa_column=Column(JsonText))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    removed_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    cursor: int = Field(default=0, sa_column=Column(sa.Integer, nullable=False,
                                                    server_default="0"))
    #: Failed attempts at the event after the cursor, and when to try it again.
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_column=_ts(nullable=True))
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    #: Which process delivers for it now, and until when (several workers or nodes).
    lease_owner: str | None = Field(default=None, sa_column=Column(Text))
    lease_until: datetime | None = Field(default=None, sa_column=_ts(nullable=True))


class WebhookDelivery(SQLModel, table=True):
    """One attempt to deliver one event to one subscription."""

    __tablename__ = "webhook_delivery"
    __table_args__ = (Index("ix_webhook_delivery_webhook_id_id", "webhook_id", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    webhook_id: int
    event_id: int
    attempt: int
    at: datetime = Field(default_factory=utcnow, sa_column=_ts())
    #: ``delivered``, ``retrying`` or ``failed`` (given up: the next event goes).
    outcome: str = Field(sa_column=Column(Text, nullable=False))
    status_code: int | None = None
    error: str | None = Field(default=None, sa_column=Column(Text))
    duration_ms: float = 0.0


class IdempotencyKey(SQLModel, table=True):
    """An answered request with an ``Idempotency-Key``: the same key again gets the same
    answer, and changes nothing."""

    __tablename__ = "idempotency_key"
    __table_args__ = (UniqueConstraint("scope", "key", name="uq_idempotency_key_scope_key"),)

    id: int | None = Field(default=None, primary_key=True)
    #: Whose key: ``key:<api key id>`` (two clients may pick the same key).
    scope: str = Field(sa_column=Column(Text, nullable=False))
    key: str = Field(sa_column=Column(Text, nullable=False))
    #: SHA-256 of method, path and body: the same key with another request is refused.
    request_hash: str = Field(sa_column=Column(Text, nullable=False))
    status_code: int
    body: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JsonText, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_ts(index=True))
