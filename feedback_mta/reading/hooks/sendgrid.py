"""SendGrid's Event Webhook, ``POST /hooks/sendgrid``.

Documents: "Event Webhook Reference" (https://www.twilio.com/docs/sendgrid/for-developers/
tracking-events/event) and "Getting Started with the Event Webhook Security Features"
(https://www.twilio.com/docs/sendgrid/for-developers/tracking-events/getting-started-event-
webhook-security-features).

The signed event webhook sends ``X-Twilio-Email-Event-Webhook-Signature``: a base64 ECDSA
(P-256, SHA-256) signature of ``X-Twilio-Email-Event-Webhook-Timestamp`` followed by the
body's bytes, checked with the verification key from the webhook's settings; a timestamp
further than ``max_age`` from now (Mailgun's limit, 5 minutes) is a replay. The body is a
JSON array of events, each stored on its own (``sg_event_id``). ``bounce`` (``type``
bounce: permanent, ``blocked``: temporary) and ``dropped`` for a bounced or invalid address
are bounces, ``spamreport`` a complaint, ``unsubscribe`` and ``group_unsubscribe``
unsubscribes. Custom arguments arrive as top-level keys of the event (``fm_token``); a
nested ``custom_args`` object is read too.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from feedback_mta.config import SendgridHookConfig
from feedback_mta.kinds import Kind
from feedback_mta.reading.formats.report import Report, address_in
from feedback_mta.reading.hooks.base import (
    TOKEN_FIELD,
    HookEvent,
    HookRequest,
    Malformed,
    Refused,
    as_dict,
    bounced,
    dumps,
    event_id,
    fresh,
    load_json,
    with_token,
)

NAME = "sendgrid"
SIGNATURE = "x-twilio-email-event-webhook-signature"
TIMESTAMP = "x-twilio-email-event-webhook-timestamp"


def enabled(settings: SendgridHookConfig) -> bool:
    return bool(settings.public_key)


def public_key(text: str) -> ec.EllipticCurvePublicKey:
    """The verification key as SendGrid shows it (base64 DER), or PEM."""
    data = text.strip().encode()
    key = (serialization.load_pem_public_key(data) if data.startswith(b"-----")
           else serialization.load_der_public_key(base64.b64decode(data)))
    if not isinstance(key, ec.EllipticCurvePublicKey):
        raise ValueError("not an ECDSA public key")
    return key


def verify(request: HookRequest, settings: SendgridHookConfig) -> None:
    signature, timestamp = request.headers.get(SIGNATURE), request.headers.get(TIMESTAMP)
    if not signature or not timestamp:
        raise Refused("no signature")
    try:
        raw_signature = base64.b64decode(signature, validate=True)
        public_key(settings.public_key).verify(
            raw_signature, timestamp.encode() + request.body, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused("bad signature") from None
    fresh(request, timestamp, settings.max_age)


def split(body: bytes) -> list[HookEvent]:
    data = load_json(body)
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(e, dict) for e in data):
        raise Malformed("not a JSON array of event objects")
    return [HookEvent(event_id(e, "sg_event_id"), dumps(e)) for e in data]


def _token(event: dict[str, Any]) -> object:
    return event.get(TOKEN_FIELD) or as_dict(event.get("custom_args")).get(TOKEN_FIELD)


def read(raw: bytes) -> Report | None:
    event = as_dict(load_json(raw))
    name = str(event.get("event", "")).lower()
    address = address_in(str(event.get("email", "")))
    if address is None:
        return None
    original = with_token(_token(event))
    reason = str(event.get("reason") or "")
    if name == "bounce":
        permanent = str(event.get("type", "bounce")).lower() != "blocked"
        bounce = bounced(address, permanent, event.get("status"), reason)
        return Report(Kind.BOUNCE, NAME, recipients=(address,), bounces=(bounce,),
                      original=original, why=f"sendgrid bounce ({event.get('type')})")
    if name == "dropped":
        lowered = reason.lower()
        if "bounced" in lowered or lowered == "invalid":
            # Dropped: SendGrid itself holds the address back (it bounced before, or is
            # no address): Sisimai's "suppressed".
            bounce = bounced(address, True, None, "", "suppressed")
            return Report(Kind.BOUNCE, NAME, recipients=(address,), bounces=(bounce,),
                          original=original, why=f"sendgrid dropped ({reason})")
        return None  # dropped because it was already unsubscribed or reported: known
    if name == "spamreport":
        return Report(Kind.COMPLAINT, NAME, feedback_type="abuse", recipients=(address,),
                      original=original, why="sendgrid spamreport")
    if name in ("unsubscribe", "group_unsubscribe"):
        return Report(Kind.UNSUBSCRIBE, NAME, recipients=(address,), original=original,
                      why=f"sendgrid {name}")
    return None
