"""``GET /v1/leads`` and ``GET /v1/contacts``: the platform finds what it registered, a page
at a time. The same queries as ``lead list`` and ``contact list``; a page ends with the
cursor of the next (``next``, asked for with ``after=``), as ``/v1/suppressions`` does."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlmodel import Session

from feedback_mta.actions import Invalid
from feedback_mta.actions.accounts import check_text
from feedback_mta.http.problems import RESPONSES, ProblemError
from feedback_mta.http.services import Book, Reader
from feedback_mta.http.v1 import ContactOut, LeadOut, Who, needs_account
from feedback_mta.queries import contacts, leads, utc
from feedback_mta.queries.cursors import MAX_ID
from feedback_mta.store.states import ContactStatus, LeadStatus

router = APIRouter(prefix="/v1", responses=RESPONSES)

AccountQuery = Annotated[int | None, Query(
    ge=1, le=MAX_ID, description="The account (needed with an every-account key).")]
After = Annotated[str | None, Query(max_length=64,
                                    description="The cursor a page gave as next.")]
Limit = Annotated[int, Query(ge=1, le=1000)]


class LeadPage(BaseModel):
    leads: list[LeadOut]
    next: str | None = Field(description="Cursor of the next page (after=); null: the last.")


class ContactPage(BaseModel):
    contacts: list[ContactOut]
    next: str | None = Field(description="Cursor of the next page (after=); null: the last.")


def text_query(name: str, value: str | None, where: str = "query") -> str | None:
    """A text parameter the database can hold (no NUL, no lone surrogate, no control
    character): a 422 naming it otherwise."""
    if value is None:
        return None
    try:
        return check_text(name, value)
    except Invalid as exc:
        raise ProblemError(422, str(exc), errors=[
            {"loc": [where, name], "msg": str(exc)}]) from None


def _since(value: datetime | None) -> datetime | None:
    try:
        return None if value is None else utc(value)
    except OverflowError:  # year 1 at +05:00 is before any time UTC can hold
        raise ProblemError(422, "since: out of range", errors=[
            {"loc": ["query", "since"], "msg": "out of range"}]) from None


@router.get("/leads", response_model=LeadPage,
            summary="Leads, newest first, filtered, a page at a time (lead list)")
def list_leads(who: Who, reader: Reader, book: Book, account_id: AccountQuery = None,
               status: Annotated[LeadStatus, Query(
                   description="spam: the flagged ones (left out otherwise)")
               ] = LeadStatus.ACTIVE,
               via: Annotated[str | None, Query(
                   max_length=50, description="Flagged this way: auto (by its score), "
                                              "email (a dealer's reply), api, cli, web (the "
                                              "review page)")
               ] = None,
               contact_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
               since: Annotated[datetime | None, Query(
                   description="Created at or after (ISO 8601; UTC unless a zone is given)")
               ] = None,
               after: After = None, limit: Limit = 100) -> Any:
    account = needs_account(who, account_id, "query")
    way, created = text_query("via", via), _since(since)
    with Session(reader) as session:
        rows, cursor = leads.page(
            session, book, account=account, status=status, via=way, contact=contact_id,
            since=created, after=after, limit=limit)
    return {"leads": rows, "next": cursor}


@router.get("/contacts", response_model=ContactPage,
            summary="Contacts in id order, filtered, a page at a time (contact list)")
def list_contacts(who: Who, reader: Reader, account_id: AccountQuery = None,
                  email: Annotated[str | None, Query(max_length=254)] = None,
                  status: ContactStatus | None = None,
                  mailable: Annotated[bool | None, Query(
                      description="true: mail may be sent; false: not (opted out, "
                                  "pending, bounced)")] = None,
                  after: After = None, limit: Limit = 100) -> Any:
    account, address = who.account(account_id), text_query("email", email)
    with Session(reader) as session:
        rows, cursor = contacts.page(
            session, account=account, status=status.value if status else None, email=address,
            mailable=mailable, after=after, limit=limit)
    return {"contacts": rows, "next": cursor}
