"""What every provider module shares: what it must offer (``Provider``), the request as
verified, the events it splits into, and the small helpers that turn one provider event
into a ``Report``.

A provider module says what ``Provider`` lists, each a pure function: its ``NAME``,
whether its ``[webhooks.<NAME>]`` table turns it on (``enabled``), and how to ``verify``,
``split`` and ``read`` a request. ``hooks.PROVIDERS`` is typed by the protocol, so mypy
fails when a module lacks one of them or has it with another signature.

Our token travels in the provider's custom fields (``fm_token``); ``with_token`` puts it in
a synthetic original as the ``X-Feedback-Token`` header, where ``attribution`` looks first.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from email.message import Message
from typing import Any, Protocol, TypeVar

from feedback_mta import tokens
from feedback_mta.reading.formats.dsn import hardness, status_of
from feedback_mta.reading.formats.report import Bounced, Report
from feedback_mta.reading.parse import ParsedMessage

#: Where platforms put our token in a provider's custom fields.
TOKEN_FIELD = "fm_token"


class Refused(Exception):
    """The request is not the provider's (no, a wrong or a stale signature, a replay)."""


class Malformed(Exception):
    """Signed, but not the JSON (or form) the provider documents."""


@dataclass(frozen=True)
class HookRequest:
    """A request as the HTTP edge received it: lower-case header names, the body's bytes."""

    headers: Mapping[str, str]
    body: bytes
    #: Seconds since the epoch, when it arrived (signature age checks).
    now: float
    #: PEM bytes of a certificate at an HTTPS URL (SNS); the edge fetches and caches.
    certificate: Callable[[str], bytes] = field(default=lambda url: b"", repr=False)


@dataclass(frozen=True)
class HookEvent:
    """One event of a request: the provider's id for it and the bytes stored for it."""

    id: str
    raw: bytes


#: What ``verify`` returns: the nonce to remember, when the scheme has one (Mailgun's
#: token); the verified message, when its type decides what to do (SNS: a notification or
#: a subscription's confirmation); else None.
Verified = str | dict[str, Any] | None

#: The provider's ``[webhooks.<NAME>]`` table (``config.SesHookConfig``, ...).
Settings = TypeVar("Settings", contravariant=True)


class Provider(Protocol[Settings]):
    """What an ESP's module offers (``ses``, ``sendgrid``, ``mailgun``, ``postmark``): module
    functions, as here without ``self``. RFC 8058 one-click (``one_click``) is no provider:
    no signature, no events of its own, one fixed body.
    """

    @property
    def NAME(self) -> str:
        """``/hooks/<NAME>``, ``[webhooks.<NAME>]``, the ``provider`` of its arrivals."""
        ...

    def enabled(self, settings: Settings, /) -> bool:
        """Is it set up (a key, a user name)? ``/hooks/<NAME>`` answers 404 until it is."""
        ...

    def verify(self, request: HookRequest, settings: Settings, /) -> Verified:
        """Is the request signed by the provider? ``Refused`` (401, nothing stored) if not."""
        ...

    def split(self, body: bytes, /) -> list[HookEvent]:
        """The request's events, each with the provider's event id (the dedupe key) and its
        own bytes, stored as one inbound message; ``Malformed`` (400) when unreadable."""
        ...

    def read(self, raw: bytes, /) -> Report | None:
        """The ``Report`` of one stored event (complaint, bounce, unsubscribe), or None when
        it is not feedback (a delivery, an open): stored, ``ignored``, no action."""
        ...


def fresh(request: HookRequest, timestamp: str, max_age: float) -> None:
    """A signed timestamp (seconds since the epoch) within ``max_age`` of the request's
    arrival, either way; ``Refused`` (a replay) otherwise, NaN and infinity too."""
    try:
        age = request.now - float(timestamp)
    except ValueError:
        raise Refused("bad timestamp") from None
    if not abs(age) <= max_age:
        raise Refused(f"stale signature ({age:.0f}s old)")


def dedupe_key(provider: str, event_id: str) -> str:
    """The content hash of an HTTP arrival: the same event posted twice has the same one."""
    return hashlib.sha256(f"{provider}\0{event_id}".encode()).hexdigest()


def load_json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not JSON: {exc}"[:200]) from None


def as_dict(value: object) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def dumps(value: object) -> bytes:
    return json.dumps(value, ensure_ascii=False, sort_keys=True).encode()


def event_id(value: dict[str, Any], *names: str) -> str:
    """The first of ``names`` the event has, else a hash of the event itself."""
    for name in names:
        if value.get(name):
            return str(value[name])
    return "sha256:" + hashlib.sha256(dumps(value)).hexdigest()


def with_token(token: object, headers: Mapping[str, str] | None = None) -> Message:
    """A synthetic original carrying our token (and other headers the provider kept)."""
    original = Message()
    for name, value in (headers or {}).items():
        original[name] = value
    if isinstance(token, str) and token.strip():
        original[tokens.TOKEN_HEADER] = token.strip()
    return original


def bounced(address: str, provider_hard: bool, status: object, diagnostic: object,
            hard_reason: str = "userunknown") -> Bounced:
    """One bounced recipient: our rules (``dsn.hardness``) over the status and the words the
    provider passed on; where they find nothing either way, the provider's own verdict,
    with ``hard_reason`` (in ``reasons``' words) when it says hard."""
    text = " ".join(str(diagnostic or "").split())[:500]
    code = status_of(str(status or "")) or status_of(text)
    if not provider_hard and code is None:
        code = "4.0.0"  # the provider says temporary and gives no code: believe it
    # A provider's hard bounce is the receiving server refusing the recipient (at RCPT):
    # "unknown user" there is the address, not a content filter after DATA.
    hard, reason = hardness(code, text, command="RCPT" if provider_hard else "")
    if not hard and provider_hard and reason in ("undefined", "onhold"):
        return Bounced(address, True, code, hard_reason, text)
    return Bounced(address, hard, code, reason, text)


def synthetic(raw: bytes) -> ParsedMessage:
    """The ``ParsedMessage`` handlers get for an HTTP arrival: no envelope, no headers."""
    return ParsedMessage(mail_from=None, rcpt_tos=(), headers={}, subject="",
                         from_address=None, message_id=None, in_reply_to=(), references=(),
                         message=Message(), raw=raw, memos={})
