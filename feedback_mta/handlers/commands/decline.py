"""``NO`` (``no thanks``, ``unsubscribe``, ``remove me``, ``nein``, ``non``, ...) in a reply to
a confirmation request: the person declines, and is opted out with reason ``declined``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import ConsentCommand
from feedback_mta.reading.commands import DECLINE

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.actions.consent import Evidence
    from feedback_mta.store.models import Contact


def act(uow: UnitOfWork, contact: Contact, evidence: Evidence) -> bool:
    return uow.consent.decline(contact, evidence)


COMMAND = ConsentCommand(words=DECLINE, act=act, done="declined", unchanged="already opted out")
