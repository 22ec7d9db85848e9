"""Contacts as the command line shows them, and the headers for mail to one."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from feedback_mta import tokens
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.queries import NotFound, cursors, records
from feedback_mta.queries.accounts import require_account
from feedback_mta.store.models import Contact, Tag


def get(session: Session, contact_id: int) -> Contact:
    contact = session.get(Contact, contact_id)
    if contact is None:
        raise NotFound(f"no contact {contact_id}")
    return contact


def by_email(session: Session, account: int, email: str) -> Contact:
    """The account's contact with this address (``NotFound`` naming it otherwise)."""
    found = session.exec(select(Contact).where(
        Contact.account_id == account, Contact.email == email.strip().lower())).first()
    if found is None:
        raise NotFound(f"no contact {email.strip().lower()!r} in account {account}")
    return found


def tags(session: Session, contact_id: int) -> list[str]:
    return list(session.exec(select(Tag.name).where(Tag.contact_id == contact_id)
                             .order_by(col(Tag.name))).all())


def contact_dict(session: Session, contact: Contact | sa.Row[Any],
                 tag_names: list[str] | None = None) -> dict[str, Any]:
    """A contact as the command line shows it (``tag_names`` when already read)."""
    assert contact.id is not None
    return records.contact_fields(contact, tags(session, contact.id) if tag_names is None
                                  else tag_names)


def show(session: Session, contact_id: int) -> dict[str, Any]:
    """One contact: status, opt-out reason, tags, review deadline, bounce counts, leads."""
    return records.contact(session.connection(), contact_id)


def consent(session: Session, contact_id: int) -> dict[str, Any]:
    """The proof of a contact's consent (``records.consent``)."""
    return records.consent(session.connection(), contact_id)


def count(session: Session, *, account: int | None = None) -> int:
    """How many contacts (of one account, which must exist, or all)."""
    query = select(sa.func.count()).select_from(Contact)
    if account is not None:
        require_account(session, account)
        query = query.where(Contact.account_id == account)
    return int(session.exec(query).one())


def page(session: Session, *, tag: str | None = None, account: int | None = None,
         status: str | None = None, email: str | None = None,
         mailable: bool | None = None, after: str | None = None, limit: int = 100
         ) -> tuple[list[dict[str, Any]], str | None]:
    """Contacts in id order, filtered, and the cursor of the next page (None: the last):
    ``contact list`` and ``GET /v1/contacts``. ``tag`` for the review list, ``email``
    across accounts, ``mailable``: those mail may be sent to, or (False) those it may not;
    ``after``: a cursor this handed out (``BadCursor`` otherwise)."""
    start = cursors.decode("k", after)
    if account is not None:
        require_account(session, account)
    query = select(Contact)
    if tag is not None:
        query = query.where(col(Contact.id).in_(select(Tag.contact_id).where(Tag.name == tag)))
    if account is not None:
        query = query.where(Contact.account_id == account)
    if status is not None:
        query = query.where(Contact.status == status)
    if email is not None:
        query = query.where(Contact.email == email.strip().lower())
    if mailable is not None:
        query = query.where(Contact.mailable if mailable else sa.not_(Contact.mailable))
    if start is not None:
        query = query.where(col(Contact.id) > start)
    contacts, cursor = cursors.cut(
        list(session.exec(query.order_by(col(Contact.id)).limit(limit + 1)).all()),
        limit, "k", lambda c: c.id)
    names: dict[int, list[str]] = defaultdict(list)
    for contact_id, name in session.exec(select(Tag.contact_id, Tag.name).where(
            col(Tag.contact_id).in_([c.id for c in contacts])).order_by(col(Tag.name))):
        names[contact_id].append(name)
    return [contact_dict(session, c, names[c.id or 0]) for c in contacts], cursor


def headers(session: Session, book: AddressBook, contact_id: int,
            public_url: str = "") -> dict[str, str]:
    """Headers to put on mail sent to this contact (VERP, List-Unsubscribe, tokens).

    With ``[http] public_url``, List-Unsubscribe offers the HTTPS one-click URL first and
    List-Unsubscribe-Post says a POST unsubscribes (RFC 8058), as Gmail and Yahoo require
    of bulk senders; the mailto stays for clients that only mail (RFC 2369)."""
    contact = get(session, contact_id)
    unsubscribe = book.address(Box.UNSUBSCRIBE, contact_id)
    mailto = f"<mailto:{unsubscribe}?subject=unsubscribe>"
    out = {"Return-Path": f"<{book.address(Box.BOUNCE, contact_id)}>"}
    if public_url:
        token = unsubscribe.split("@")[0].partition("+")[2]
        out["List-Unsubscribe"] = f"<{public_url.rstrip('/')}/u/{token}>, {mailto}"
        out["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    else:
        out["List-Unsubscribe"] = mailto
    out[tokens.TOKEN_HEADER] = tokens.make(book.secrets[0], tokens.Purpose.FEEDBACK, contact_id)
    out[tokens.ACCOUNT_HEADER] = tokens.make(book.secrets[0], tokens.Purpose.ACCOUNT,
                                             contact.account_id)
    return out
