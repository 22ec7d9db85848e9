"""Amazon SES notifications through Amazon SNS, ``POST /hooks/ses``.

Documents: "Verifying the signatures of Amazon SNS messages" (https://docs.aws.amazon.com/
sns/latest/dg/sns-verify-signature-of-message.html), "Amazon SNS message and JSON formats"
(https://docs.aws.amazon.com/sns/latest/dg/sns-message-and-json-formats.html) and "Amazon
SES notification contents" (https://docs.aws.amazon.com/ses/latest/dg/notification-
contents.html).

The SNS message is signed with RSA: SHA1 for ``SignatureVersion`` 1, SHA256 for 2, over
``name\\nvalue\\n`` of its fields in a fixed order. SNS signs the messages of every AWS
account's topics alike, so ``[webhooks.ses] topic_arns`` names ours, and with none named
``/hooks/ses`` is off. Everything that costs nothing is checked before the one thing that
costs a fetch: the message's type and shape, its topic, its signature's form, and the
certificate URL, which must be HTTPS on AWS's own host for SNS (``sns.REGION.amazonaws.com``
or ``sns.REGION.amazonaws.com.cn``, the region one label; ``[webhooks.ses] cert_host`` names
a stand-in for tests). Only then does the edge fetch the certificate (rate-limited, cached).
A ``SubscriptionConfirmation`` is confirmed by the edge (GET of the ``SubscribeURL``, same
host rule); a ``Notification`` carries the SES notification in ``Message``, read by
``formats.ses`` as the mailed one is.
"""

from __future__ import annotations

import base64
import binascii
import re
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
    return bool(settings.topic_arns)  # no topic of ours named: nothing to take


#: AWS's SNS hosts: ``sns.<region>.amazonaws.com`` and, in China, ``...amazonaws.com.cn``,
#: the region one label of AWS's shape (``us-east-1``, ``us-gov-west-1``, ``cn-north-1``).
#: No pattern whose ``*`` crosses dots: ``sns.evil.example.amazonaws.com`` and the
#: S3-style ``sns.s3.amazonaws.com`` (a bucket named ``sns``) are not SNS.
AWS_HOST = re.compile(r"sns\.[a-z]{2}(?:-[a-z]+)+-[0-9]{1,2}\.amazonaws\.com(?:\.cn)?")
#: What an SNS URL may hold: printable ASCII, no spaces, no backslashes (which URL parsers
#: read differently), so the host checked here is the host fetched.
_URL = re.compile(r"https://[!-\[\]-~]+")


def trusted_url(url: object, settings: SesHookConfig) -> str:
    """``url`` if it is HTTPS on an SNS host (AWS's, or the configured stand-in) with no
    user, password or other port; ``Refused`` otherwise."""
    text = url if isinstance(url, str) else ""
    try:
        parts = urlsplit(text)
        host, port = parts.hostname or "", parts.port
    except ValueError:
        raise Refused("unreadable URL") from None
    if not _URL.fullmatch(text) or "@" in parts.netloc:
        raise Refused(f"untrusted URL {text[:100]!r}")
    if settings.cert_host:
        trusted = host == settings.cert_host.lower()
    else:
        trusted = parts.netloc.lower() == host and port is None and bool(
            AWS_HOST.fullmatch(host))
    if not trusted:
        raise Refused(f"untrusted URL host {host!r}")
    return text


def _checked(message: dict[str, Any], settings: SesHookConfig) -> tuple[str, bytes, str]:
    """(version, signature, certificate URL) of a message of our topic, of SNS's shape,
    whose URLs are SNS's: what is checked before anything is fetched."""
    kind = message.get("Type")
    names = _SIGNED.get(kind) if isinstance(kind, str) else None
    if names is None:
        raise Refused(f"unknown SNS message type {str(kind)[:40]!r}")
    topic = message.get("TopicArn")
    if not isinstance(topic, str) or topic not in settings.topic_arns:
        raise Refused(f"topic {str(topic)[:200]!r} is not in [webhooks.ses] topic_arns")
    for name in names:
        value = message.get(name)
        if (name != "Subject" and not value) or not isinstance(value, str | None):
            raise Refused(f"not an SNS {kind} (its {name})")
    version = message.get("SignatureVersion")
    if version not in ("1", "2") or not isinstance(message.get("Signature"), str):
        raise Refused("no signature")
    try:
        signature = base64.b64decode(message["Signature"], validate=True)
    except (binascii.Error, ValueError):
        raise Refused("bad signature") from None
    if len(signature) not in (128, 256, 384, 512):  # RSA 1024-4096
        raise Refused("bad signature")
    url = trusted_url(message.get("SigningCertURL"), settings)
    if not urlsplit(url).path.endswith(".pem") or urlsplit(url).query:
        raise Refused("the certificate URL is not a .pem")
    if kind != "Notification":
        trusted_url(message.get("SubscribeURL"), settings)
    return version, signature, url


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
    version, signature, url = _checked(message, settings)
    try:
        key = x509.load_pem_x509_certificate(request.certificate(url)).public_key()
        if not isinstance(key, rsa.RSAPublicKey):
            raise Refused("the certificate's key is not RSA")
        key.verify(signature, string_to_sign(message), padding.PKCS1v15(),
                   # SignatureVersion 1 is SHA1 by AWS's definition, not our choice.
                   hashes.SHA1() if version == "1" else hashes.SHA256())  # noqa: S303
    except (InvalidSignature, ValueError):
        raise Refused("bad signature") from None
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
