"""What a kind's handler gets (``HandlerContext``) and returns (``Outcome``).

Handlers are the step between ``classify`` and ``actions``: one per kind, registered in
``handlers.registry``. They decide from the parsed message and act only through
``ctx.uow`` (``uow.contacts``, ``uow.leads``, ...), inside the transaction that also
records the message's final state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from feedback_mta.actions import UnitOfWork
from feedback_mta.addresses import AddressBook
from feedback_mta.config import (
    Config,
    FeedbackConfig,
    OutboundConfig,
    RepliesConfig,
    SecurityConfig,
    SmtpConfig,
    WebhooksConfig,
)
from feedback_mta.reading import authres
from feedback_mta.reading.classify import Classification
from feedback_mta.reading.parse import ParsedMessage
from feedback_mta.store.models import MessageState


@dataclass(frozen=True)
class Outcome:
    state: MessageState
    reason: str | None = None


NO_ACTION = Outcome(MessageState.IGNORED, "no action")
#: A report no contact can be attributed to (``attribution``): kept, counted, no change.
UNATTRIBUTED = Outcome(MessageState.IGNORED, "unattributed")


@dataclass(frozen=True)
class Settings:
    """What handlers take from the config: its sections as they are (a test builds one with
    just the sections it changes), and what follows from more than one of them."""

    security: SecurityConfig = field(default_factory=SecurityConfig)
    replies: RepliesConfig = field(default_factory=RepliesConfig)
    feedback: FeedbackConfig = field(default_factory=FeedbackConfig)
    outbound: OutboundConfig = field(default_factory=OutboundConfig)
    smtp: SmtpConfig = field(default_factory=SmtpConfig)
    webhooks: WebhooksConfig = field(default_factory=WebhooksConfig)

    @classmethod
    def from_config(cls, config: Config) -> Settings:
        return cls(config.security, config.replies, config.feedback, config.outbound,
                   config.smtp, config.webhooks)

    def hook_account(self, provider: str) -> int | None:
        """The account ``[webhooks.<provider>] account`` names for events without a token."""
        section = getattr(self.webhooks, provider, None)
        return getattr(section, "account", 0) or None

    @property
    def acknowledge(self) -> bool:
        """Answer understood replies: asked for, and there is a relay to send through."""
        return self.replies.acknowledge and self.outbound.relay_address is not None

    @property
    def forward_admin_to(self) -> str:
        """Where postmaster@ and abuse@ mail goes; empty without an operator or a relay."""
        return self.smtp.postmaster if self.outbound.relay_address is not None else ""


@dataclass
class HandlerContext:
    message_id: int
    parsed: ParsedMessage
    classification: Classification
    uow: UnitOfWork
    book: AddressBook
    settings: Settings = Settings()
    #: ``attribution.named_contacts``, when the processor read them before its transaction
    #: (None: ``resolve`` reads them itself).
    named_contacts: tuple[tuple[str, int], ...] | None = None

    def dmarc_refusal(self, sender: str) -> str | None:
        """Why a reply from ``sender`` may not act as far as DMARC goes, where ``[security]
        trusted_authserv_ids`` is set: ``authres.NO_DMARC`` or ``authres.DMARC_FAIL``."""
        return authres.refusal(self.parsed.headers.get("authentication-results", ()),
                               self.settings.security.trusted_authserv_ids, sender)


Handler = Callable[[HandlerContext], Outcome]
