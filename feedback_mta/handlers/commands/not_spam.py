"""``NOT SPAM <id>`` (or ``RESTORE <id>``) in a reply to a spam digest: restore that lead of
the account, flagged automatically. The restore is a label the spam model learns from."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import ReviewCommand

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.store.models import Lead

WORDS = {"en": ("not spam", "restore"), "es": ("no es spam", "restaurar"),
         "fr": ("pas spam", "restaurer"), "de": ("kein spam", "wiederherstellen"),
         "pt": ("não é spam", "restaurar")}


def act(uow: UnitOfWork, lead: Lead) -> bool:
    return uow.leads.restore(lead)


COMMAND = ReviewCommand(
    name="not spam", words=WORDS, act=act, done="restored",
    ack="Restored: {done}. They are back among your leads and go out as usual.",
    ack_unknown=" Not flagged leads of this account: {unknown}.", about="lead")
