"""Feedback over HTTPS: the ESPs' webhooks (``/hooks/<provider>``), and what RFC 8058
one-click unsubscribes (``/u/TOKEN``, in ``unsubscribe``) share with them: the same
durable path as mail (``store_events``) and the same refusals (``refuse``).

The order is the SMTP server's: check first (the token, the provider's signature; 404 or
401 and nothing stored), then commit the raw body through the intake's group commit, with
whatever else arrived meanwhile (mail too), then answer 2xx; nothing else runs before the
answer.
Processing reads it with its ``reading.hooks`` module and hands it to the same handlers as
mail; a request seen twice (a provider's retry, a second click) is deduplicated there by
the provider's event id. Everything provider-specific lives in ``reading.hooks``; here are
only the I/O it needs: the request, SNS certificates, the intake.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from feedback_mta import counters, logs
from feedback_mta.config import SesHookConfig
from feedback_mta.edge.intake import Arrival, Intake, Replayed, StoreError
from feedback_mta.http.certificates import (
    Certificates,
    CertificatesBusy,
    CertificateUnavailable,
)
from feedback_mta.http.problems import ProblemError
from feedback_mta.http.services import Services
from feedback_mta.reading.hooks import PROVIDERS, ses
from feedback_mta.reading.hooks.base import HookEvent, HookRequest, Malformed, Refused, dedupe_key

log = logs.get(__name__)

router = APIRouter(include_in_schema=False)

#: How long a request waits for its events to be committed before it is answered 503.
STORE_TIMEOUT = 30.0
#: Bodies up to this size are verified on the event loop (``_inline``).
INLINE_VERIFY = 64 * 1024


def _inline(provider: str, body: bytes) -> bool:
    """Verify on the event loop: a small body's check (an HMAC, a JSON parse of a few
    kilobytes, a password) costs less than the hop to a thread. SNS's may fetch a
    certificate, and a large body's parse would hold the loop (the SMTP sessions' too):
    those go to a thread."""
    return provider != ses.NAME and len(body) <= INLINE_VERIFY


def _alive(intake: Intake | None) -> Intake:
    if intake is None or not intake.alive:
        raise ProblemError(503, "not accepting feedback now", headers={"Retry-After": "30"})
    return intake


async def store_events(request: Request, intake: Intake | None, provider: str,
                       events: list[HookEvent], rcpt_tos: tuple[str, ...] = (),
                       nonce: str | None = None) -> list[int]:
    """Commit every event (one inbound message each) before the answer; 503 otherwise (no
    intake, or one stopping), and the provider retries (what was committed meanwhile is
    deduplicated). A ``nonce`` is recorded in the same commit: seen before with another
    event, it is a replay (401)."""
    intake = _alive(intake)
    client = request.client.host if request.client else None
    arrivals = [Arrival(event.raw, "", rcpt_tos, protocol="http", peer=client, helo=None,
                        provider=provider, key=dedupe_key(provider, event.id), nonce=nonce)
                for event in events]
    try:
        # One event (the usual request) is awaited as an SMTP session awaits its commit.
        ids = ([await intake.store(arrivals[0], STORE_TIMEOUT)] if len(arrivals) == 1 else
               await asyncio.gather(*(intake.store(a, STORE_TIMEOUT) for a in arrivals)))
    except Replayed:
        raise refuse(provider, request, "replayed token") from None
    except (StoreError, TimeoutError) as exc:
        counters.STORE_FAILED.inc()
        log.error("hook.store_failed", provider=provider, events=len(events),
                  error=logs.error_line(exc))
        raise ProblemError(503, "not stored; try again", headers={"Retry-After": "30"}) from None
    counters.ACCEPTED.labels("http").inc(len(ids))
    counters.HOOKS.labels(provider, "stored").inc()
    log.info("hook.stored", provider=provider, events=len(ids), ids=list(ids))
    return list(ids)


def refuse(provider: str, request: Request, reason: str, status: int = 401,
           headers: dict[str, str] | None = None) -> ProblemError:
    counters.HOOKS.labels(provider, "refused").inc()
    log.warning("hook.refused", provider=provider, reason=reason,
                client=request.client.host if request.client else None)
    return ProblemError(status, reason, headers=headers)


# --- ESP webhooks ----------------------------------------------------------------------------


@router.post("/hooks/{provider}")
async def provider_hook(request: Request, services: Services, provider: str) -> JSONResponse:
    module = PROVIDERS.get(provider)
    if module is None:
        raise ProblemError(404, f"no provider {provider!r} (known: {', '.join(PROVIDERS)})")
    settings = getattr(services.config.webhooks, provider)
    if not module.enabled(settings):
        counters.HOOKS.labels(provider, "off").inc()
        raise ProblemError(404, f"[webhooks.{provider}] is not set up")
    body = await request.body()
    certificates = services.certificates
    hook = HookRequest({k.lower(): v for k, v in request.headers.items()}, body, time.time(),
                       certificates.get)
    try:
        verified = (module.verify(hook, settings) if _inline(provider, body)
                    else await run_in_threadpool(module.verify, hook, settings))
    except Refused as exc:
        headers = ({"WWW-Authenticate": 'Basic realm="feedback-mta"'}
                   if provider == "postmark" else None)
        raise refuse(provider, request, str(exc), headers=headers) from None
    except CertificatesBusy as exc:  # checked, not yet verified: nothing fetched, try later
        raise refuse(provider, request, str(exc), status=503,
                      headers={"Retry-After": str(exc.retry_after)}) from None
    except CertificateUnavailable as exc:
        log.error("hook.certificate_unavailable", provider=provider, error=str(exc))
        raise ProblemError(503, "cannot fetch the signing certificate now",
                           headers={"Retry-After": "60"}) from None
    if provider == ses.NAME and isinstance(verified, dict) \
            and verified.get("Type") != "Notification":
        return await _subscription(request, verified, settings, certificates)
    try:
        events = module.split(body)
    except Malformed as exc:
        counters.HOOKS.labels(provider, "malformed").inc()
        raise ProblemError(400, str(exc)) from None
    # A nonce (Mailgun's token) is refused when it signed another event before.
    ids = await store_events(request, services.intake, provider, events,
                       nonce=verified if isinstance(verified, str) else None)
    return JSONResponse({"stored": len(ids)})


async def _subscription(request: Request, message: dict[str, Any], settings: SesHookConfig,
                        certificates: Certificates) -> JSONResponse:
    """SNS asks us to confirm a subscription (or says one ended): GET its SubscribeURL."""
    if message.get("Type") != "SubscriptionConfirmation":
        log.info("hook.unsubscribed", provider=ses.NAME, topic=message.get("TopicArn"))
        return JSONResponse({"stored": 0})
    try:
        url = ses.trusted_url(message.get("SubscribeURL"), settings)
    except Refused as exc:
        raise refuse(ses.NAME, request, str(exc)) from None
    try:
        status = await run_in_threadpool(certificates.confirm, url)
    except CertificateUnavailable as exc:
        status = 0
        log.error("hook.subscription_failed", provider=ses.NAME, error=str(exc))
    if not 200 <= status < 300:
        raise ProblemError(503, "the subscription could not be confirmed now",
                           headers={"Retry-After": "60"})
    log.info("hook.subscribed", provider=ses.NAME, topic=message.get("TopicArn"))
    return JSONResponse({"stored": 0, "subscribed": True})
