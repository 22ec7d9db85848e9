"""Postmark webhooks, ``POST /hooks/postmark``.

Documents: "Bounce webhook" (https://postmarkapp.com/developer/webhooks/bounce-webhook),
"Spam complaint webhook" (https://postmarkapp.com/developer/webhooks/spam-complaint-webhook),
"Subscription change webhook" (https://postmarkapp.com/developer/webhooks/subscription-
change-webhook) and the bounce types (https://postmarkapp.com/developer/api/bounce-api).

Postmark does not sign its webhooks; it posts to a URL with HTTP basic-auth credentials
(``https://user:password@fb.example.com/hooks/postmark``), checked here. One JSON object
per request, by ``RecordType``: ``Bounce`` (by ``Type``), ``SpamComplaint``,
``SubscriptionChange`` (an unsubscribe when the recipient suppressed sending; a change
Postmark made after a bounce or complaint was told by that webhook already).
"""

from __future__ import annotations

import base64
import hmac

from feedback_mta.config import PostmarkHookConfig
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
    dumps,
    event_id,
    load_json,
    with_token,
)

NAME = "postmark"

#: Bounce ``Type``s that say the address is gone (our rules still read ``Details``).
HARD = frozenset({"HardBounce", "BadEmailAddress"})
#: Those that say it failed for now (full mailbox, DNS, blocked, a filter).
SOFT = frozenset({"SoftBounce", "Transient", "DnsError", "Blocked", "DMARCPolicy",
                  "SpamNotification", "VirusNotification", "ChallengeVerification"})


def enabled(settings: PostmarkHookConfig) -> bool:
    return bool(settings.username and settings.password)


def verify(request: HookRequest, settings: PostmarkHookConfig) -> None:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "basic" or not value:
        raise Refused("no credentials")
    try:
        user, _, password = base64.b64decode(value.strip(), validate=True).decode().partition(":")
    except (ValueError, UnicodeDecodeError):  # binascii.Error; not ASCII
        raise Refused("unreadable credentials") from None
    if not (hmac.compare_digest(user.encode(), settings.username.encode())
            & hmac.compare_digest(password.encode(), settings.password.encode())):
        raise Refused("wrong credentials")


def split(body: bytes) -> list[HookEvent]:
    data = load_json(body)
    if not isinstance(data, dict) or "RecordType" not in data:
        raise Malformed("not a Postmark record (no RecordType)")
    record = str(data["RecordType"])
    if record in ("Bounce", "SpamComplaint"):
        return [HookEvent(f"{record}:{event_id(data, 'ID')}", dumps(data))]
    return [HookEvent(f"{record}:{event_id(data)}", dumps(data))]


def read(raw: bytes) -> Report | None:
    data = as_dict(load_json(raw))
    record = str(data.get("RecordType", ""))
    original = with_token(as_dict(data.get("Metadata")).get(TOKEN_FIELD))
    if record == "SubscriptionChange":
        address = address_in(str(data.get("Recipient", "")))
        if (address and data.get("SuppressSending") is True
                and data.get("SuppressionReason") == "ManualSuppression"):
            return Report(Kind.UNSUBSCRIBE, NAME, recipients=(address,), original=original,
                          why="postmark subscription change (unsubscribed)")
        return None
    address = address_in(str(data.get("Email", "")))
    if address is None:
        return None
    kind = str(data.get("Type", ""))
    if record == "SpamComplaint" or kind == "SpamComplaint":
        return Report(Kind.COMPLAINT, NAME, feedback_type="abuse", recipients=(address,),
                      original=original, why="postmark spam complaint")
    if kind == "Unsubscribe":
        return Report(Kind.UNSUBSCRIBE, NAME, recipients=(address,), original=original,
                      why="postmark unsubscribe")
    if record != "Bounce" or kind not in HARD | SOFT:
        return None  # AutoResponder, AddressChange, Subscribe, ...: not feedback
    details = f"{data.get('Details') or ''} {data.get('Description') or ''}"
    bounce = bounced(address, kind in HARD, None, details)
    return Report(Kind.BOUNCE, NAME, recipients=unique([address]), bounces=(bounce,),
                  original=original, why=f"postmark bounce ({kind})")
