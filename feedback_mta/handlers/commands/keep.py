"""``KEEP <id>`` (or ``NOT SPAM <id>``) in a reply to a review digest: verify that suspected
contact of the account, so its deadline does not opt it out."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import ReviewCommand
from feedback_mta.reading.commands import KEEP

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.store.models import Contact


def act(uow: UnitOfWork, contact: Contact) -> bool:
    return uow.quality.verify(contact)


COMMAND = ReviewCommand(
    name="keep", words=KEEP, act=act, done="kept",
    ack="Kept: {done}. They will not be opted out.",
    ack_unknown=" Not contacts of this account: {unknown}.")
