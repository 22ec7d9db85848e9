"""``SPAM``: flag the lead as spam, as the control panel would (only that activity)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import LeadCommand
from feedback_mta.reading.commands import FLAG

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.store.models import Lead


def act(uow: UnitOfWork, lead: Lead) -> bool:
    return uow.leads.flag_spam(lead)


COMMAND = LeadCommand(
    words=FLAG, act=act,
    done="flagged", unchanged="already spam",
    ack_done="Lead #{lead} marked as spam. Reply NOT SPAM to undo.",
    ack_unchanged="Lead #{lead} was already marked as spam. Reply NOT SPAM to undo.")
