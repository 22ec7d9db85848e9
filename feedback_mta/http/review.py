"""The review page: contact admins restore leads flagged automatically and keep suspected
contacts, one click each. Server-rendered HTML (Jinja2, escaped), no JavaScript.

Signing in: ``GET /review/`` asks for an address; if it is a contact admin's, a link is
mailed (``actions.review``: single use, ``[review] link_lifetime``), and the answer is the
same either way, so the page tells nobody who is an admin. The link's ``GET`` only shows a
button (mail scanners open links; they must not use them up); its ``POST`` signs in: a
cookie holding the address and an expiry, signed with ``[security] secret_key``
(``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind an https ``public_url``). Each change
is a ``POST`` carrying a CSRF token derived from that cookie, and is checked against the
admin's roles as they are now. Changes go through the actions like every other: the same
audit events as a reply, actor ``web:<address>``, via ``web``.

Links point at ``[http] public_url``, or, without one, at the address this server listens
on: never at the request's Host header, which anyone can set (a link to their host, in our
mail, would hand them the sign-in).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from typing import Any
from urllib.parse import parse_qs

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from jinja2 import Environment, PackageLoader, select_autoescape
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from feedback_mta.actions import ActionError, Actor, unit_of_work
from feedback_mta.actions.review import reviewer_accounts
from feedback_mta.addresses import Box
from feedback_mta.config import Config
from feedback_mta.http.services import Config_, Engine_, Reader, Services
from feedback_mta.queries.review import to_review
from feedback_mta.store.models import Contact, Lead

router = APIRouter(prefix="/review", include_in_schema=False)

COOKIE = "fm_review"
_ENV = Environment(loader=PackageLoader("feedback_mta.http", "templates"),
                   autoescape=select_autoescape(default=True))
_NOTES = {"restored": "Lead #{id} restored: it is back among the leads and goes out as usual.",
          "kept": "Contact #{id} kept: it will not be opted out.",
          "unchanged": "#{id} had changed already; nothing to do."}


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("email", None)
    html = _ENV.get_template(f"review/{name}.html").render(**values)
    return HTMLResponse(html, status_code=status, headers={
        "Cache-Control": "no-store", "X-Frame-Options": "DENY",
        "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
                                   "form-action 'self'; frame-ancestors 'none'"})


def _mac(secret: str, what: str) -> str:
    return hmac.new(secret.encode(), what.encode(), hashlib.sha256).hexdigest()[:32]


def _secrets(config: Config) -> list[str]:
    return [config.security.secret_key, *config.security.previous_secret_keys]


def session_cookie(config: Config, email: str, now: float | None = None) -> str:
    expires = int((now or time.time()) + config.review.session_lifetime)
    payload = f"{base64.urlsafe_b64encode(email.encode()).decode()}.{expires}"
    return f"{payload}.{_mac(config.security.secret_key, 'review-session:' + payload)}"


def signed_in(config: Config, request: Request) -> tuple[str, str] | None:
    """(address, cookie) of a genuine, unexpired sign-in, or None."""
    cookie = request.cookies.get(COOKIE, "")
    payload, _, mac = cookie.rpartition(".")
    encoded, _, expires = payload.partition(".")
    if not mac or not expires.isdigit() or int(expires) < time.time():
        return None
    if not any(hmac.compare_digest(mac, _mac(s, "review-session:" + payload))
               for s in _secrets(config)):
        return None
    try:
        return base64.urlsafe_b64decode(encoded.encode()).decode(), cookie
    except ValueError:
        return None


def csrf_token(config: Config, cookie: str) -> str:
    return _mac(config.security.secret_key, "csrf:" + cookie)


async def _form(request: Request) -> dict[str, str]:
    body = (await request.body()).decode("utf-8", errors="replace")
    try:
        return {k: v[0] for k, v in parse_qs(body, max_num_fields=10).items()}
    except ValueError:  # more fields than any of our forms has: none of ours
        return {}


def _base_url(config: Config, request: Request) -> str:
    if config.http.public_url:
        return config.http.public_url
    host, port = request.scope["server"][:2]
    return f"http://{host}:{port}"


@router.get("/")
def review_page(request: Request, config: Config_, reader: Reader, done: str = "",
                id: int = 0) -> Response:
    who = signed_in(config, request)
    if who is None:
        return _page("sign_in", title="Review")
    email, cookie = who
    with Session(reader) as session:
        accounts = to_review(session, reviewer_accounts(session, email))
    note = _NOTES[done].format(id=id) if done in _NOTES else None
    return _page("review", title="Review", email=email, csrf=csrf_token(config, cookie),
                 accounts=accounts, note=note)


@router.post("/sign-in")
async def ask_for_link(request: Request, services: Services) -> Response:
    config, book = services.config, services.book
    email = (await _form(request)).get("email", "").strip()
    base = _base_url(config, request)

    def send() -> None:
        with unit_of_work(services.engine, Actor("web", "web")) as uow:
            uow.review.send_sign_in_link(email, base, config.review.link_lifetime,
                                         from_name=config.outbound.from_name,
                                         sender=f"{Box.POSTMASTER.value}@{book.domain}",
                                         domain=book.domain)
            queued = list(uow.recorder.queued_mail)
        services.on_mail(queued)

    try:
        await run_in_threadpool(send)
    except ActionError:
        return _page("sign_in", 400, title="Review",
                     error="That is not an email address. Please check it.")
    return _page("sign_in", title="Review",
                 note=f"If {email} may review leads, a sign-in link is on its way to it.")


@router.get("/link/{token}")
def show_link(request: Request, token: str) -> Response:
    """Only a button: opening the link (a mail scanner does) changes nothing."""
    return _page("link", title="Sign in")


@router.post("/link/{token}")
def use_link(config: Config_, engine: Engine_, token: str) -> Response:
    with unit_of_work(engine, Actor("web", "web")) as uow:
        email = uow.review.use_sign_in_link(token)
    if email is None:
        return _page("sign_in", 410, title="Review",
                     error="This sign-in link has expired or was used already. Ask for a "
                           "new one below.")
    response = RedirectResponse("/review/", status_code=303)
    response.set_cookie(COOKIE, session_cookie(config, email), httponly=True,
                        samesite="strict", path="/review",
                        secure=config.http.public_url.startswith("https://"),
                        max_age=int(config.review.session_lifetime))
    return response


@router.post("/sign-out")
async def sign_out(request: Request) -> Response:
    response = RedirectResponse("/review/", status_code=303)
    response.delete_cookie(COOKIE, path="/review")
    return response


async def _change(request: Request, config: Config, engine: Engine,
                  model: type[Lead | Contact], object_id: int, done: str) -> Response:
    who = signed_in(config, request)
    if who is None:
        return _page("sign_in", 401, title="Review",
                     error="Your sign-in has expired. Ask for a new link below.")
    email, cookie = who
    token = (await _form(request)).get("csrf", "")
    if not hmac.compare_digest(token, csrf_token(config, cookie)):
        return _page("sign_in", 403, title="Review",
                     error="That form was not ours (its CSRF token did not match).")

    def act_on() -> bool | None:
        with unit_of_work(engine, Actor(f"web:{email}", "web")) as uow:
            found: Lead | Contact | None = (uow.session.get(Lead, object_id) if model is Lead
                                            else uow.session.get(Contact, object_id))
            if found is None or found.account_id not in uow.review.reviewer_accounts(email):
                return None  # the same answer for another account's as for none
            if isinstance(found, Lead):
                return uow.leads.restore(found)
            return uow.quality.verify(found)

    changed = await run_in_threadpool(act_on)
    if changed is None:
        return _page("sign_in", 404, title="Review", error="No such lead or contact.")
    return RedirectResponse(f"/review/?done={done if changed else 'unchanged'}&id={object_id}",
                            status_code=303)


@router.post("/leads/{lead_id}/restore")
async def restore_lead(request: Request, config: Config_, engine: Engine_,
                       lead_id: int) -> Response:
    return await _change(request, config, engine, Lead, lead_id, "restored")


@router.post("/contacts/{contact_id}/keep")
async def keep_contact(request: Request, config: Config_, engine: Engine_,
                       contact_id: int) -> Response:
    return await _change(request, config, engine, Contact, contact_id, "kept")
