"""``/v1/webhooks`` and ``/v1/keys``: what the platform was given to hear from us and to
reach us, seen and managed over HTTP. A key of one account sees that account's
subscriptions only (another's id is a 404, as an unknown one); a key of every account sees
them all. The same queries and actions as ``webhook list``, ``webhook remove``, ``webhook
redeliver`` and ``key list``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter
from fastapi import Path as PathParam
from pydantic import BaseModel, Field
from sqlmodel import Session

from feedback_mta.actions import Conflict, UnitOfWork, unit_of_work
from feedback_mta.http.auth import Caller
from feedback_mta.http.problems import RESPONSES, ProblemError
from feedback_mta.http.services import Engine_, Reader
from feedback_mta.http.suppressions import CONFLICT
from feedback_mta.http.v1 import Timestamp, Who
from feedback_mta.queries import platform
from feedback_mta.queries.cursors import MAX_ID

router = APIRouter(prefix="/v1", responses=RESPONSES)

WebhookId = Annotated[int, PathParam(ge=1, le=MAX_ID)]


class WebhookOut(BaseModel):
    id: int
    url: str
    account_id: int | None = Field(description="null: every account's events")
    all_accounts: bool
    event_types: list[str] | None = Field(description="Types or patterns; null: every event")
    cursor: int = Field(description="The last event it is done with (delivered or failed)")
    attempts: int = Field(description="Failed attempts at the event after the cursor")
    next_attempt_at: Timestamp | None
    last_error: str | None
    created_at: Timestamp


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class WebhookRemoved(BaseModel):
    id: int
    removed: bool


class RedeliverIn(BaseModel):
    after: int = Field(ge=0, le=MAX_ID, description="An event id: the subscription's events "
                                                    "after it go out again, in order")


class WebhookRedelivered(WebhookOut):
    changed: bool = Field(description="false: the cursor was there already")


class KeyOut(BaseModel):
    id: int
    name: str
    account_id: int | None = Field(description="null: a key of every account")
    all_accounts: bool
    created_at: Timestamp
    last_used_at: Timestamp | None = Field(description="To the minute")


class KeyList(BaseModel):
    keys: list[KeyOut]


@router.get("/webhooks", response_model=WebhookList,
            summary="The subscriptions: the key's account's, or all (webhook list)")
def list_webhooks(who: Who, reader: Reader) -> Any:
    with Session(reader) as session:
        return {"webhooks": platform.webhooks(session, account=who.account_id)}


def _own_webhook(uow: UnitOfWork, who: Caller, webhook_id: int) -> None:
    """404 for a subscription that is gone, or another account's (or every account's,
    for a key of one)."""
    hook = uow.platform.webhook(webhook_id)
    if not (who.account_id is None or hook.account_id == who.account_id):
        raise ProblemError(404, f"no webhook {webhook_id}")


@router.delete("/webhooks/{webhook_id}", response_model=WebhookRemoved,
               summary="Stop sending to a subscription (webhook remove)")
def remove_webhook(engine: Engine_, who: Who, webhook_id: WebhookId) -> Any:
    with unit_of_work(engine, who.actor) as uow:
        _own_webhook(uow, who, webhook_id)
        uow.platform.remove_webhook(webhook_id)
    return {"id": webhook_id, "removed": True}


@router.post("/webhooks/{webhook_id}/redeliver", response_model=WebhookRedelivered,
             responses=CONFLICT,
             summary="Send the subscription's events after an event id again "
                     "(webhook redeliver)")
def redeliver_webhook(engine: Engine_, who: Who, webhook_id: WebhookId,
                      body: RedeliverIn) -> Any:
    try:
        with unit_of_work(engine, who.actor) as uow:
            _own_webhook(uow, who, webhook_id)
            changed = uow.platform.redeliver(webhook_id, body.after)
            hook = platform.webhook_dict(uow.platform.webhook(webhook_id))
    except Conflict as exc:  # a sender holds it now: a moment later it will not
        raise ProblemError(409, str(exc), type="/problems/conflict",
                           headers={"Retry-After": "1"}) from None
    return {**hook, "changed": changed}


@router.get("/keys", response_model=KeyList,
            summary="The key this request came with (key list)")
def list_keys(who: Who, reader: Reader) -> Any:
    with Session(reader) as session:
        return {"keys": platform.keys(session, key_id=who.key_id)}
