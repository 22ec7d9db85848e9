"""``YES`` (``confirm``, ``ok``, ``ja``, ``oui``, ``sí``, ...) in a reply to a confirmation
request: the person confirms, and becomes mailable, with the reply as evidence."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import ConsentCommand
from feedback_mta.reading.commands import CONFIRM

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.actions.consent import Evidence
    from feedback_mta.store.models import Contact


def act(uow: UnitOfWork, contact: Contact, evidence: Evidence) -> bool:
    return uow.consent.confirm(contact, evidence)


COMMAND = ConsentCommand(words=CONFIRM, act=act, done="confirmed", unchanged="already confirmed")
