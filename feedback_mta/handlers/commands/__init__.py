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
"""

from __future__ import annotations

from feedback_mta.handlers.commands import flag, keep, not_spam, restore
from feedback_mta.handlers.commands.base import ACK_REFUSED, LeadCommand, ReviewCommand
from feedback_mta.reading.commands import VOCABULARY

__all__ = ["ACK_REFUSED", "BY_NAME", "REGISTRY", "REVIEW", "VOCABULARY", "LeadCommand",
           "ReviewCommand"]

#: Lead commands in the order they are tried (``reading.commands.LEAD``'s).
REGISTRY: tuple[LeadCommand, ...] = (flag.COMMAND, restore.COMMAND)
BY_NAME: dict[str, LeadCommand] = {c.name: c for c in REGISTRY}
#: Review commands (each says whether its ids are contacts or leads).
REVIEW: tuple[ReviewCommand, ...] = (keep.COMMAND, not_spam.COMMAND)
