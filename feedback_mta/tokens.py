"""Signed tokens that name one lead or contact for one purpose.

A token is ``<id>-<mac>``: the decimal id and the first 16 characters (80 bits) of the
base32 HMAC-SHA256 of ``<purpose>:<id>`` under ``[security] secret_key``, all lower-case,
because mail systems change the case of local parts. The purpose is part of what is
signed, so a ``reply`` token (a lead) cannot be moved to ``bounce+`` (a contact) or to
another id. Old secrets in ``previous_secret_keys`` still verify, so rotating the secret
does not break replies to notifications already sent.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Sequence
from enum import StrEnum

MAC_LENGTH = 16
_TOKEN = re.compile(rf"^([1-9][0-9]{{0,17}})-([a-z2-7]{{{MAC_LENGTH}}})$")


class Purpose(StrEnum):
    #: ``reply+TOKEN``: names a lead (Reply-To of a lead notification).
    REPLY = "reply"
    #: ``bounce+TOKEN``: names a contact (VERP Return-Path).
    BOUNCE = "bounce"
    #: ``unsubscribe+TOKEN``: names a contact (List-Unsubscribe mailto).
    UNSUBSCRIBE = "unsubscribe"
    #: The token header on outbound mail: names a contact, for feedback loops that
    #: redact the recipient address.
    FEEDBACK = "feedback"
    #: The account header on outbound mail: names the sending account, so a trusted
    #: feedback loop's report can be matched by recipient address within that account.
    ACCOUNT = "account"
    #: ``review+TOKEN``: names an account (Reply-To of its review digest).
    REVIEW = "review"
    #: ``confirm+TOKEN`` and ``/c/TOKEN``: names a contact awaiting its confirmation.
    CONFIRM = "confirm"


#: Header that carries the FEEDBACK token on mail sent to a contact.
TOKEN_HEADER = "X-Feedback-Token"
#: Header that carries the ACCOUNT token on mail an account sends.
ACCOUNT_HEADER = "X-Feedback-Account"


#: The digest's bytes the first ``MAC_LENGTH`` base32 characters (5 bits each) come from.
_MAC_BYTES = (MAC_LENGTH * 5 + 7) // 8


def _mac(secret: str, purpose: Purpose, object_id: int) -> str:
    import hmac  # here: reading reports (bulk parse) never makes a MAC, nor loads OpenSSL

    # One call into OpenSSL; base32 (pure Python) of the bytes the MAC keeps only.
    digest = hmac.digest(secret.encode(), f"{purpose.value}:{object_id}".encode(), "sha256")
    return base64.b32encode(digest[:_MAC_BYTES]).decode("ascii")[:MAC_LENGTH].lower()


def _same(ours: str, theirs: str) -> bool:
    import hmac

    return hmac.compare_digest(ours, theirs)  # in constant time


def make(secret: str, purpose: Purpose, object_id: int) -> str:
    if object_id <= 0:
        raise ValueError("token ids are positive")
    return f"{object_id}-{_mac(secret, purpose, object_id)}"


def verify(secrets: Sequence[str], purpose: Purpose, token: str) -> int | None:
    """The id the token names, or None when it is malformed or not signed by any secret."""
    match = _TOKEN.match(token.strip().lower())
    if not match:
        return None
    object_id = int(match.group(1))
    for secret in secrets:
        if _same(_mac(secret, purpose, object_id), match.group(2)):
            return object_id
    return None
