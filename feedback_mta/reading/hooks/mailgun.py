"""Mailgun webhooks, ``POST /hooks/mailgun``.

Documents: "Securing Webhooks" (https://documentation.mailgun.com/docs/mailgun/user-manual/
webhooks/securing-webhooks/) and "Webhook Payloads" (https://documentation.mailgun.com/docs/
mailgun/user-manual/webhooks/webhook-payloads).

The body is JSON ``{"signature": {...}, "event-data": {...}}``; ``signature.signature`` is
the hex HMAC-SHA256 of ``timestamp + token`` under the webhook signing key. A timestamp
older than ``max_age`` or a token seen before with another event is a replay. Events:
``failed`` (``severity`` permanent / temporary) is a bounce, ``complained`` a complaint,
``unsubscribed`` an unsubscribe; the rest (delivered, opened, ...) is not feedback.
"""

from __future__ import annotations

import hashlib
import hmac

from feedback_mta.config import MailgunHookConfig
from feedback_mta.kinds import Kind
from feedback_mta.reading.formats.report import Report, address_in, unique
from feedback_mta.reading.hooks.base import (
    TOKEN_FIELD,
    HookEvent,
    HookRequest,
    Malformed,
    Refused,
    as_dict,
    bounced,
    event_id,
    fresh,
    load_json,
    with_token,
)

NAME = "mailgun"


def enabled(settings: MailgunHookConfig) -> bool:
    return bool(settings.signing_key)


def verify(request: HookRequest, settings: MailgunHookConfig) -> str:
    """The token (a nonce: the edge refuses it when seen before with another event)."""
    try:
        data = load_json(request.body)
    except Malformed:
        raise Refused("no signature (not JSON)") from None
    signature = as_dict(as_dict(data).get("signature"))
    timestamp, token = str(signature.get("timestamp", "")), str(signature.get("token", ""))
    given = str(signature.get("signature", ""))
    if not (timestamp and token and given):
        raise Refused("no signature")
    # A signature is hex, the rest ASCII: anything else (a lone surrogate even) is not ours.
    if not (timestamp.isascii() and token.isascii() and given.isascii()):
        raise Refused("bad signature")
    expected = hmac.new(settings.signing_key.encode(), (timestamp + token).encode(),
                        hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.lower()):
        raise Refused("bad signature")
    fresh(request, timestamp, settings.max_age)
    return token


def split(body: bytes) -> list[HookEvent]:
    data = as_dict(load_json(body))
    event = data.get("event-data")
    if not isinstance(event, dict):
        raise Malformed("no event-data object")
    return [HookEvent(event_id(event, "id"), body)]


def read(raw: bytes) -> Report | None:
    event = as_dict(as_dict(load_json(raw)).get("event-data"))
    name = str(event.get("event", "")).lower()
    address = address_in(str(event.get("recipient", "")))
    original = with_token(as_dict(event.get("user-variables")).get(TOKEN_FIELD))
    recipients = unique([address])
    if name == "failed":
        if address is None:
            return None
        severity = str(event.get("severity", "")).lower()
        status = as_dict(event.get("delivery-status"))
        diagnostic = " ".join(str(status.get(k) or "") for k in ("message", "description"))
        code = status.get("enhanced-code") or status.get("code")
        bounce = bounced(address, severity == "permanent", code, diagnostic)
        return Report(Kind.BOUNCE, NAME, recipients=recipients, bounces=(bounce,),
                      original=original, why=f"mailgun failed ({severity})")
    if name == "complained":
        return Report(Kind.COMPLAINT, NAME, feedback_type="abuse", recipients=recipients,
                      original=original, why="mailgun complained")
    if name == "unsubscribed":
        return Report(Kind.UNSUBSCRIBE, NAME, recipients=recipients, original=original,
                      why="mailgun unsubscribed")
    return None
