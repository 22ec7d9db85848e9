"""What the confirmation page (``/c/TOKEN``) shows a person: who asks to mail them, at
which address (partly masked, as the unsubscribe page shows it), and where their answer
stands."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

from sqlmodel import Session

from feedback_mta.queries.unsubscribe import mask
from feedback_mta.store.models import Account, Contact
from feedback_mta.store.states import DECLINED, UNCONFIRMED, ContactStatus


class Standing(StrEnum):
    """Where a person's answer stands, as the page tells it."""

    #: Waiting for their answer: the page offers yes and no.
    PENDING = "pending"
    #: They said no, or did not answer in time: their own yes still counts.
    LAPSED = "lapsed"
    #: They confirmed already.
    CONFIRMED = "confirmed"
    #: Mailable without a confirmation (it was never asked for).
    SUBSCRIBED = "subscribed"
    #: Opted out otherwise (a complaint, a bounce, an unsubscribe, a known-bad verdict):
    #: nothing here mails them again.
    REFUSED = "refused"


@dataclass(frozen=True, slots=True)
class Confirmation:
    contact_id: int
    #: The account's name: who asks.
    sender: str
    #: The address, partly masked (``mask``).
    address: str
    standing: Standing
    #: While pending: when silence becomes a no.
    confirm_by: datetime | None


def standing(contact: Contact) -> Standing:
    if contact.status == ContactStatus.PENDING:
        return Standing.PENDING
    if contact.status == ContactStatus.OPTED_OUT:
        return (Standing.LAPSED if contact.opt_out_reason in (DECLINED, UNCONFIRMED)
                else Standing.REFUSED)
    return Standing.CONFIRMED if contact.confirmed_at is not None else Standing.SUBSCRIBED


def confirmation(session: Session, contact_id: int) -> Confirmation | None:
    """The contact's confirmation as its page shows it; None when there is no such
    contact (deleted, or a genuine token of an id never used)."""
    contact = session.get(Contact, contact_id)
    if contact is None:
        return None
    account = session.get(Account, contact.account_id)
    return Confirmation(contact_id, account.name if account else "", mask(contact.email),
                        standing(contact), contact.confirm_by)
