"""``NOT SPAM``, ``RESTORE``, ``UNDO``: put a flagged lead back among the active ones.

"NOT" before any word of ``flag`` means this command too (``not spam``, ``kein Spam``,
``no es spam``, ``não é spam``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import LeadCommand
from feedback_mta.reading.commands import RESTORE

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.store.models import Lead


def act(uow: UnitOfWork, lead: Lead) -> bool:
    return uow.leads.restore(lead)


COMMAND = LeadCommand(
    words=RESTORE, act=act,
    done="restored", unchanged="not spam",
    ack_done="Lead #{lead} restored: it is back in your leads. Reply SPAM to flag it again.",
    ack_unchanged="Lead #{lead} is not marked as spam, so there was nothing to undo.")
