"""The shapes of a reply command (see the package's docstring); their words are in
``reading.commands``."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from feedback_mta.reading.commands import ReplyWords

if TYPE_CHECKING:  # the database side, kept out of offline ``parse``'s imports
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.actions.consent import Evidence
    from feedback_mta.store.models import Contact, Lead


@dataclass(frozen=True)
class LeadCommand:
    """A command about one lead, written as the first line of a reply to its notification."""

    #: Its name and words (``reading.commands``: the offline parse reads them too).
    words: ReplyWords
    #: Do it; False when there was nothing to change.
    act: Callable[[UnitOfWork, Lead], bool]
    #: The message's final reason when it changed something, and when it did not.
    done: str
    unchanged: str
    #: Acknowledgements (``{lead}`` is the lead id): when it changed something, when not.
    ack_done: str
    ack_unchanged: str

    @property
    def name(self) -> str:
        return self.words.name


@dataclass(frozen=True)
class ReviewCommand:
    """A command about contacts (or leads) named by id, one line each, in a reply to a
    review digest (or a spam digest)."""

    name: str
    #: Language -> the phrases that start such a line.
    words: Mapping[str, tuple[str, ...]]
    #: Do it; False when there was nothing to change (the id is then reported unknown
    #: for a lead command).
    act: Callable[[UnitOfWork, Any], bool]
    #: The message's final reason is "<done> <how many>"; the acknowledgement's purpose
    #: "ack.<done>".
    done: str
    #: Acknowledgement; ``{done}`` lists the contacts acted on, ``{unknown}`` the others.
    ack: str
    ack_unknown: str
    #: What the ids name: ``contact`` (review digest) or ``lead`` (spam digest).
    about: str = "contact"

    @property
    def phrases(self) -> tuple[str, ...]:
        return tuple(p for phrases in self.words.values() for p in phrases)


@dataclass(frozen=True)
class ConsentCommand:
    """A contact's answer to a confirmation request (a reply to ``confirm+TOKEN``)."""

    #: Its name and words (``reading.commands``: the offline parse reads them too).
    words: ReplyWords
    #: Do it, keeping the evidence (the reply's Message-ID, the inbound message); False
    #: when there was nothing to change. ``actions.Conflict`` when the contact may not.
    act: Callable[[UnitOfWork, Contact, Evidence], bool]
    #: The message's final reason when it changed something, and when it did not.
    done: str
    unchanged: str

    @property
    def name(self) -> str:
        return self.words.name


#: Acknowledgement for a user of the account who lacks the role (strangers get nothing).
ACK_REFUSED = ("We read your reply about lead #{lead}, but {sender} may not flag or restore "
               "leads of this account: that needs the Contact Admin role. Ask your account "
               "administrator for it, or use the control panel.")
