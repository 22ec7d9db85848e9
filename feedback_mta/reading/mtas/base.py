"""What a bounce family's module offers, as ``typing.Protocol``s that mypy checks the
modules against (``mtas.REGISTRY`` and the tables of the families' own readings are typed
by them): a module is an object of its functions, so a protocol's methods are written with
``self`` and a module's without.

Every family has ``detect``; the readings a family adds where its words are not enough
(``hint``, ``command``, ``notice``, ``recipient``, ``failed``) are each a protocol of
their own, because a ``Protocol`` has no optional members: a family that has one is
listed in that reading's table in ``mtas/__init__.py`` too (``tests/test_formats.py``
fails when it is not). The data a family may declare (``PHRASES``, ``BOUNCE_ONLY``,
``PER_RECIPIENT``) is read with its default where it is absent.
"""

from __future__ import annotations

from typing import Protocol, TypeVar

from feedback_mta.reading.parse import ParsedMessage

T = TypeVar("T")


class Family(Protocol):
    """Every family: is this bounce one of theirs?"""

    def detect(self, msg: ParsedMessage, /) -> bool: ...


class Hints(Family, Protocol):
    """A reason its layout or codes pin down (Exchange's hex codes), or ""."""

    def hint(self, msg: ParsedMessage, text: str, /) -> str: ...


class Commands(Family, Protocol):
    """The SMTP command its words say was answered (qmail's "does not like recipient" is
    RCPT), or ""."""

    def command(self, msg: ParsedMessage, text: str, /) -> str: ...


class Notices(Family, Protocol):
    """Which part of its notice speaks of the recipient (Sendmail: the transcript's
    replies, not its boilerplate)."""

    def notice(self, msg: ParsedMessage, text: str, /) -> str: ...


class Recipients(Family, Protocol):
    """What it says of one recipient and the command it answered (old Sendmail's "While
    talking to" blocks), or None."""

    def recipient(self, msg: ParsedMessage, address: str, /) -> tuple[str, str] | None: ...


class Failures(Family, Protocol):
    """The failed addresses, where the family names them its own way (fml: in angle
    brackets; Verizon's and James's "RCPT TO:" details)."""

    def failed(self, msg: ParsedMessage, notice: str, /) -> list[str]: ...


def table(*rows: T) -> tuple[T, ...]:
    """The rows, as a tuple. Written ``NAME: tuple[Protocol, ...] = table(...)``, mypy checks
    each row against the protocol and names the module and the member it lacks or gets
    wrong (of a tuple literal it says only that the whole does not fit)."""
    return rows
