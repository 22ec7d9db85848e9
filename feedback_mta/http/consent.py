"""Confirmation by link: the page a pending contact opens from its confirmation request
(``/c/TOKEN``), and, for a platform that sends its own request, the link and Reply-To of
a pending contact (``GET /v1/contacts/{id}/confirmation``).

* ``GET /c/TOKEN`` shows who asks (the account's name), to which address (partly masked,
  as the unsubscribe page shows it), and two buttons; it changes nothing (mail scanners
  open links).
* ``POST /c/TOKEN``, a form with ``confirm=yes``, confirms (``Consent.confirm``, the
  evidence: the client's address and browser; the time is the confirmation's); with
  ``confirm=no`` it declines (opted out, reason ``declined``). The answer says what
  happened. A contact opted out by a complaint, a bounce or an unsubscribe is refused,
  politely (409). The token is the capability, as for ``/u/TOKEN``.

Errors are pages for browsers and problem+json for everyone else, as on ``/u/TOKEN``
(``pages.PageRoute``). Only the page's own form is read, and only ``MAX_FORM``
bytes of it.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from pydantic import BaseModel, Field
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from feedback_mta import tokens
from feedback_mta.actions import Actor, Conflict, NotFound, unit_of_work
from feedback_mta.actions.consent import MAX_USER_AGENT, Evidence
from feedback_mta.addresses import AddressBook, confirm_link
from feedback_mta.edge.limits import client_address
from feedback_mta.http.pages import PageRoute, read_form, render
from feedback_mta.http.problems import RESPONSES, ProblemError
from feedback_mta.http.review import base_url
from feedback_mta.http.services import Book, Config_, HttpServices, Reader, Services
from feedback_mta.http.suppressions import CONFLICT
from feedback_mta.http.v1 import ContactId, Timestamp, Who, readable_contact
from feedback_mta.queries.confirmation import Confirmation, Standing, confirmation, standing
from feedback_mta.store.states import ConfirmedVia

#: Who acts on the page: the person holding the link, by way of it.
LINK = Actor("http:confirm", "link")
_BAD_LINK = "not a valid confirmation link"
_GONE = "this link names no address on our lists"

api = APIRouter(prefix="/v1", responses=RESPONSES)
pages = APIRouter(include_in_schema=False, route_class=PageRoute)


# --- for a platform that sends its own request -----------------------------------------------

class ConfirmationOut(BaseModel):
    token: str = Field(description="Names the contact in the link and the Reply-To")
    url: str = Field(description="The confirmation page: GET shows two buttons, the "
                                 "person's POST confirms or declines")
    reply_to: str = Field(description="confirm+TOKEN@ our domain: a reply saying yes "
                                      "confirms, no declines")
    confirm_by: Timestamp | None = Field(description="Still pending then: opted out, "
                                                     "reason unconfirmed")


#: Why a platform gets no confirmation link (an opted-out contact: its reason).
_NOT_PENDING = {Standing.CONFIRMED: "confirmed already",
                Standing.SUBSCRIBED: "mailable without a confirmation"}


@api.get("/contacts/{contact_id}/confirmation", response_model=ConfirmationOut,
         responses=CONFLICT,
         summary="The confirmation link and Reply-To of a pending contact, for a platform "
                 "that sends its own request")
def contact_confirmation(request: Request, who: Who, reader: Reader, book: Book,
                         config: Config_, contact_id: ContactId) -> Any:
    with Session(reader) as session:
        contact = readable_contact(session, who, contact_id)
    where = standing(contact)
    if where is not Standing.PENDING:
        why = _NOT_PENDING.get(where) or f"opted out ({contact.opt_out_reason})"
        raise ProblemError(409, f"contact {contact_id} is not pending: it is {why}",
                           type="/problems/conflict")
    link = confirm_link(book, contact_id, base_url(config, request))
    return {"token": link.token, "url": link.url, "reply_to": link.reply_to,
            "confirm_by": contact.confirm_by}


# --- the page ----------------------------------------------------------------------------------

def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    return render(f"consent/{name}.html", status, **values)


def _contact_of(book: AddressBook, token: str) -> int:
    contact_id = tokens.verify(book.secrets, tokens.Purpose.CONFIRM, token.lower())
    if contact_id is None:
        raise ProblemError(404, _BAD_LINK)
    return contact_id


def _read(services: HttpServices, contact_id: int) -> Confirmation:
    with Session(services.reader) as session:
        found = confirmation(session, contact_id)
    if found is None:
        raise ProblemError(404, _GONE)
    return found


@pages.get("/c/{token}")
async def confirmation_page(services: Services, token: str) -> HTMLResponse:
    """Who asks, to which address, and two buttons that POST; nothing changes here."""
    found = await run_in_threadpool(_read, services, _contact_of(services.book, token))
    return _page("ask", title="Confirm", found=found)


def _answer(services: HttpServices, contact_id: int, yes: bool, evidence: Evidence) -> bool:
    with unit_of_work(services.engine, LINK) as uow:
        contact = uow.contacts.get(contact_id)
        return (uow.consent.confirm(contact, evidence) if yes
                else uow.consent.decline(contact, evidence))


def _evidence(request: Request) -> Evidence:
    host = request.client.host if request.client else None
    address = client_address(host) if host else None
    return Evidence(ConfirmedVia.LINK, {
        "ip": str(address) if address else None,
        "user_agent": request.headers.get("user-agent", "")[:MAX_USER_AGENT]})


@pages.post("/c/{token}")
async def answer_confirmation(request: Request, services: Services, token: str
                              ) -> HTMLResponse:
    """``confirm=yes`` confirms, ``confirm=no`` declines; the page says which happened
    (or that it had already)."""
    contact_id = _contact_of(services.book, token)
    said = (await read_form(request)).get("confirm")
    if said not in ("yes", "no"):
        raise ProblemError(400, "the form must carry confirm=yes or confirm=no")
    found = await run_in_threadpool(_read, services, contact_id)
    try:
        changed = await run_in_threadpool(_answer, services, contact_id, said == "yes",
                                          _evidence(request))
    except NotFound:
        raise ProblemError(404, _GONE) from None
    except Conflict:
        raise ProblemError(409, f"this address cannot be confirmed here: it was "
                                f"unsubscribed, reported as spam or its mail bounced, and "
                                f"{found.sender} does not email it") from None
    return _page("done", title="Confirmed" if said == "yes" else "No emails",
                 found=found, said=said, changed=changed)


@pages.get("/c/{rest:path}", name="mangled_confirmation_link")
@pages.post("/c/{rest:path}", name="mangled_confirmation_link_post")
async def mangled(rest: str) -> Response:
    """A link cut or mangled on its way (a mail client's line break, a stray slash)."""
    raise ProblemError(404, _BAD_LINK)
