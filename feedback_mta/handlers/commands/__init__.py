"""Reply commands: what a contact admin can write back, one module each (Mailman's shape).

A module pairs the command's words (``reading.commands``) with the action it calls and the
acknowledgement it sends; ``REGISTRY`` lists them in the order they are tried. The words,
and ``VOCABULARY`` that ``reading.reply_text`` reads replies with, are in ``reading``
because the offline ``feedback-mta parse`` reads a reply's intent too and must not import
this package (it reaches the actions and the database); ``VOCABULARY`` is named here as
well for the reply handler. A new command is its words in ``reading.commands``, one new
module here added to ``REGISTRY``, plus its tests.

Lead commands (``flag``, ``restore``) answer a lead notification: the first line of the
reply is the command. Review commands answer a digest, one line per id: ``keep``
(``KEEP <id>``) a review digest of suspected contacts, ``not_spam`` (``NOT SPAM <id>``) a
spam digest of automatically flagged leads.

Consent commands (``confirm``, ``decline``) answer a confirmation request: a contact's
reply to ``confirm+TOKEN`` says yes or no (``handlers.confirmation``).
"""

from __future__ import annotations

from feedback_mta.handlers.commands import confirm, decline, flag, keep, not_spam, restore
from feedback_mta.handlers.commands.base import (
    ACK_REFUSED,
    ConsentCommand,
    LeadCommand,
    ReviewCommand,
)
from feedback_mta.reading.commands import CONSENT_VOCABULARY, VOCABULARY

__all__ = ["ACK_REFUSED", "BY_NAME", "CONSENT", "CONSENT_BY_NAME", "CONSENT_VOCABULARY",
           "REGISTRY", "REVIEW", "VOCABULARY", "ConsentCommand", "LeadCommand", "ReviewCommand"]

#: Lead commands in the order they are tried (``reading.commands.LEAD``'s).
REGISTRY: tuple[LeadCommand, ...] = (flag.COMMAND, restore.COMMAND)
BY_NAME: dict[str, LeadCommand] = {c.name: c for c in REGISTRY}
#: Review commands (each says whether its ids are contacts or leads).
REVIEW: tuple[ReviewCommand, ...] = (keep.COMMAND, not_spam.COMMAND)
#: Consent commands (``reading.commands.CONSENT``'s order).
CONSENT: tuple[ConsentCommand, ...] = (confirm.COMMAND, decline.COMMAND)
CONSENT_BY_NAME: dict[str, ConsentCommand] = {c.name: c for c in CONSENT}
