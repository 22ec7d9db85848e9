"""``SPAM``: flag the lead as spam, as the control panel would (only that activity)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from feedback_mta.handlers.commands.base import LeadCommand

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.store.models import Lead

WORDS = {
    "en": "spam spams spamm spammer junk junkmail fake bogus bot bots scam fraud fraudulent",
    "es": "basura falso falsa falsos fraude estafa nodeseado",
    "fr": "pourriel indesirable faux fausse arnaque",
    "de": "mull gefalscht betrug",
    "pt": "lixo golpe",
    "ru": "спам",
}


def act(uow: UnitOfWork, lead: Lead) -> bool:
    return uow.leads.flag_spam(lead)


COMMAND = LeadCommand(
    name="flag", words=WORDS, negated="restore", act=act,
    done="flagged", unchanged="already spam",
    ack_done="Lead #{lead} marked as spam. Reply NOT SPAM to undo.",
    ack_unchanged="Lead #{lead} was already marked as spam. Reply NOT SPAM to undo.")
