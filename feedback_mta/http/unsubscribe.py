"""RFC 8058 one-click unsubscribes (``/u/TOKEN``) and the page a person sees who clicks
the link in a mail.

* ``GET /u/TOKEN`` shows whose mail it is (the account's name) and to which address
  (partly masked), and a button that POSTs: a link scanner's GET changes nothing.
* ``POST /u/TOKEN`` (``List-Unsubscribe=One-Click``, from a mail client or that button) is
  stored through the intake before the answer, as if mailed to ``unsubscribe+TOKEN@``, and
  processed after it by the unsubscribe handler, like the mailto (``hooks.store_events``).
  The answer confirms, and offers to resubscribe for ``RESUBSCRIBE_WINDOW``.
* ``POST /u/TOKEN/resubscribe`` (a form post; the token is the capability, as for the
  unsubscribe) undoes that unsubscribe, and only that one (``Contacts.resubscribe``: never
  a complaint, a bounce, a known-bad verdict or anyone else's opt-out). A click still
  stored and not processed is waited for a moment first, so the two act in the order they
  were made; still waiting after ``PENDING_WAIT``, the answer is 503 "try again".

A browser (``Accept`` preferring ``text/html`` to JSON) is answered errors as a small page
with the same status; anything else (a mail client's POST, a script) gets problem+json.
"""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, date, datetime, timedelta
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from feedback_mta import tokens
from feedback_mta.actions import Actor, NotFound, unit_of_work
from feedback_mta.actions.contacts import RESUBSCRIBE_WINDOW, Resubscribe
from feedback_mta.addresses import AddressBook
from feedback_mta.edge.limits import client_address
from feedback_mta.http.hooks import refuse, store_events
from feedback_mta.http.pages import PageRoute, read_form, render
from feedback_mta.http.problems import ProblemError
from feedback_mta.http.services import HttpServices, Services
from feedback_mta.queries.unsubscribe import Subscription, clicks_pending, subscription
from feedback_mta.reading.hooks import one_click
from feedback_mta.reading.hooks.base import HookEvent, Malformed

#: How long a resubscribe waits for a click of the same link that is stored and not yet
#: processed, before it answers "try again in a moment".
PENDING_WAIT = 5.0
_POLL = 0.1
#: Who acts on the page: the person holding the link, by way of it (as their click did).
LINK = Actor(f"http:{one_click.NAME}", one_click.NAME)

_HOURS = int(RESUBSCRIBE_WINDOW / timedelta(hours=1))
_REFUSALS = {
    Resubscribe.EXPIRED: f"an unsubscribe can be undone here for {_HOURS} hours only, and "
                         "that time has passed; to receive these emails again, ask the sender",
    Resubscribe.REFUSED: "this page cannot resubscribe this address: it was not unsubscribed "
                         "through this link (it was reported as spam, its mail bounced, or "
                         "it was stopped otherwise), and it is not mailed again from here"}


def _page(name: str, status: int = 200, headers: dict[str, str] | None = None,
          **values: Any) -> HTMLResponse:
    return render(f"unsubscribe/{name}.html", status, headers, window_hours=_HOURS, **values)


router = APIRouter(include_in_schema=False, route_class=PageRoute)


def _contact_of(request: Request, book: AddressBook, token: str) -> int:
    contact_id = tokens.verify(book.secrets, tokens.Purpose.UNSUBSCRIBE, token.lower())
    if contact_id is None:
        raise refuse(one_click.NAME, request.scope, "not a valid unsubscribe link", status=404)
    return contact_id


def _read(services: HttpServices, contact_id: int) -> Subscription | None:
    with Session(services.reader) as session:
        return subscription(session, contact_id, one_click.NAME)


@router.get("/u/{token}")
async def unsubscribe_page(request: Request, services: Services, token: str) -> HTMLResponse:
    """Whose mail, to which address, what a click does; the button POSTs (a link scanner's
    GET changes nothing)."""
    contact_id = _contact_of(request, services.book, token)
    found = await run_in_threadpool(_read, services, contact_id)
    return _page("ask", title="Unsubscribe", found=found, token=token.lower())


def _one_click_body(request: Request, body: bytes) -> None:
    try:
        one_click.check_body(body, request.headers.get("content-type", ""))
    except Malformed as exc:
        raise refuse(one_click.NAME, request.scope, str(exc), 400) from None


@router.post("/u/{token}")
async def unsubscribe(request: Request, services: Services, token: str) -> HTMLResponse:
    """RFC 8058: ``List-Unsubscribe=One-Click`` opts the contact out; 200, no redirect."""
    book = services.book
    contact_id = _contact_of(request, book, token)
    body = await request.body()
    _one_click_body(request, body)
    token = token.lower()
    found = await run_in_threadpool(_read, services, contact_id)
    generation = found.resubscriptions if found else 0
    event = one_click.event_id(token, datetime.now(UTC).date(), generation)
    await store_events(request.scope, services.intake, one_click.NAME,
                       [HookEvent(event, body)],
                       rcpt_tos=(f"unsubscribe+{token}@{book.domain}",))
    # What it was before this click: already opted out otherwise, nothing to undo here.
    offer = found is not None and found.resubscribe in (Resubscribe.NOT_UNSUBSCRIBED,
                                                        Resubscribe.ALLOWED)
    return _page("done", title="Unsubscribed", found=found, offer=offer, token=token)


def _days(today: date) -> tuple[date, date]:
    """A click is named by its day: today's, or yesterday's made before midnight."""
    return today, today - timedelta(days=1)


async def _wait_for_clicks(services: HttpServices, token: str, generation: int) -> bool:
    """Wait (up to ``PENDING_WAIT``) until no click of this link is stored and unprocessed;
    False when one still is."""
    hashes = [one_click.content_hash(token, day, generation)
              for day in _days(datetime.now(UTC).date())]

    def pending() -> bool:
        with Session(services.reader) as session:
            return clicks_pending(session, hashes)

    deadline = time.monotonic() + PENDING_WAIT
    while await run_in_threadpool(pending):
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(_POLL)
    return True


def _resubscribe(services: HttpServices, contact_id: int, ip: str | None,
                 user_agent: str) -> Resubscribe:
    with unit_of_work(services.engine, LINK) as uow:
        contact = uow.contacts.get(contact_id)
        return uow.contacts.resubscribe(contact, one_click.NAME, ip, user_agent)


@router.post("/u/{token}/resubscribe")
async def resubscribe(request: Request, services: Services, token: str) -> HTMLResponse:
    """Undo this link's unsubscribe, within the window; 409 (and why) when it may not, and
    503 while a click of the link is still being processed."""
    contact_id = _contact_of(request, services.book, token)
    if (await read_form(request)).get("resubscribe") != "yes":
        raise ProblemError(400, "the form must carry resubscribe=yes")
    token = token.lower()
    found = await run_in_threadpool(_read, services, contact_id)
    if found is None:
        raise ProblemError(404, "this link names no address on our lists")
    if not await _wait_for_clicks(services, token, found.resubscriptions):
        raise ProblemError(503, "your unsubscribe is still being processed; try again in a "
                                "moment", headers={"Retry-After": "5"})
    host = request.client.host if request.client else None
    address = client_address(host) if host else None
    try:
        verdict = await run_in_threadpool(
            _resubscribe, services, contact_id, str(address) if address else None,
            request.headers.get("user-agent", ""))
    except NotFound:
        raise ProblemError(404, "this link names no address on our lists") from None
    if verdict in _REFUSALS:
        raise ProblemError(409, _REFUSALS[verdict])
    return _page("resubscribed", title="Resubscribe", found=found, verdict=verdict.value)


@router.get("/u/{rest:path}", name="mangled_link")
@router.post("/u/{rest:path}", name="mangled_link_post")
async def mangled(request: Request, rest: str) -> Response:
    """A link cut or mangled on its way (a mail client's line break, a stray slash)."""
    raise refuse(one_click.NAME, request.scope, "not a valid unsubscribe link", status=404)
