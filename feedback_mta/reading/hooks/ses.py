"""Amazon SES notifications through Amazon SNS, ``POST /hooks/ses``.

Documents: "Verifying the signatures of Amazon SNS messages" (https://docs.aws.amazon.com/
sns/latest/dg/sns-verify-signature-of-message.html), "Amazon SNS message and JSON formats"
(https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html) and "Amazon
SES notification contents" (https://docs.aws.amazon.com/ses/latest/dg/notification-
contents.html).

The SNS message is signed with RSA: SHA1 for ``SignatureVersion`` 1, SHA256 for 2, over
``name\\nvalue\\n`` of its fields in a fixed order. The certificate is taken only from an
HTTPS ``SigningCertURL`` on a host matching ``[webhooks.ses] cert_host_pattern``; the edge
fetches and caches it. SNS signs the messages of every AWS account's topics, so
``[webhooks.ses] topic_arns`` names ours. A ``SubscriptionConfirmation`` is confirmed by the
edge (GET of the
``SubscribeURL``, same host rule); a ``Notification`` carries the SES notification in
``Message``, read by ``formats.ses`` as the mailed one is.
"""

from __future__ import annotations

import base64
import binascii
import fnmatch
from typing import Any
from urllib.parse import urlsplit

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from feedback_mta.config import SesHookConfig
from feedback_mta.reading.formats import ses as ses_format
from feedback_mta.reading.formats.report import Report
from feedback_mta.reading.hooks.base import (
    HookEvent,
    HookRequest,
    Malformed,
    Refused,
    as_dict,
    load_json,
)

NAME = "ses"

_SIGNED = {
    "Notification": ("Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"),
    "SubscriptionConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                 "TopicArn", "Type"),
    "UnsubscribeConfirmation": ("Message", "MessageId", "SubscribeURL", "Timestamp", "Token",
                                "TopicArn", "Type"),
}


def enabled(settings: SesHookConfig) -> bool:
    return True  # SNS signs with Amazon's certificates: nothing to configure


def trusted_url(url: object, settings: SesHookConfig) -> str:
    """``url`` if it is HTTPS on a host the config trusts; ``Refused`` otherwise."""
    parts = urlsplit(str(url or ""))
    if parts.scheme != "https" or not parts.hostname or not fnmatch.fnmatchcase(
            parts.hostname.lower(), settings.cert_host_pattern.lower()):
        raise Refused(f"untrusted URL host {parts.hostname!r}")
    return str(url)


def string_to_sign(message: dict[str, Any]) -> bytes:
    names = _SIGNED.get(str(message.get("Type")))
    if names is None:
        raise Refused(f"unknown SNS message type {message.get('Type')!r}")
    return "".join(f"{name}\n{message[name]}\n" for name in names
                   if message.get(name) is not None).encode()


def verify(request: HookRequest, settings: SesHookConfig) -> dict[str, Any]:
    """The verified SNS message."""
    try:
        message = as_dict(load_json(request.body))
    except Malformed:
        raise Refused("not an SNS message (not JSON)") from None
    version = str(message.get("SignatureVersion", ""))
    if version not in ("1", "2") or not message.get("Signature"):
        raise Refused("no signature")
    url = trusted_url(message.get("SigningCertURL"), settings)
    if not urlsplit(url).path.endswith(".pem"):
        raise Refused("the certificate URL is not a .pem")
    try:
        signature = base64.b64decode(str(message["Signature"]), validate=True)
        key = x509.load_pem_x509_certificate(request.certificate(url)).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused("the certificate's key is not RSA")
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(),
                   # SignatureVersion 1 is SHA1 by AWS's definition, not our choice.
                   hashes.SHA1() if version == "1" else hashes.SHA256())  # noqa: S303
    except (InvalidSignature, binascii.Error, ValueError):
        raise Refused("bad signature") from None
    # SNS signs every topic's messages: only ours are taken (and only ours confirmed).
    if settings.topic_arns and message.get("TopicArn") not in settings.topic_arns:
        raise Refused(f"topic {message.get('TopicArn')!r} is not in [webhooks.ses] topic_arns")
    return message


def split(body: bytes) -> list[HookEvent]:
    message = as_dict(load_json(body))
    if message.get("Type") != "Notification" or not message.get("MessageId"):
        raise Malformed("not an SNS notification")
    return [HookEvent(str(message["MessageId"]), body)]


def read(raw: bytes) -> Report | None:
    message = as_dict(load_json(raw))
    text = message.get("Message")
    try:
        notification = load_json(text.encode()) if isinstance(text, str) else text
    except Malformed:
        return None  # a message on the topic that is no SES notification
    if not isinstance(notification, dict):
        return None
    return ses_format.from_notification(notification)
