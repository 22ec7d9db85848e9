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
import json
import time
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback_mta import counters, logs
from feedback_mta.config import Config, SesHookConfig
from feedback_mta.edge.intake import Arrival, Intake, Replayed, StoreError
from feedback_mta.http import canonical, problems
from feedback_mta.http.certificates import (
    Certificates,
    CertificatesBusy,
    CertificateUnavailable,
)
from feedback_mta.http.problems import ProblemError
from feedback_mta.http.services import HttpServices, Services
from feedback_mta.reading.hooks import PROVIDERS, ses
from feedback_mta.reading.hooks.base import (
    HookEvent,
    HookRequest,
    Malformed,
    Provider,
    Refused,
    Verified,
    dedupe_key,
)

log = logs.get(__name__)

router = APIRouter(include_in_schema=False)

#: How long a request waits for its events to be committed before it is answered 503.
STORE_TIMEOUT = 30.0
#: The hooks' route (its requests' ``route`` in their line and counter).
ROUTE = "/hooks/{provider}"
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


def _client(scope: Scope) -> str | None:
    client = scope.get("client")
    return client[0] if client else None


async def store_events(scope: Scope, intake: Intake | None, provider: str,
                       events: list[HookEvent], rcpt_tos: tuple[str, ...] = (),
                       nonce: str | None = None) -> list[int]:
    """Commit every event (one inbound message each) before the answer; 503 otherwise (no
    intake, or one stopping), and the provider retries (what was committed meanwhile is
    deduplicated). A ``nonce`` is recorded in the same commit: seen before with another
    event, it is a replay (401). What was stored goes in the request's ``scope``: its one
    line is ``hook.stored`` (``canonical``)."""
    intake = _alive(intake)
    client = _client(scope)
    arrivals = [Arrival(event.raw, "", rcpt_tos, protocol="http", peer=client, helo=None,
                        provider=provider, key=dedupe_key(provider, event.id), nonce=nonce)
                for event in events]
    try:
        # One event (the usual request) is awaited as an SMTP session awaits its commit.
        ids = ([await intake.store(arrivals[0], STORE_TIMEOUT)] if len(arrivals) == 1 else
               await asyncio.gather(*(intake.store(a, STORE_TIMEOUT) for a in arrivals)))
    except Replayed:
        raise refuse(provider, scope, "replayed token") from None
    except (StoreError, TimeoutError) as exc:
        counters.STORE_FAILED.inc()
        log.error("hook.store_failed", provider=provider, events=len(events),
                  error=logs.error_line(exc))
        raise ProblemError(503, "not stored; try again", headers={"Retry-After": "30"}) from None
    counters.ACCEPTED.labels("http").inc(len(ids))
    counters.HOOKS.labels(provider, "stored").inc()
    scope[canonical.STORED] = {"provider": provider, "events": len(ids), "ids": list(ids)}
    return list(ids)


def refuse(provider: str, scope: Scope, reason: str, status: int = 401,
           headers: dict[str, str] | None = None) -> ProblemError:
    counters.HOOKS.labels(provider, "refused").inc()
    log.warning("hook.refused", provider=provider, reason=reason, client=_client(scope))
    return ProblemError(status, reason, headers=headers)


# --- ESP webhooks ----------------------------------------------------------------------------


def _provider(config: Config, provider: str) -> tuple[Provider[Any], Any]:
    """The provider's module and its ``[webhooks.<provider>]``; 404 unless it is set up."""
    module = PROVIDERS.get(provider)
    if module is None:
        raise ProblemError(404, f"no provider {provider!r} (known: {', '.join(PROVIDERS)})")
    settings = getattr(config.webhooks, provider)
    if not module.enabled(settings):
        counters.HOOKS.labels(provider, "off").inc()
        raise ProblemError(404, f"[webhooks.{provider}] is not set up")
    return module, settings


async def _verify(scope: Scope, provider: str, module: Provider[Any], settings: Any,
                  hook: HookRequest) -> Verified:
    """The provider's ``verify``, on the loop or in a thread (``_inline``); its refusals
    as problems (401, or 503 for what SNS's certificates cannot tell yet)."""
    try:
        return (module.verify(hook, settings) if _inline(provider, hook.body)
                else await run_in_threadpool(module.verify, hook, settings))
    except Refused as exc:
        headers = ({"WWW-Authenticate": 'Basic realm="feedback-mta"'}
                   if provider == "postmark" else None)
        raise refuse(provider, scope, str(exc), headers=headers) from None
    except CertificatesBusy as exc:  # checked, not yet verified: nothing fetched, try later
        raise refuse(provider, scope, str(exc), status=503,
                     headers={"Retry-After": str(exc.retry_after)}) from None
    except CertificateUnavailable as exc:
        log.error("hook.certificate_unavailable", provider=provider, error=str(exc))
        raise ProblemError(503, "cannot fetch the signing certificate now",
                           headers={"Retry-After": "60"}) from None


async def _store(scope: Scope, intake: Intake | None, provider: str,
                 module: Provider[Any], body: bytes, verified: Verified) -> int:
    """Split a verified request into its events and commit them: how many (400 if the
    body is not the provider's)."""
    try:
        events = module.split(body)
    except Malformed as exc:
        counters.HOOKS.labels(provider, "malformed").inc()
        raise ProblemError(400, str(exc)) from None
    # A nonce (Mailgun's token) is refused when it signed another event before.
    ids = await store_events(scope, intake, provider, events,
                             nonce=verified if isinstance(verified, str) else None)
    return len(ids)


def _headers(scope: Scope) -> dict[str, str]:
    """The request's header fields by lower-case name (the last of a repeated one), as
    Starlette's ``Headers`` decodes them."""
    return {name.decode("latin-1"): value.decode("latin-1")
            for name, value in scope["headers"]}


@router.post(ROUTE)
async def provider_hook(request: Request, services: Services, provider: str) -> JSONResponse:
    """What ``Fast`` does not take: SES (SNS), a provider not set up or unknown, a chunked
    body."""
    module, settings = _provider(services.config, provider)
    body = await request.body()
    certificates = services.certificates
    scope = request.scope
    verified = await _verify(scope, provider, module, settings,
                             HookRequest(_headers(scope), body, time.time(), certificates.get))
    if provider == ses.NAME and isinstance(verified, dict) \
            and verified.get("Type") != "Notification":
        return await _subscription(scope, verified, settings, certificates)
    stored = await _store(scope, services.intake, provider, module, body, verified)
    return JSONResponse({"stored": stored})


class Fast:
    """Signed webhooks answered before FastAPI: ``POST /hooks/<provider>`` of a provider set
    up and verified on the loop (all but SES), with a Content-Length within ``limit``.
    What FastAPI would do, without its routing, dependencies and response objects: read
    the body, ``_verify``, ``_store``, answer ``{"stored": N}`` (or the same problem+json),
    and its one line (``canonical.line``, as ``Canonical`` writes it). Anything else
    (another path or method, SES, a provider not set up, a chunked body or one over the
    limit) goes on to the app, ``BodyLimit`` and FastAPI as before. A request that came
    whole in one read (the usual webhook) reaches ``direct`` from the connection itself,
    before h11 and uvicorn (``connections.Guarded``)."""

    def __init__(self, app: ASGIApp, services: HttpServices, limit: int) -> None:
        self.app, self.services, self.limit = app, services, limit
        webhooks = services.config.webhooks
        self.providers: dict[str, tuple[str, Provider[Any], Any]] = {
            f"/hooks/{name}": (name, module, getattr(webhooks, name))
            for name, module in PROVIDERS.items()
            if name != ses.NAME and module.enabled(getattr(webhooks, name))}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        found = (self.providers.get(scope["path"])
                 if scope["type"] == "http" and scope["method"] == "POST" else None)
        if found is None:
            await self.app(scope, receive, send)
            return
        headers = _headers(scope)
        declared = headers.get("content-length", "")
        if not (declared.isascii() and declared.isdigit()) or int(declared) > self.limit:
            await self.app(scope, receive, send)  # chunked, or BodyLimit's 413
            return
        started = time.perf_counter()
        status = 500
        try:
            body = await _body(receive)
            if body is None:
                status = canonical.CLIENT_CLOSED
                return
            status = await self._answer(scope, receive, send, found, headers, body)
        finally:
            canonical.line(scope, ROUTE, status, started)

    @property
    def paths(self) -> frozenset[str]:
        """The paths it answers (``POST`` only)."""
        return frozenset(self.providers)

    async def direct(self, scope: Scope, body: bytes, send: Send) -> None:
        """The same answer to a request the connection read whole itself
        (``connections.Guarded``): ``scope`` of one of ``paths``, the body as declared,
        within ``limit``."""
        started = time.perf_counter()
        status = 500
        try:
            status = await self._answer(scope, _nothing_more, send,
                                        self.providers[scope["path"]], _headers(scope), body)
        finally:
            canonical.line(scope, ROUTE, status, started)

    async def _answer(self, scope: Scope, receive: Receive, send: Send,
                      found: tuple[str, Provider[Any], Any], headers: dict[str, str],
                      body: bytes) -> int:
        provider, module, settings = found
        services = self.services
        try:
            verified = await _verify(scope, provider, module, settings,
                                     HookRequest(headers, body, time.time(),
                                                 services.certificates.get))
            stored = await _store(scope, services.intake, provider, module, body, verified)
        except ProblemError as exc:
            response = problems.problem(exc.status, exc.detail, type=exc.type,
                                        headers=exc.headers, **exc.extra)
        except Exception:
            log.exception("http.error", path=scope["path"], method=scope["method"])
            response = problems.problem(500, "an unexpected error; it is logged (http.error)")
        else:
            answer = _STORED.get(stored) or json.dumps({"stored": stored}).encode()
            await send({"type": "http.response.start", "status": 200,
                        "headers": [(b"content-length", str(len(answer)).encode()),
                                    (b"content-type", b"application/json")]})
            await send({"type": "http.response.body", "body": answer})
            return 200
        await response(scope, receive, send)
        return response.status_code


#: The answer to the usual request, made once.
_STORED = {1: b'{"stored":1}'}


async def _nothing_more() -> Message:
    """What a request read whole has left to receive (a response never asks)."""
    return {"type": "http.disconnect"}


async def _body(receive: Receive) -> bytes | None:
    """The request's body (the server holds it to its Content-Length); None if the client
    went away first."""
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return None
        chunk: bytes = message.get("body", b"")
        if not message.get("more_body", False):
            if not chunks:
                return chunk
            chunks.append(chunk)
            return b"".join(chunks)
        chunks.append(chunk)


async def _subscription(scope: Scope, message: dict[str, Any],
                        settings: SesHookConfig, certificates: Certificates) -> JSONResponse:
    """SNS asks us to confirm a subscription (or says one ended): GET its SubscribeURL."""
    if message.get("Type") != "SubscriptionConfirmation":
        log.info("hook.unsubscribed", provider=ses.NAME, topic=message.get("TopicArn"))
        return JSONResponse({"stored": 0})
    try:
        url = ses.trusted_url(message.get("SubscribeURL"), settings)
    except Refused as exc:
        raise refuse(ses.NAME, scope, str(exc)) from None
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
