"""``POST /v1/suppressions`` and ``DELETE /v1/suppressions/{email}``: the platform adds an
address to the list it must not mail, or lifts one. The same actions as ``contact optout
--email`` and ``contact optin``, so the command line and the API decide alike: a complaint,
a bounce or a known-bad contact is never lifted (409, saying why)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi import Path as PathParam
from fastapi.encoders import jsonable_encoder
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from feedback_mta.actions import unit_of_work
from feedback_mta.actions.contacts import MAX_REASON
from feedback_mta.http.lists import text_query
from feedback_mta.http.problems import MEDIA_TYPE, RESPONSES, Problem, ProblemError
from feedback_mta.http.services import Engine_
from feedback_mta.http.v1 import ContactChanged, Suppression, Who, needs_account
from feedback_mta.queries import contacts, iso, suppressions
from feedback_mta.queries.cursors import MAX_ID

router = APIRouter(prefix="/v1", responses=RESPONSES)

CONFLICT: dict[int | str, dict[str, Any]] = {409: {"model": Problem, "content": {MEDIA_TYPE: {}},
                  "description": "Refused: the detail says why"}}


class SuppressionIn(BaseModel):
    email: str = Field(max_length=254, json_schema_extra={"format": "email"})
    reason: str = Field("manual", max_length=MAX_REASON,
                        description="Why (kept in the audit trail): manual unless given.")
    account_id: int | None = Field(None, ge=1, le=MAX_ID,
                                   description="Needed with an every-account key.")


class SuppressionAdded(Suppression):
    changed: bool = Field(description="false: it was suppressed already (200)")


@router.post("/suppressions", status_code=201, response_model=SuppressionAdded,
             responses={200: {"model": SuppressionAdded,
                              "description": "Suppressed already"},
                        201: {"description": "Suppressed now"}},
             summary="Never mail this address: opt its contact out (contact optout --email)")
def add_suppression(engine: Engine_, who: Who, body: SuppressionIn) -> Any:
    account = needs_account(who, body.account_id)
    reason = body.reason.strip() or "manual"
    with unit_of_work(engine, who.actor) as uow:
        contact, changed = uow.contacts.suppress(account, body.email, reason)
        answer = {**suppressions.row(contact), "changed": changed}
    return JSONResponse(jsonable_encoder(answer, custom_encoder={datetime: iso}),
                        status_code=201 if changed else 200)


@router.delete("/suppressions/{email}", response_model=ContactChanged,
               responses=CONFLICT,
               summary="Lift a manual or unsubscribe suppression: an opt-in (contact optin)")
def lift_suppression(engine: Engine_, who: Who,
                     email: Annotated[str, PathParam(max_length=254)],
                     account_id: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                     reason: Annotated[str, Query(
                         max_length=MAX_REASON, description="Why (kept in the audit trail)")
                     ] = "suppression lifted") -> Any:
    account = needs_account(who, account_id, "query")
    address = (text_query("email", email, "path") or "").strip().lower()
    said = text_query("reason", reason) or "suppression lifted"
    with unit_of_work(engine, who.actor) as uow:
        contact = uow.contacts.by_email(account, address)
        if contact is None or not uow.contacts.lift(contact, said):
            raise ProblemError(404, f"no suppression of {address!r}")
        return {**contacts.contact_dict(uow.session, contact), "changed": True}
