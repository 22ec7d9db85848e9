"""The addresses we own (DESIGN.md, "Addresses we own") and nothing else.

``resolve`` is the single answer to "is this a recipient we accept?", used at RCPT time
(anything else gets 550, so the server is never a relay) and again when a stored message
is processed. It is pure: no database, so RCPT stays fast and works when the database
is down.
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum
from typing import TYPE_CHECKING, NamedTuple

from feedback_mta import tokens
from feedback_mta.tokens import Purpose

if TYPE_CHECKING:
    from feedback_mta.config import Config


class Box(StrEnum):
    REPLY = "reply"
    FBL = "fbl"
    BOUNCE = "bounce"
    UNSUBSCRIBE = "unsubscribe"
    #: Reply-To of a review digest; TOKEN names the account.
    REVIEW = "review"
    #: Reply-To of a confirmation request (double opt-in); TOKEN names the contact.
    CONFIRM = "confirm"
    #: RFC 5321 section 4.5.1 requires it; feedback-loop sign-ups verify a domain by mail to
    #: it and to abuse@. Stored and forwarded to the operator, never acted on.
    POSTMASTER = "postmaster"
    ABUSE = "abuse"


#: The Message-ID of a spam digest (``jobs.spam_digest``) starts with this: a reply to
#: ``review+TOKEN`` that cites it names leads, not contacts.
SPAM_DIGEST_ID = "spam-digest."

#: Boxes whose mail is for the operator, not for us to act on.
ADMIN_BOXES = frozenset({Box.POSTMASTER, Box.ABUSE})


_TOKEN_BOXES = {Box.REPLY: Purpose.REPLY, Box.BOUNCE: Purpose.BOUNCE,
                Box.UNSUBSCRIBE: Purpose.UNSUBSCRIBE, Box.REVIEW: Purpose.REVIEW,
                Box.CONFIRM: Purpose.CONFIRM}


class Recipient(NamedTuple):
    """A recipient we own: which box, and the lead (reply), contact (bounce, unsubscribe) or
    account (review) it names."""

    address: str
    box: Box
    object_id: int | None = None


class AddressBook(NamedTuple):
    domain: str
    secrets: tuple[str, ...]
    fbl_aliases: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Config) -> AddressBook:
        sec = config.security
        return cls(domain=config.smtp.domain.lower(),
                   secrets=(sec.secret_key, *sec.previous_secret_keys),
                   fbl_aliases=tuple(config.smtp.fbl_aliases))

    def address(self, box: Box, object_id: int | None = None) -> str:
        if box is Box.FBL:
            return f"fbl@{self.domain}"
        if object_id is None:
            raise ValueError(f"a {box.value}+ address names an object")
        token = tokens.make(self.secrets[0], _TOKEN_BOXES[box], object_id)
        return f"{box.value}+{token}@{self.domain}"

    def resolve(self, address: str) -> Recipient | None:
        """The recipient ``address`` names, or None if it is not one of ours."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at and domain.lower() == Box.POSTMASTER:  # RFC 5321: bare <Postmaster>
            return Recipient(address, Box.POSTMASTER)
        if not at or domain.lower().rstrip(".") != self.domain:
            return None
        local = local.lower()
        if local.startswith('"') and local.endswith('"') and len(local) >= 2:
            local = local[1:-1]
        if local == Box.FBL or local in self.fbl_aliases:
            return Recipient(address, Box.FBL)
        if local in ADMIN_BOXES:
            return Recipient(address, Box(local))
        box_name, plus, token = local.partition("+")
        if not plus:
            return None
        try:
            box = Box(box_name)
        except ValueError:
            return None
        purpose = _TOKEN_BOXES.get(box)
        if purpose is None:
            return None
        object_id = tokens.verify(self.secrets, purpose, token)
        if object_id is None:
            return None
        return Recipient(address, box, object_id)

    def resolve_all(self, addresses: Sequence[str]) -> list[Recipient]:
        return [r for r in map(self.resolve, addresses) if r is not None]


def notification_message_id(book: AddressBook, lead_id: int) -> str:
    """The Message-ID (without brackets) for the lead-notification email of ``lead_id``."""
    token = book.address(Box.REPLY, lead_id).split("@")[0].partition("+")[2]
    return f"lead.{token}@{book.domain}"


class ConfirmLink(NamedTuple):
    """How a pending contact confirms: the token, the address to reply to, and the page."""

    token: str
    #: ``confirm+TOKEN@domain``: a reply saying yes (or no) there answers.
    reply_to: str
    #: ``<base>/c/TOKEN``; "" when there is no page to link to (no ``base``).
    url: str


def confirm_link(book: AddressBook, contact_id: int, base: str) -> ConfirmLink:
    """The confirmation request's Reply-To and link for ``contact_id``; ``base`` is where
    the HTTP listener answers (``[http] public_url``, else its own address). Pure."""
    reply_to = book.address(Box.CONFIRM, contact_id)
    token = reply_to.split("@")[0].partition("+")[2]
    return ConfirmLink(token, reply_to, f"{base.rstrip('/')}/c/{token}" if base else "")
