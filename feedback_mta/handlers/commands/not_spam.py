"""``NOT SPAM <id>`` (or ``RESTORE <id>``) in a reply to a spam digest: restore that lead of
the account, flagged automatically. The restore is a label the spam model learns from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import ReviewCommand
from feedback_mta.reading.commands import NOT_SPAM

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.store.models import Lead


def act(uow: UnitOfWork, lead: Lead) -> bool:
    return uow.leads.restore(lead)


COMMAND = ReviewCommand(
    name="not spam", words=NOT_SPAM, act=act, done="restored",
    ack="Restored: {done}. They are back among your leads and go out as usual.",
    ack_unknown=" Not flagged leads of this account: {unknown}.", about="lead")
