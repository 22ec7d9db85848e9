"""What the pages people open share: the unsubscribe page (``/u/``), the consent page
(``/c/``) and the review page (``/review/``). Server-rendered HTML (Jinja2, escaped), no
script, never cached, framed, indexed or told where it came from; a form read within a
bound; a browser shown its errors as a page while a program gets problem+json."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs

from fastapi import Request
from fastapi.responses import HTMLResponse, Response
from fastapi.routing import APIRoute
from jinja2 import Environment, PackageLoader, select_autoescape

from feedback_mta.http.problems import ProblemError

_ENV = Environment(loader=PackageLoader("feedback_mta.http", "templates"),
                   autoescape=select_autoescape(default=True))
HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "X-Robots-Tag": "noindex",
           "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                      "form-action 'self'; frame-ancestors 'none'"}
#: The titles of the error pages a browser sees, by status (else HTTP's own phrase).
_ERRORS = {400: "Not understood", 404: "Link not recognised", 409: "Not possible",
           413: "Too large", 415: "Not understood", 503: "Try again in a moment"}
#: The largest form any of the pages posts.
MAX_FORM = 1024


def render(template: str, status: int = 200, headers: dict[str, str] | None = None,
           **values: Any) -> HTMLResponse:
    """``templates/<template>`` rendered, with ``HEADERS``."""
    html = _ENV.get_template(template).render(**values)
    return HTMLResponse(html, status_code=status, headers={**HEADERS, **(headers or {})})


def _quality(range_: str) -> tuple[str, float]:
    media, *params = (part.strip() for part in range_.split(";"))
    q = 1.0
    for param in params:
        name, _, value = param.partition("=")
        if name.strip().lower() == "q":
            try:
                q = float(value)
            except ValueError:
                q = 0.0
    return media.lower(), q


def _accepts(ranges: list[tuple[str, float]], media: str) -> float:
    """The quality ``ranges`` give ``media``: that of the most specific range naming it."""
    kind = media.split("/")[0] + "/*"
    for candidate in (media, kind, "*/*"):
        found = [q for m, q in ranges if m == candidate]
        if found:
            return max(found)
    return 0.0


def prefers_html(accept: str) -> bool:
    """Does an ``Accept`` header prefer ``text/html`` to JSON (a browser's does; no header,
    ``*/*`` or ``application/json`` do not)?"""
    ranges = [_quality(r) for r in accept.split(",")[:50] if r.strip()]
    html = _accepts(ranges, "text/html")
    json = max(_accepts(ranges, "application/json"),
               _accepts(ranges, "application/problem+json"))
    return html > json


class PageRoute(APIRoute):
    """A route whose problems a browser sees as a page: ``ProblemError``s become the
    ``unsubscribe/error`` template, with their status and headers, when ``prefers_html``."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def answer(request: Request) -> Response:
            try:
                return await handler(request)
            except ProblemError as exc:
                if not prefers_html(request.headers.get("accept", "")):
                    raise
                return render("unsubscribe/error.html", exc.status, exc.headers,
                              title=_ERRORS.get(exc.status, HTTPStatus(exc.status).phrase),
                              detail=exc.detail[:1].upper() + exc.detail[1:] + ".")

        return answer


def fields(body: bytes) -> dict[str, str]:
    """A urlencoded form's fields, the first of each name; none past ten (no form of ours
    has more: then it is not one of ours, and nothing is read)."""
    try:
        parsed = parse_qs(body.decode("utf-8", errors="replace"), max_num_fields=10)
    except ValueError:
        return {}
    return {k: v[0] for k, v in parsed.items()}


async def read_form(request: Request, limit: int = MAX_FORM) -> dict[str, str]:
    """A page's form post: anything but a form (JSON, a bare body) is refused (415), a
    body past ``limit`` bytes too (413), read no further than that."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/x-www-form-urlencoded":
        raise ProblemError(415, "send the page's form (application/x-www-form-urlencoded)")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > limit:
            raise ProblemError(413, f"the form is larger than {limit} bytes")
    return fields(body)
