"""The reply commands' words: what a contact admin may write back (``SPAM``, ``NOT SPAM``,
``RESTORE``, ``UNDO``, ``KEEP <id>``, ...), per language, and ``VOCABULARY``, what
``reply_text.read`` reads a reply's intent with.

They live here, in ``reading``, because reading a reply needs only the words: the offline
``feedback-mta parse`` reads the intent of each reply without the database, so it must not
import ``handlers`` (which reach the actions and the store). ``handlers.commands`` pairs
each command's words here with what it does and the acknowledgements it sends. A new
command is its words here (in ``LEAD`` for a lead command) and its module there.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from feedback_mta.reading.reply_text import Vocabulary


@dataclass(frozen=True)
class LeadWords:
    """The words of a command about one lead, written as the first line of a reply to its
    notification."""

    #: The intent read (``handlers.commands.BY_NAME`` finds its command by it).
    name: str
    #: Language -> the words that alone make the command (folded: no accents needed).
    words: Mapping[str, str]
    #: The command these words make after a negation ("NOT SPAM"), if any.
    negated: str | None = None
    #: At most this many of its words make a line the command ("spam spam spam" flags;
    #: "undo it", but not "undo undo undo", restores).
    max_words: int = 3


#: ``SPAM``: flag the lead. "NOT" before any of these words restores it.
FLAG = LeadWords("flag", {
    "en": "spam spams spamm spammer junk junkmail fake bogus bot bots scam fraud fraudulent",
    "es": "basura falso falsa falsos fraude estafa nodeseado",
    "fr": "pourriel indesirable faux fausse arnaque",
    "de": "mull gefalscht betrug",
    "pt": "lixo golpe",
    "ru": "спам",
}, negated="restore")

#: ``NOT SPAM``, ``RESTORE``, ``UNDO``: put a flagged lead back among the active ones.
RESTORE = LeadWords("restore", {
    "en": "restore restored undo unflag unspam unmark",
    "es": "restaurar deshacer recuperar",
    "fr": "restaurer annuler retablir",
    "de": "wiederherstellen ruckgangig",
    "pt": "desfazer",
}, max_words=2)

#: Lead commands in the order they are tried.
LEAD: tuple[LeadWords, ...] = (FLAG, RESTORE)

# Review commands: language -> the phrases that start a line naming an id, in a reply to a
# digest.
#: ``KEEP <id>`` (or ``NOT SPAM <id>``) a suspected contact of a review digest.
KEEP: Mapping[str, tuple[str, ...]] = {"en": ("keep", "not spam")}
#: ``NOT SPAM <id>`` (or ``RESTORE <id>``) a lead of a spam digest.
NOT_SPAM: Mapping[str, tuple[str, ...]] = {
    "en": ("not spam", "restore"), "es": ("no es spam", "restaurar"),
    "fr": ("pas spam", "restaurer"), "de": ("kein spam", "wiederherstellen"),
    "pt": ("não é spam", "restaurar")}


def vocabulary(commands: Iterable[LeadWords]) -> Vocabulary:
    """What ``reply_text.read`` reads the intent of a reply with, from these commands."""
    commands = tuple(commands)
    return Vocabulary.of({c.name: " ".join(c.words.values()).split() for c in commands},
                         {c.name: c.negated for c in commands if c.negated},
                         {c.name: c.max_words for c in commands})


VOCABULARY = vocabulary(LEAD)
