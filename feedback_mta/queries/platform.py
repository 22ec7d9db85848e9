"""API keys and webhook subscriptions, and what was delivered to each."""

from __future__ import annotations

from typing import Any

from sqlmodel import Session, col, select

from feedback_mta.queries import NotFound
from feedback_mta.store.models import ApiKey, IdempotencyKey, Webhook, WebhookDelivery


def key_dict(key: ApiKey) -> dict[str, Any]:
    return {"id": key.id, "account_id": key.account_id, "all_accounts": key.account_id is None,
            "name": key.name, "created_at": key.created_at, "revoked_at": key.revoked_at,
            "last_used_at": key.last_used_at}


def keys(session: Session, *, key_id: int | None = None) -> list[dict[str, Any]]:
    """The keys (``key list``), or the one ``key_id`` (``GET /v1/keys``: the caller's)."""
    query = select(ApiKey)
    if key_id is not None:
        query = query.where(ApiKey.id == key_id)
    return [key_dict(k) for k in session.exec(query.order_by(col(ApiKey.id)))]


def webhook_dict(hook: Webhook) -> dict[str, Any]:
    return {"id": hook.id, "url": hook.url, "account_id": hook.account_id,
            "all_accounts": hook.account_id is None, "event_types": hook.event_types,
            "cursor": hook.cursor, "attempts": hook.attempts,
            "next_attempt_at": hook.next_attempt_at, "last_error": hook.last_error,
            "created_at": hook.created_at}


def webhooks(session: Session, *, account: int | None = None) -> list[dict[str, Any]]:
    """The subscriptions not removed, oldest first: all (``webhook list``, a key of every
    account), or one account's own (``GET /v1/webhooks`` with that account's key)."""
    query = select(Webhook).where(col(Webhook.removed_at).is_(None))
    if account is not None:
        query = query.where(Webhook.account_id == account)
    return [webhook_dict(h) for h in session.exec(query.order_by(col(Webhook.id)))]


def get_webhook(session: Session, webhook_id: int) -> Webhook:
    hook = session.get(Webhook, webhook_id)
    if hook is None:
        raise NotFound(f"no webhook {webhook_id}")
    return hook


def deliveries(session: Session, webhook_id: int, limit: int = 100) -> list[dict[str, Any]]:
    """The latest attempts, newest first."""
    get_webhook(session, webhook_id)
    rows = session.exec(select(WebhookDelivery).where(WebhookDelivery.webhook_id == webhook_id)
                        .order_by(col(WebhookDelivery.id).desc()).limit(limit)).all()
    return [{"id": d.id, "event_id": d.event_id, "attempt": d.attempt, "at": d.at,
             "outcome": d.outcome, "status_code": d.status_code, "error": d.error,
             "duration_ms": d.duration_ms} for d in rows]


def remembered(session: Session, scope: str, key: str) -> IdempotencyKey | None:
    """The answer kept for this ``Idempotency-Key`` of this API key, if any."""
    return session.exec(select(IdempotencyKey).where(IdempotencyKey.scope == scope,
                                                     IdempotencyKey.key == key)).first()
