"""One line per HTTP request (method, route, status, time; never a body or a key) and the
request counter by route and status: ``Canonical`` around the app, ``line`` for what
answers before it (the ESP webhooks' fast path, ``hooks.Fast``).

A request whose client went away before it was answered (mid-body, say) is counted and
logged with status 499, nginx's "client closed request": nobody was answered, and a gone
client is no server error (it sets off no 5xx alert) nor the client's bad request.

A request that stored feedback (an ESP webhook, a one-click unsubscribe) is one line too:
``hook.stored``, with what was stored (provider, events, ids, put in the scope by
``hooks.store_events``) and the request's fields, in place of ``http.request``, as a
stored mail is one ``message.accepted``.
"""

from __future__ import annotations

import time

from prometheus_client import Counter
from starlette.requests import ClientDisconnect
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from feedback_mta import counters, logs

log = logs.get(__name__)

#: The scope's key for what a request stored: ``{"provider", "events", "ids"}``.
STORED = "feedback_mta.stored"

#: The status of a request whose client went away before its answer began.
CLIENT_CLOSED = 499

_COUNTED: dict[tuple[str, int], Counter] = {}


def _counter(route: str, status: int) -> Counter:
    """The request counter's child for a route and status (``labels`` takes a lock and
    checks its labels each time; the routes and statuses are few)."""
    child = _COUNTED.get((route, status))
    if child is None:
        child = _COUNTED[route, status] = counters.HTTP_REQUESTS.labels(route, str(status))
    return child


def line(scope: Scope, route: str, status: int, started: float) -> None:
    """Count the request and write its one line (``started``: its ``perf_counter``)."""
    _counter(route, status).inc()
    client = scope.get("client")
    fields = {"method": scope["method"], "route": route, "path": scope["path"],
              "status": status, "client": client[0] if client else None,
              "duration_ms": round((time.perf_counter() - started) * 1000, 2)}
    stored = scope.get(STORED)
    if stored is None:
        log.info("http.request", **fields)
    else:
        log.info("hook.stored", **stored, **fields)


class Canonical:
    """``line`` for every request the app answers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500
        answering = gone = False

        async def heard() -> Message:
            nonlocal gone
            message = await receive()
            if message["type"] == "http.disconnect" and not answering:
                gone = True
            return message

        async def watched(message: Message) -> None:
            nonlocal status, answering
            if message["type"] == "http.response.start":
                status, answering = message["status"], True
            await send(message)

        try:
            await self.app(scope, heard, watched)
        except ClientDisconnect:
            if not gone:
                raise
        finally:
            if gone:
                status = CLIENT_CLOSED
            line(scope, getattr(scope.get("route"), "path", None) or "unmatched", status,
                 started)
