"""``/v1``: the platform's API. Each endpoint is the command line's command of the same name
over HTTP: the same query or action, the same JSON (``lead add --json`` is ``POST
/v1/leads``), the same audit events, with actor ``api:key<ID>`` and ``via`` ``api``."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, Field, PlainSerializer
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from feedback_mta.actions import Invalid, UnitOfWork, unit_of_work
from feedback_mta.actions.consent import MAX_SOURCE, MAX_USER_AGENT, ConsentIn
from feedback_mta.actions.platform import BadUrl
from feedback_mta.actions.registration import check_ahead, read_comments
from feedback_mta.actions.together import NotCommitted, Prepare, Work
from feedback_mta.http.auth import Caller, caller, registrar
from feedback_mta.http.problems import RESPONSES, ProblemError
from feedback_mta.http.services import Book, Config_, Engine_, HttpServices, Reader, Services
from feedback_mta.quality.verdict import Engagement
from feedback_mta.queries import (
    accounts,
    contacts,
    iso,
    leads,
    platform,
    sheets,
    suppressions,
)
from feedback_mta.queries import events as event_queries
from feedback_mta.queries.cursors import MAX_ID
from feedback_mta.store.states import ConsentMethod

router = APIRouter(prefix="/v1", responses=RESPONSES)
LeadId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
ContactId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
AccountId = Annotated[int, PathParam(ge=1, le=MAX_ID)]
#: Times as the command line prints them: UTC, ISO 8601, ``Z``.
Timestamp = Annotated[datetime, PlainSerializer(iso, return_type=str)]
Who = Annotated[Caller, Depends(caller)]
#: The registrations' caller: the key remembered for a few seconds (``auth.registrar``).
Registrar = Annotated[Caller, Depends(registrar)]


# --- the shapes (the OpenAPI document is made from these) ----------------------------------

class ConsentBody(BaseModel):
    """How the person came to the platform, kept as the proof of their consent."""

    method: ConsentMethod = Field(
        ConsentMethod.API, description="A new contact of a method in [consent] "
        "confirm_methods (by default import, social, purchased) is pending until the "
        "person confirms.")
    source: str = Field("", max_length=MAX_SOURCE,
                        description="Where from: a form's URL, a list's name.")
    at: datetime | None = Field(None, description="When they consented (ISO 8601; UTC "
                                                  "unless a zone is given); default: now")
    ip: str | None = Field(None, max_length=64, description="The address they consented from")
    user_agent: str | None = Field(None, max_length=1000,
                                   description=f"Their browser (the first {MAX_USER_AGENT} "
                                               "characters are kept)")

    def checked(self) -> ConsentIn:
        """As the actions take it, checked before the transaction: a 422 naming the field
        (``consent.ip``) otherwise."""
        try:
            return ConsentIn(self.method.value, self.source, self.at, self.ip,
                             self.user_agent).checked()
        except Invalid as exc:
            raise ProblemError(422, f"consent.{exc}", errors=[
                {"loc": ["body", "consent", exc.field or "method"],
                 "msg": str(exc)}]) from None


class ContactIn(BaseModel):
    account_id: int | None = Field(None, ge=1, le=MAX_ID,
                                   description="Needed with an every-account key.")
    email: str = Field(json_schema_extra={"format": "email"})
    first: str = ""
    last: str = ""
    ip: str | None = None
    consent: ConsentBody | None = Field(
        None, description="How the person came; none: a new contact's method is api (an "
                          "existing contact keeps its record).")


class LeadIn(ContactIn):
    comments: str = ""


class LeadOut(BaseModel):
    id: int
    account_id: int
    contact_id: int
    status: str = Field(description="active or spam")
    source_ip: str | None
    comments: str
    reply_to: str = Field(description="Reply-To of the lead's notification")
    message_id: str = Field(description="Message-ID of the lead's notification")
    flagged_at: Timestamp | None
    flagged_by: str | None
    flagged_via: str | None
    exported_at: Timestamp | None
    spam_score: float | None = Field(description="0-1, scored as it arrived")
    spam_reasons: list[str]
    created_at: Timestamp


class LeadCreated(LeadOut):
    contact_status: str
    quality: str | None
    quality_reasons: list[str]
    notify: bool = Field(description="false when the lead was flagged spam as it arrived: "
                                     "do not forward it to the dealer")


class LeadChanged(LeadOut):
    changed: bool


class ConsentOut(BaseModel):
    method: str = Field(description="form, double_opt_in, api, import, social, purchased or "
                                    "unknown (contacts from before it was kept)")
    source: str
    at: Timestamp | None
    confirmed_at: Timestamp | None
    confirmed_via: str | None = Field(description="link or reply")
    confirm_by: Timestamp | None = Field(description="While pending: opted out (reason "
                                                     "unconfirmed) unless confirmed by then")


class ContactOut(BaseModel):
    id: int
    account_id: int
    email: str
    first_name: str
    last_name: str
    status: str = Field(description="active, pending (awaiting the person's confirmation) "
                                    "or opted_out")
    opt_out_reason: str | None
    opted_out_at: Timestamp | None
    mailable: bool = Field(description="Mail may be sent: not opted out, not pending, did "
                                       "not bounce (the same in /v1/suppressions)")
    not_mailable_reason: str | None = Field(
        description="Why not mailable (the suppression's reason): the opt-out's reason, "
                    "pending, or bounced; null when mailable")
    tags: list[str]
    quality: str | None
    quality_reasons: list[str]
    review_deadline: Timestamp | None
    verified: bool
    verified_at: Timestamp | None
    engaged: bool
    engagement: list[str]
    source_ip: str | None
    consent: ConsentOut


class ContactDetail(ContactOut):
    undeliverable_at: Timestamp | None
    undeliverable_reason: str | None
    hard_bounces: int
    soft_bounces: int
    complaints: int
    leads: list[int]
    created_at: Timestamp
    updated_at: Timestamp | None


class ConsentEvent(BaseModel):
    id: int
    type: str = Field(description="contact.consent_recorded, contact.confirmation_sent, "
                                  "contact.confirmed, contact.opted_out, contact.opted_in")
    at: Timestamp
    actor: str
    via: str | None
    reason: str | None
    data: dict[str, Any]


class ConsentProof(BaseModel):
    contact_id: int
    account_id: int
    email: str
    status: str
    method: str
    source: str
    at: Timestamp | None
    ip: str | None
    user_agent: str | None
    confirmed_at: Timestamp | None
    confirmed_via: str | None = Field(description="link or reply")
    evidence: dict[str, Any] | None = Field(
        description="The confirming reply's message_id and inbound_message_id, or the "
                    "click's ip and user_agent")
    confirm_by: Timestamp | None
    confirmation_sent_at: Timestamp | None
    events: list[ConsentEvent] = Field(description="The events that made the record, in "
                                                   "order")


class ContactCreated(ContactOut):
    created: bool


class ContactChanged(ContactOut):
    changed: bool


class OptOutIn(BaseModel):
    reason: str = "manual"


class EngageIn(BaseModel):
    kind: Engagement


class Suppression(BaseModel):
    contact_id: int
    account_id: int
    email: str
    reason: str | None = Field(description="complaint, unsubscribe, invalid_contact, manual, "
                                            "... or bounced (the contact's "
                                            "not_mailable_reason)")
    since: Timestamp | None
    opted_out: bool
    mailable: bool = Field(description="false: the contact's own mailable")
    undeliverable_reason: str | None
    bounced: bool = Field(description="The address bounced (too), whatever the reason")


class SuppressionPage(BaseModel):
    suppressions: list[Suppression]
    next: str | None = Field(description="Cursor of the next page (after=); null: the last.")


class EventOut(BaseModel):
    id: int = Field(description="The cursor: ask for after=ID next")
    type: str
    created_at: Timestamp
    data: dict[str, Any] = Field(description="The fields of the event's log line")


class EventPage(BaseModel):
    events: list[EventOut]
    next: int = Field(description="The cursor to ask with next (after=)")


class WebhookIn(BaseModel):
    url: str = Field(max_length=2000, json_schema_extra={"format": "uri"},
                     description="http(s), a public address, no user:pass@")
    account_id: int | None = Field(None, ge=1, le=MAX_ID,
                                   description="With an every-account key: one account's "
                                   "events (none: every account's).")
    events: list[Annotated[str, Field(max_length=100)]] = Field(
        default_factory=list, max_length=50,
        description="Types or patterns (lead.*); none: every event.")


class WebhookCreated(BaseModel):
    id: int
    secret: str = Field(description="whsec_...: the key each delivery is signed with; "
                        "shown once")
    url: str
    account_id: int | None
    event_types: list[str] | None


# --- helpers --------------------------------------------------------------------------------

_TIMES: dict[Any, Callable[[Any], Any]] = {datetime: iso}


def _own_lead(uow: UnitOfWork, who: Caller, lead_id: int) -> Any:
    lead = uow.leads.get(lead_id)
    who.check(lead.account_id, f"lead {lead_id}")
    return lead


def _own_contact(uow: UnitOfWork, who: Caller, contact_id: int) -> Any:
    contact = uow.contacts.get(contact_id)
    who.check(contact.account_id, f"contact {contact_id}")
    return contact


def readable_contact(session: Session, who: Caller, contact_id: int) -> Any:
    """The contact, read for a caller that may see it (404 for another account's)."""
    contact = contacts.get(session, contact_id)
    who.check(contact.account_id, f"contact {contact_id}")
    return contact


def needs_account(who: Caller, asked: int | None, where: str = "body") -> int:
    """The account a request acts in: ``account_id`` (in the body or the ``query``) is
    needed with a key of every account."""
    account = who.account(asked)
    if account is None:
        raise ProblemError(422, "account_id: needed with a key of every account", errors=[
            {"loc": [where, "account_id"], "msg": "needed with a key of every account"}])
    return account


# --- accounts -------------------------------------------------------------------------------

class GuardFigures(BaseModel):
    since: str = Field(description="Start of the window (or the last resume), ISO 8601")
    sent: int
    complaints: int
    hard_bounces: int
    complaint_rate: float
    bounce_rate: float
    complaints_by_consent: dict[str, int] = Field(
        description="The complaints by how the complaining contacts came (consent method): "
                    "an account mailing imported lists shows here first")


class AccountOut(BaseModel):
    id: int
    name: str
    sending: str = Field(description="What the account guard advises: ok, warned or paused")
    sending_reasons: list[str]
    sending_changed_at: Timestamp | None
    figures: GuardFigures
    users: int
    contacts: int
    leads: int
    created_at: Timestamp


@router.get("/accounts/{account_id}", response_model=AccountOut,
            summary="One account and the guard's advice (account show)")
def show_account(who: Who, reader: Reader, config: Config_, account_id: AccountId) -> Any:
    who.check(account_id, f"account {account_id}")
    with Session(reader) as session:
        shown = accounts.show(session, account_id, config.guard.window)
        return {k: v for k, v in shown.items() if k != "user_list"}


# --- leads ----------------------------------------------------------------------------------

IdempotencyHeader = Annotated[str | None, Header(
    alias="Idempotency-Key", max_length=255,
    description="The same key again (within a day) gets the first answer and changes "
                "nothing.")]


def _links(**targets: str) -> dict[str, Any]:
    """OpenAPI links: the id in this answer is the parameter of those operations."""
    return {name: {"operationId": operation, "parameters": {param: "$response.body#/id"}}
            for name, (operation, param) in ((n, t.split(":")) for n, t in targets.items())}


_LEAD_LINKS = _links(ShowLead="show_lead:lead_id", FlagLead="flag_lead:lead_id",
                     RestoreLead="restore_lead:lead_id")
_CONTACT_LINKS = _links(ShowContact="show_contact:contact_id",
                        ContactHeaders="contact_headers:contact_id",
                        VerifyContact="verify_contact:contact_id",
                        OptOutContact="optout_contact:contact_id",
                        EngageContact="engage_contact:contact_id")


@router.post("/leads", status_code=201, response_model=LeadCreated,
             responses={201: {"links": _LEAD_LINKS, "description": "Registered"}},
             summary="Register a lead (lead add)")
async def add_lead(request: Request, services: Services, who: Registrar, lead: LeadIn,
                   idempotency_key: IdempotencyHeader = None) -> Any:
    account = needs_account(who, lead.account_id)
    consent = lead.consent.checked() if lead.consent is not None else None
    # Only an Idempotency-Key's request is hashed (``_once``).
    payload = lead.model_dump() if idempotency_key is not None else {}

    def prepare() -> Work[Response]:
        # Checked and read before the transaction: scoring grows with the comments.
        try:
            comments = read_comments(services.config, lead.comments)
        except Invalid as exc:
            raise ProblemError(422, str(exc), errors=[
                {"loc": ["body", "comments"], "msg": str(exc).partition(": ")[2]}]) from None
        _check_ahead(services, account, lead, idempotency_key)

        def register(uow: UnitOfWork) -> tuple[dict[str, Any], int]:
            done = uow.registration.add_lead(
                services.config, account, lead.email, lead.first, lead.last, lead.ip,
                comments, consent, ConsentMethod.API)
            return leads.registered(done.lead, done.contact_status, done.verdict,
                                    services.book), 201

        return _once(request, who, idempotency_key, payload, register)

    return await _together(services, who, prepare)


def _check_ahead(services: HttpServices, account: int, body: ContactIn,
                 key: str | None) -> None:
    """``check_ahead`` of a registration's fields, in its ``Prepare``; not with an
    Idempotency-Key, whose answer (or its reuse) comes first (``_once``)."""
    if key is None:
        check_ahead(services.engine, account, body.email, body.first, body.last, body.ip)


async def _together(services: HttpServices, who: Caller, prepare: Prepare[Response]
                    ) -> Response:
    """The work ``prepare`` makes (off the event loop, before the transaction), committed
    with the registrations that arrive meanwhile (``Together``): its own answer or its own
    error; 503 when it was not committed in time."""
    try:
        return await services.together.run(who.actor, prepare)
    except NotCommitted:
        raise ProblemError(503, "not committed in time; try again (an Idempotency-Key makes "
                                "the retry safe)", headers={"Retry-After": "5"}) from None


def _time(value: Any) -> str | None:
    if isinstance(value, datetime):
        return iso(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


def _json(body: dict[str, Any], status: int) -> Response:
    """``body`` as ``JSONResponse(jsonable_encoder(body, ...))`` answers it, times as
    ``iso``, in one ``json.dumps``: a registration's answer is plain data (str, numbers,
    lists, dicts, times), and the encoder's walk through it cost more than the rest of the
    answer."""
    return Response(json.dumps(body, ensure_ascii=False, allow_nan=False, indent=None,
                               separators=(",", ":"), default=_time).encode(),
                    status_code=status, media_type="application/json")


def _once(request: Request, who: Caller, key: str | None, payload: dict[str, Any],
          work: Work[tuple[dict[str, Any], int]]) -> Work[Response]:
    """What a registration does in its unit of work: ``work`` (it gives the answer and its
    status) unless this key was answered before: then the answer as before. A key reused
    for another request is refused (422)."""
    if key is None:
        def plain(uow: UnitOfWork) -> Response:
            body, status = work(uow)
            return _json(body, status)
        return plain
    scope = f"key:{who.key_id}"
    digest = hashlib.sha256(json.dumps([request.method, request.url.path, payload],
                                       sort_keys=True, default=str).encode()).hexdigest()

    def once(uow: UnitOfWork) -> Response:
        for _ in range(2):
            seen = platform.remembered(uow.session, scope, key)
            if seen is None:
                try:
                    with uow.session.begin_nested():
                        answer, status = work(uow)
                        body = jsonable_encoder(answer, custom_encoder=_TIMES)
                        uow.platform.remember(scope, key, digest, status, body)
                except IntegrityError:
                    uow.recorder.discard()
                    # The same key at the same moment (the same contact made, or the key
                    # kept, by the other first): its answer is ours once it committed.
                    if platform.remembered(uow.session, scope, key) is None:
                        raise
                    continue
                return JSONResponse(body, status_code=status)
            if seen.request_hash != digest:
                raise ProblemError(422, "this Idempotency-Key was used for another request",
                                   type="/problems/idempotency-key-reused", errors=[
                                       {"loc": ["header", "Idempotency-Key"],
                                        "msg": "used for another request"}])
            return JSONResponse(seen.body, status_code=seen.status_code,
                                headers={"Idempotent-Replayed": "true"})
        raise ProblemError(409, "this Idempotency-Key is being used by another request")
    return once


@router.get("/leads/{lead_id}", response_model=LeadOut, summary="One lead (lead show)")
def show_lead(who: Who, reader: Reader, book: Book, lead_id: LeadId) -> Any:
    with Session(reader) as session:
        lead = leads.get(session, lead_id)
        who.check(lead.account_id, f"lead {lead_id}")
        return leads.lead_dict(lead, book)


@router.post("/leads/{lead_id}/flag", response_model=LeadChanged,
             summary="Flag a lead as spam (lead flag)")
def flag_lead(services: Services, who: Who, lead_id: LeadId) -> Any:
    return _change_lead(services, who, lead_id, lambda uow, lead: uow.leads.flag_spam(lead))


def _change_lead(services: HttpServices, who: Caller, lead_id: int, change: Any) -> Any:
    with unit_of_work(services.engine, who.actor) as uow:
        lead = _own_lead(uow, who, lead_id)
        changed = bool(change(uow, lead))
    return {**leads.lead_dict(lead, services.book), "changed": changed}


@router.post("/leads/{lead_id}/restore", response_model=LeadChanged,
             summary="Undo a spam flag (lead restore)")
def restore_lead(services: Services, who: Who, lead_id: LeadId) -> Any:
    return _change_lead(services, who, lead_id, lambda uow, lead: uow.leads.restore(lead))


# --- contacts -------------------------------------------------------------------------------

@router.post("/contacts", response_model=ContactCreated, status_code=201,
             responses={200: {"model": ContactCreated, "description": "Known already",
                              "links": _CONTACT_LINKS},
                        201: {"links": _CONTACT_LINKS, "description": "Added"}},
             summary="Add a contact, checked as it arrives (contact add)")
async def add_contact(request: Request, services: Services, who: Registrar,
                      contact: ContactIn,
                      idempotency_key: IdempotencyHeader = None) -> Any:
    account = needs_account(who, contact.account_id)
    consent = contact.consent.checked() if contact.consent is not None else None

    def register(uow: UnitOfWork) -> tuple[dict[str, Any], int]:
        row, created = uow.registration.add_contact(services.config, account,
                                                    contact.email, contact.first, contact.last,
                                                    contact.ip, consent, ConsentMethod.API)
        return {**contacts.contact_dict(uow.session, row), "created": created}, (
            201 if created else 200)

    work = _once(request, who, idempotency_key,
                 contact.model_dump() if idempotency_key is not None else {}, register)

    def prepare() -> Work[Response]:
        _check_ahead(services, account, contact, idempotency_key)
        return work

    return await _together(services, who, prepare)


@router.get("/contacts/{contact_id}", response_model=ContactDetail,
            summary="One contact (contact show)")
def show_contact(who: Who, reader: Reader, contact_id: ContactId) -> Any:
    with Session(reader) as session:
        readable_contact(session, who, contact_id)
        return contacts.show(session, contact_id)


@router.get("/contacts/{contact_id}/consent", response_model=ConsentProof,
            summary="The proof of consent: the record and its events (contact consent)")
def contact_consent(who: Who, reader: Reader, contact_id: ContactId) -> Any:
    with Session(reader) as session:
        readable_contact(session, who, contact_id)
        return contacts.consent(session, contact_id)


@router.get("/contacts/{contact_id}/headers", response_model=dict[str, str],
            summary="Headers for mail to the contact (contact headers)")
def contact_headers(who: Who, reader: Reader, book: Book, config: Config_,
                    contact_id: ContactId) -> Any:
    with Session(reader) as session:
        readable_contact(session, who, contact_id)
        return contacts.headers(session, book, contact_id, config.http.public_url)


def _change_contact(engine: Engine, who: Caller, contact_id: int, change: Any) -> Any:
    with unit_of_work(engine, who.actor) as uow:
        contact = _own_contact(uow, who, contact_id)
        changed = bool(change(uow, contact))
        return {**contacts.contact_dict(uow.session, contact), "changed": changed}


@router.post("/contacts/{contact_id}/verify", response_model=ContactChanged,
             summary="A real person: clear the suspicion (contact verify)")
def verify_contact(engine: Engine_, who: Who, contact_id: ContactId) -> Any:
    return _change_contact(engine, who, contact_id, lambda uow, c: uow.quality.verify(c))


@router.post("/contacts/{contact_id}/optout", response_model=ContactChanged,
             summary="Opt the contact out (contact optout)")
def optout_contact(engine: Engine_, who: Who, contact_id: ContactId,
                   body: Annotated[OptOutIn | None, Body()] = None) -> Any:
    reason = (body or OptOutIn()).reason.strip() or "manual"
    return _change_contact(engine, who, contact_id,
                           lambda uow, c: uow.contacts.opt_out_as_asked(c, reason))


@router.post("/contacts/{contact_id}/engage", response_model=ContactChanged,
             summary="Record a purchase, double opt-in, open or click (contact engage)")
def engage_contact(engine: Engine_, who: Who, contact_id: ContactId,
                   body: EngageIn) -> Any:
    return _change_contact(engine, who, contact_id,
                           lambda uow, c: uow.quality.engage(c, body.kind))


# --- what goes out: suppressions and the event feed ------------------------------------------

@router.get("/suppressions", response_model=SuppressionPage,
            responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}},
                             "description": "The list (as CSV with Accept: text/csv)"}},
            summary="Every address that must not be mailed")
def list_suppressions(request: Request, who: Who, reader: Reader,
                      account_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                      after: Annotated[str | None, Query(max_length=64)] = None,
                      limit: Annotated[int, Query(ge=1, le=10000)] = 1000) -> Any:
    account = who.account(account_id)
    suppressions.decode_cursor(after)  # a bad one is a 422 before any CSV is streamed
    if "text/csv" in request.headers.get("accept", ""):
        return StreamingResponse(_csv(reader, account, after), media_type="text/csv")
    with Session(reader) as session:
        rows, cursor = suppressions.page(session, account=account, after=after, limit=limit)
    return {"suppressions": rows, "next": cursor}


def _csv(reader: Engine, account: int | None, after: str | None) -> Iterator[str]:
    """The whole list from ``after`` on, a page at a time (one read each); no cell can
    start a formula (``sheets``)."""
    writer = sheets.Writer()
    writer.row(suppressions.COLUMNS)
    cursor: str | None = after
    while True:
        with Session(reader) as session:
            rows, cursor = suppressions.page(session, account=account, after=cursor)
        for row in rows:
            writer.row(row[c] for c in suppressions.COLUMNS)
        yield writer.take()
        if cursor is None:
            return


@router.get("/events", response_model=EventPage,
            summary="The audit events in commit order, from a cursor")
def list_events(who: Who, reader: Reader,
                after: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
                limit: Annotated[int, Query(ge=1, le=1000)] = 100,
                type: Annotated[str | None, Query(
                    max_length=500, description="Types or patterns: lead.*,contact.opted_out")
                ] = None,
                account_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Any:
    account = who.account(account_id)
    with Session(reader) as session:
        items = event_queries.feed(session, after=after, limit=limit,
                                   types=(type or "").split(","), account=account)
    return {"events": items, "next": items[-1]["id"] if items else after}


@router.post("/webhooks", status_code=201, response_model=WebhookCreated,
             summary="Subscribe a URL to the events from now on (webhook add)")
def add_webhook(services: Services, who: Who, hook: WebhookIn) -> Any:
    account = who.account(hook.account_id)
    try:
        with unit_of_work(services.engine, who.actor) as uow:
            row = uow.platform.add_webhook(
                hook.url, account, hook.events,
                allow_private_networks=services.config.webhooks.allow_private_networks)
            return {"id": row.id, "secret": row.secret, "url": row.url,
                    "account_id": row.account_id, "event_types": row.event_types}
    except BadUrl as exc:
        raise ProblemError(422, str(exc), errors=[
            {"loc": ["body", BadUrl.field], "msg": str(exc)}]) from None
