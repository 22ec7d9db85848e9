"""Errors as RFC 9457 problem details (``application/problem+json``).

Every error the API gives has ``type``, ``title``, ``status`` and ``detail``; validation
errors add ``errors`` (where and what). ``type`` is ``about:blank`` with the status code's
own title, except where a client may want to tell one cause from another.
"""

from __future__ import annotations

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.exc import IntegrityError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from feedback_mta import logs, queries
from feedback_mta.actions import ActionError, Conflict, Invalid, NotFound
from feedback_mta.logs import error_line
from feedback_mta.queries.cursors import BadCursor

log = logs.get(__name__)

MEDIA_TYPE = "application/problem+json"


class ErrorItem(BaseModel):
    loc: list[str | int] = Field(description="Where: body, query, path or header, then the "
                                             "field")
    msg: str


class Problem(BaseModel):
    """RFC 9457 problem details."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[ErrorItem] | None = Field(None, description="On a 422: where and what")


class ProblemError(Exception):
    """Raise to answer with a problem: ``ProblemError(404, "no lead 7")``."""

    def __init__(self, status: int, detail: str, *, type: str = "about:blank",
                 headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(detail)
        self.status, self.detail, self.type = status, detail, type
        self.headers, self.extra = headers, extra


def body(status: int, detail: str | None, *, type: str = "about:blank",
         **extra: Any) -> dict[str, Any]:
    """The problem document: what ``problem`` answers, and the connection layer writes."""
    return {"type": type, "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail, **extra}


def problem(status: int, detail: str | None, *, type: str = "about:blank",
            headers: Mapping[str, str] | None = None, **extra: Any) -> JSONResponse:
    """The problem as an answer. A 422 always carries ``errors`` (where and what): one
    naming no field when the caller gave none."""
    if status == 422 and "errors" not in extra:
        extra["errors"] = [{"loc": [], "msg": detail or "the request is not valid"}]
    return JSONResponse(body(status, detail, type=type, **extra), status_code=status,
                        media_type=MEDIA_TYPE, headers=headers)


#: What every endpoint may answer besides its success, for the OpenAPI document.
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "content": {MEDIA_TYPE: {}},
             "description": HTTPStatus(status).phrase}
    for status in (400, 401, 404, 413, 422, 503)}


def install(app: FastAPI) -> None:
    @app.exception_handler(ProblemError)
    async def _problem(request: Request, exc: ProblemError) -> JSONResponse:
        return problem(exc.status, exc.detail, type=exc.type, headers=exc.headers, **exc.extra)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": [str(p) for p in e.get("loc", ())], "msg": e.get("msg", "")}
                  for e in exc.errors()]
        detail = "; ".join(f"{'.'.join(e['loc'])}: {e['msg']}" for e in errors)
        return problem(422, detail or "the request is not valid", errors=errors)

    @app.exception_handler(ActionError)
    async def _refused(request: Request, exc: ActionError) -> JSONResponse:
        if isinstance(exc, Invalid) and exc.field:
            return problem(422, str(exc), errors=[{"loc": ["body", exc.field],
                                                    "msg": str(exc)}])
        if isinstance(exc, Conflict):
            return problem(409, str(exc), type="/problems/conflict")
        return problem(404 if isinstance(exc, NotFound) else 422, str(exc))

    @app.exception_handler(queries.NotFound)
    async def _missing(request: Request, exc: queries.NotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(BadCursor)
    async def _bad_cursor(request: Request, exc: BadCursor) -> JSONResponse:
        # Every list takes its cursor as ``after``: one it did not hand out is the caller's.
        return problem(422, str(exc), errors=[{"loc": ["query", "after"], "msg": str(exc)}])

    @app.exception_handler(IntegrityError)
    async def _raced(request: Request, exc: IntegrityError) -> JSONResponse:
        # Two requests made the same row at once (one address registered twice on
        # PostgreSQL, where writers do not queue): the other one's is there now, and the
        # same request again finds it.
        log.info("http.conflict", path=request.url.path, error=error_line(exc))
        return problem(409, "a request made at the same moment changed the same record; "
                       "send this one again", type="/problems/conflict",
                       headers={"Retry-After": "0"})

    @app.exception_handler(OperationalError)
    async def _database(request: Request, exc: OperationalError) -> JSONResponse:
        log.error("http.database_error", path=request.url.path, error=error_line(exc))
        return problem(503, "the database is not answering; try again shortly",
                       headers={"Retry-After": "5"})

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        log.exception("http.error", path=request.url.path, method=request.method)
        return problem(500, "an unexpected error; it is logged (http.error)")
