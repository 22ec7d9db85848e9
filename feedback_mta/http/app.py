"""The FastAPI application: routes, problem details, the request log line (``canonical``),
body limits, the ESP webhooks' fast path (``hooks.Fast``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi.responses import JSONResponse
from sqlalchemy.engine import Engine

from feedback_mta import logs
from feedback_mta.config import Config
from feedback_mta.edge.intake import Intake
from feedback_mta.http import (
    canonical,
    consent,
    docs,
    hooks,
    lists,
    platform,
    problems,
    reports,
    review,
    suppressions,
    unsubscribe,
    v1,
)
from feedback_mta.http.services import App, HttpServices
from feedback_mta.queries.health import health

log = logs.get(__name__)

DESCRIPTION = """The sending platform's side of feedback-mta: register leads and contacts,
flag and restore leads, read the suppression list and the event feed. Every request needs
an API key (`feedback-mta key add`) as `Authorization: Bearer KEY`; a key of one account
sees that account only. Errors are RFC 9457 problem details. Decisions also go out as
signed webhooks (`feedback-mta webhook add`)."""


def _version() -> str:
    from importlib import metadata

    try:
        return metadata.version("feedback-mta")
    except metadata.PackageNotFoundError:
        return "0"


def create_app(config: Config, engine: Engine, intake: Intake | None = None,
               on_mail: Callable[[list[int]], None] = lambda ids: None) -> App:
    """The app; ``intake`` stores what ``/u/TOKEN`` and ``/hooks/...`` accept (without
    it they answer 503); ``on_mail`` is handed the mail the review page queued (the
    outbox sends it at once). The endpoints are given these (``services``), typed."""
    app = App(HttpServices.build(config, engine, intake, on_mail),
              title="feedback-mta", version=_version(), description=DESCRIPTION,
              docs_url=None, redoc_url=None,
              # Operation ids are the endpoint functions' names (show_lead, ...).
              generate_unique_id_function=lambda route: route.name)
    problems.install(app)
    # The ESPs' webhooks and one-click posts first: a request is matched against the
    # routes in order, and a bounce storm should not try the API's routes each time.
    # (Neither is in the OpenAPI document, whose order stays the API's.)
    app.include_router(hooks.router)
    app.include_router(unsubscribe.router)
    app.include_router(v1.router)
    for router in (consent.api, lists.router, suppressions.router, platform.router,
                   reports.router, docs.router):
        app.include_router(router)
    app.include_router(consent.pages)
    app.include_router(review.router)

    @app.get("/healthz", summary="Does the database answer?", tags=["health"])
    def healthz() -> Any:
        ok, details = health(engine)
        if not ok:
            log.warning("health.failed", database=details["database"])
        return JSONResponse(details, status_code=200 if ok else 503)

    app.add_middleware(canonical.Canonical)
    app.add_middleware(BodyLimit, limit=config.smtp.max_message_size)
    # In front of it all, FastAPI's own middleware too: a signed webhook is answered before
    # any of the above (hooks.Fast says how it keeps their behaviour); the rest goes on.
    limit = config.smtp.max_message_size
    app.direct = app.front(lambda inner: hooks.Fast(inner, app.services, limit))
    return app


class BodyLimit:
    """Bodies larger than ``[smtp] max_message_size`` are refused with 413 before they are
    read whole: by their Content-Length, or, for a chunked body, once it has streamed past
    the limit (it is held until then, and handed on as it came)."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if declared.isdigit() and int(declared) > self.limit:
                await self._refuse(scope, receive, send)
                return
            await self.app(scope, receive, send)  # the server holds it to its length
            return
        held: list[dict[str, Any]] = []
        size = 0
        while True:
            message: dict[str, Any] = await receive()
            held.append(message)
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.limit:
                await self._refuse(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> dict[str, Any]:
            return held.pop(0) if held else await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        response = problems.problem(413, f"the body is larger than {self.limit} bytes "
                                         "([smtp] max_message_size)")
        await response(scope, receive, send)
