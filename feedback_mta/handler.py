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
from feedback_mta.classify import Classification
from feedback_mta.models import MessageState
from feedback_mta.parse import ParsedMessage


@dataclass(frozen=True)
class Outcome:
    state: MessageState
    reason: str | None = None


NO_ACTION = Outcome(MessageState.IGNORED, "no action")


@dataclass
class HandlerContext:
    message_id: int
    parsed: ParsedMessage
    classification: Classification
    actions: Actions
    book: AddressBook


Handler = Callable[[HandlerContext], Outcome]
