"""What a kind's handler gets (``HandlerContext``) and returns (``Outcome``).

Handlers are the step between ``classify`` and ``actions``: one per kind, registered in
``process.HANDLERS``. They decide from the parsed message and act only through
``ctx.actions``, inside the transaction that also records the message's final state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from feedback_mta.actions import Actions
from feedback_mta.addresses import AddressBook
from feedback_mta.reading.classify import Classification
from feedback_mta.reading.parse import ParsedMessage
from feedback_mta.reading.reply_text import NOTIFICATION_MARKERS
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
    """What handlers take from the config (kept small so tests can build one by hand)."""

    #: authserv-ids whose Authentication-Results we trust; empty: DMARC is not checked.
    trusted_authserv_ids: tuple[str, ...] = ()
    #: Where a reply's quoted notification starts (see ``reply_text``).
    markers: tuple[str, ...] = NOTIFICATION_MARKERS
    #: Queue acknowledgements (only when an outbound relay is configured).
    acknowledge: bool = False
    from_name: str = "Lead feedback"
    #: Feedback-loop reporters (domains) allowed to act by reported address alone.
    trusted_reporters: tuple[str, ...] = ()
    #: Soft bounces within the window (seconds) that count as a hard one.
    soft_bounce_limit: int = 3
    soft_bounce_window: float = 30 * 86400.0

    @classmethod
    def from_config(cls, config) -> Settings:
        return cls(trusted_authserv_ids=tuple(config.security.trusted_authserv_ids),
                   markers=tuple(config.replies.markers),
                   acknowledge=(config.replies.acknowledge
                                and config.outbound.relay_address is not None),
                   from_name=config.outbound.from_name,
                   trusted_reporters=tuple(config.feedback.trusted_reporters),
                   soft_bounce_limit=config.feedback.soft_bounce_limit,
                   soft_bounce_window=config.feedback.soft_bounce_window)


@dataclass
class HandlerContext:
    message_id: int
    parsed: ParsedMessage
    classification: Classification
    actions: Actions
    book: AddressBook
    settings: Settings = Settings()


Handler = Callable[[HandlerContext], Outcome]
