"""What the HTTP endpoints work with, typed, and handed to them by FastAPI's ``Depends``.

``create_app`` builds one :class:`HttpServices` (config, engine, reader, address book,
intake, on_mail, SNS certificates, the registrations' writer) and gives it to the
:class:`App` it makes. An endpoint names what it uses by an ``Annotated`` alias
(``Config_``, ``Engine_``, ``Reader``, ``Book``) or, when it uses several, the whole
object (``Services``)::

    def show_lead(who: Who, reader: Reader, book: Book, lead_id: LeadId) -> Any: ...

None of them is a query, header or body parameter: the OpenAPI document does not see them.

How one app's object reaches the providers: the app carries it as a typed attribute
(``App.services``) and each provider reads it from the request's app. The two usual ways
cost more here:

- ``app.dependency_overrides[services] = ...``: while that mapping is not empty, FastAPI
  (0.165) analyses every dependency of every request again (``get_dependant`` per
  sub-dependency, per request); measured in process, ``GET /v1/leads/{id}`` took about 20%
  longer and ``POST /v1/leads`` about 4%.
- routers built in a closure over the services: FastAPI resolves the string annotations
  (``from __future__ import annotations``) in the module's globals, so dependencies made
  inside the closure cannot be named in an annotation; every endpoint would move into one
  function per module.

Each provider is an ``async`` function returning one field (FastAPI runs a plain ``def``
dependency in the thread pool: a hop per dependency and request, about 80 us here, for an
attribute read), and reads it from the app itself rather than through ``services`` (each
dependency in a chain is solved again per request, about 10 us each). A test can still
replace any one of them with ``app.dependency_overrides`` (each on its own: overriding
``services`` leaves ``config`` and the others as they were).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

from fastapi import Depends, FastAPI, Request
from sqlalchemy.engine import Engine
from starlette.types import ASGIApp, Receive, Scope, Send

from feedback_mta.actions.together import Together
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.edge.intake import Intake
from feedback_mta.http.certificates import Certificates
from feedback_mta.http.sign_ins import SignIns
from feedback_mta.store import db

if TYPE_CHECKING:
    from feedback_mta.http.connections import Direct


@dataclass(frozen=True, slots=True)
class HttpServices:
    config: Config
    #: Writes: actions' units of work.
    engine: Engine
    #: Reads: queries and API keys (``db.reader`` of ``engine``).
    reader: Engine
    book: AddressBook
    #: Stores what ``/u/TOKEN`` and ``/hooks/...`` accept; None: they answer 503.
    intake: Intake | None
    #: Handed the ids of the mail the review page queued (the outbox sends it at once).
    on_mail: Callable[[list[int]], None]
    certificates: Certificates
    #: The review page's sign-in requests, worked out after their answer.
    sign_ins: SignIns
    #: The registrations' units of work, committed together (started with the server).
    together: Together

    @classmethod
    def build(cls, config: Config, engine: Engine, intake: Intake | None,
              on_mail: Callable[[list[int]], None]) -> HttpServices:
        book = AddressBook.from_config(config)
        return cls(config=config, engine=engine, reader=db.reader(engine), book=book,
                   intake=intake, on_mail=on_mail,
                   certificates=Certificates(config.webhooks.ses),
                   sign_ins=SignIns(config, engine, book, on_mail),
                   together=Together(engine))


#: A front's own type (``App.front`` returns it).
F = TypeVar("F", bound=ASGIApp)


class App(FastAPI):
    """A FastAPI application that carries the services its endpoints are given, and may
    have a front: an ASGI app that sees each request first, before FastAPI's own
    middleware, and hands on what it does not answer (``front``)."""

    def __init__(self, services: HttpServices, **settings: Any) -> None:
        super().__init__(**settings)
        self.services = services
        self._front: ASGIApp | None = None
        #: Answers requests before uvicorn does (``Direct``), if any.
        self.direct: Direct | None = None

    def front(self, make: Callable[[ASGIApp], F]) -> F:
        """Put ``make(the app as it is)`` in front of it; that front."""
        front = make(super().__call__)
        self._front = front
        return front

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self._front is None:
            await super().__call__(scope, receive, send)
        else:
            await self._front(scope, receive, send)


def _of(request: Request) -> HttpServices:
    app: App = request.app
    return app.services


async def services(request: Request) -> HttpServices:
    return _of(request)


async def config(request: Request) -> Config:
    return _of(request).config


async def engine(request: Request) -> Engine:
    return _of(request).engine


async def reader(request: Request) -> Engine:
    return _of(request).reader


async def book(request: Request) -> AddressBook:
    return _of(request).book


Services = Annotated[HttpServices, Depends(services)]
Config_ = Annotated[Config, Depends(config)]
Engine_ = Annotated[Engine, Depends(engine)]
Reader = Annotated[Engine, Depends(reader)]
Book = Annotated[AddressBook, Depends(book)]
