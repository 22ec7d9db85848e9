"""The review page: contact admins see every lead of their accounts flagged as spam (by the
system, a dealer's reply, the API, the command line or this page: who, and why), filter them
by who flagged them, restore them (and undo that: a lead restored lately can be flagged
again), and keep suspected contacts, one click each. Server-rendered HTML (Jinja2,
escaped), no JavaScript: the filter and the paging are plain GET forms and links.

Signing in: ``GET /review/`` asks for an address; if it is a contact admin's, a link is
mailed (``actions.review``: single use, ``[review] link_lifetime``), and the answer is the
same either way, in words and in time: the request does the same work for everyone (read
the form, check the address's shape, hand the rest to a thread) and answers, and whether
it is an admin's, the link and its mail are worked out after, off the request's path. The
link's ``GET`` only shows a button (mail scanners open links; they must not use them up);
its ``POST`` signs in: a cookie naming the session (the link used) and its expiry, signed
with ``[security] secret_key`` (``HttpOnly``, ``SameSite=Strict``, ``Secure`` behind an
https ``public_url``), good while the session holds on the server: signing out ends it
there, so a copy of the cookie signs nobody in afterwards. Each change is a ``POST``
carrying a CSRF token derived from that cookie, and is checked against the admin's roles
as they are now. Changes go through the actions like every other: the same audit events
as a reply, actor ``web:<address>``, via ``web``.

Links point at ``[http] public_url``, or, without one, at the address this server listens
on: never at the request's Host header, which anyone can set (a link to their host, in our
mail, would hand them the sign-in).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Annotated, Any, Literal, get_args

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sqlalchemy.engine import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool

from feedback_mta import logs
from feedback_mta.actions import ActionError, Actor, UnitOfWork, unit_of_work
from feedback_mta.actions.accounts import normalize_email
from feedback_mta.actions.review import reviewer_accounts, session_email
from feedback_mta.config import Config
from feedback_mta.http.charts import review_charts
from feedback_mta.http.pages import fields, render
from feedback_mta.http.services import Config_, Engine_, Reader, Services
from feedback_mta.queries.cursors import MAX_ID
from feedback_mta.queries.reports import account_days
from feedback_mta.queries.review import FLAGGERS, to_review
from feedback_mta.store.models import Contact, Lead

log = logs.get(__name__)

router = APIRouter(prefix="/review", include_in_schema=False)

ObjectId = Annotated[int, Path(ge=1, le=MAX_ID)]
#: The page's filter: every spam lead (""), or those one way flagged (``FLAGGERS``).
ByFilter = Literal["", "system", "reply", "api", "page", "cli"]
assert set(get_args(ByFilter)) == {"", *FLAGGERS}

COOKIE = "fm_review"
_NOTES = {"restored": "Lead #{id} restored: it is back among the leads and goes out as usual.",
          "flagged": "Lead #{id} flagged as spam again: it is off the leads and kept here.",
          "kept": "Contact #{id} kept: it will not be opted out.",
          "unchanged": "#{id} had changed already; nothing to do."}


def _page(name: str, status: int = 200, **values: Any) -> HTMLResponse:
    values.setdefault("email", None)
    return render(f"review/{name}.html", status, **values)


def _mac(secret: str, what: str) -> str:
    return hmac.new(secret.encode(), what.encode(), hashlib.sha256).hexdigest()[:32]


def _same(given: str, ours: str) -> bool:
    """In constant time; text that is not ASCII is never one of our MACs (and
    ``compare_digest`` would raise on it)."""
    return given.isascii() and hmac.compare_digest(given, ours)


def _secrets(config: Config) -> list[str]:
    return [config.security.secret_key, *config.security.previous_secret_keys]


def session_cookie(config: Config, session_id: int, now: float | None = None) -> str:
    expires = int((now or time.time()) + config.review.session_lifetime)
    payload = f"{session_id}.{expires}"
    return f"{payload}.{_mac(config.security.secret_key, 'review-session:' + payload)}"


def _session_of(config: Config, request: Request) -> tuple[int, str] | None:
    """(session id, cookie) of a genuine, unexpired cookie, or None; whether the session
    still holds is the database's to say (``signed_in``)."""
    cookie = request.cookies.get(COOKIE, "")
    payload, _, mac = cookie.rpartition(".")
    session_id, _, expires = payload.partition(".")
    # isascii: a MAC is hex, and compare_digest refuses other text (TypeError).
    if not (mac and mac.isascii() and session_id.isdigit() and session_id.isascii()
            and len(session_id) <= 10 and int(session_id) <= MAX_ID
            and expires.isdigit() and expires.isascii()
            and len(expires) <= 12 and int(expires) >= time.time()):
        return None
    if not any(_same(mac, _mac(s, "review-session:" + payload))
               for s in _secrets(config)):
        return None
    return int(session_id), cookie


def signed_in(config: Config, request: Request, engine: Engine) -> tuple[str, str] | None:
    """(address, cookie) of a sign-in that holds (genuine, unexpired, not signed out), or
    None."""
    found = _session_of(config, request)
    if found is None:
        return None
    with Session(engine) as session:
        email = session_email(session, found[0])
    return None if email is None else (email, found[1])


def csrf_token(config: Config, cookie: str) -> str:
    return _mac(config.security.secret_key, "csrf:" + cookie)


async def _form(request: Request) -> dict[str, str]:
    """The page's own forms; anything else reads as an empty one (the answer is then
    what a missing field gets)."""
    return fields(await request.body())


def base_url(config: Config, request: Request) -> str:
    """Where links to our pages point: ``[http] public_url``, else the address this
    listener bound (never the request's Host header, which anyone can set)."""
    if config.http.public_url:
        return config.http.public_url
    host, port = request.scope["server"][:2]
    return f"http://{host}:{port}"


@router.get("/")
def review_page(request: Request, config: Config_, reader: Reader, done: str = "",
                id: int = 0, by: ByFilter = "",
                before: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
                account: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None) -> Response:
    who = signed_in(config, request, reader)
    if who is None:
        return _page("sign_in", title="Review")
    email, cookie = who
    with Session(reader) as session:
        accounts = to_review(session, reviewer_accounts(session, email), by=by,
                             before=(account, before) if account and before else None)
        charts = {a.id: review_charts(account_days(session, a.id), config.guard)
                  for a in accounts}
    note = _NOTES[done].format(id=id) if done in _NOTES else None
    # Undo a restore: while the lead is still restored (and one of this admin's).
    undo = id if done == "restored" and any(
        r.id == id for account in accounts for r in account.restored) else None
    return _page("review", title="Review", email=email, csrf=csrf_token(config, cookie),
                 accounts=accounts, note=note, undo=undo, by=by,
                 before=before if account else None, paged=account,
                 flaggers={name: label for name, (_, label) in FLAGGERS.items()},
                 charts=charts)


@router.post("/sign-in")
async def ask_for_link(request: Request, services: Services) -> Response:
    """The same answer, after the same work, for an admin and for anyone else: whether the
    address may review, the link and its mail are worked out after the answer."""
    config = services.config
    email = (await _form(request)).get("email", "").strip()
    try:
        address = normalize_email(email)
    except ActionError:
        return _page("sign_in", 400, title="Review",
                     error="That is not an email address. Please check it.")
    services.sign_ins.offer(address, base_url(config, request))
    return _page("sign_in", title="Review",
                 note=f"If {email} may review leads, a sign-in link is on its way to it.")


@router.get("/link/{token}")
def show_link(request: Request, token: str) -> Response:
    """Only a button: opening the link (a mail scanner does) changes nothing."""
    return _page("link", title="Sign in")


@router.post("/link/{token}")
def use_link(config: Config_, engine: Engine_, token: str) -> Response:
    with unit_of_work(engine, Actor("web", "web")) as uow:
        used = uow.review.use_sign_in_link(token, config.review.session_lifetime)
    if used is None:
        return _page("sign_in", 410, title="Review",
                     error="This sign-in link has expired or was used already. Ask for a "
                           "new one below.")
    response = RedirectResponse("/review/", status_code=303)
    response.set_cookie(COOKIE, session_cookie(config, used[1]), httponly=True,
                        samesite="strict", path="/review",
                        secure=config.http.public_url.startswith("https://"),
                        max_age=int(config.review.session_lifetime))
    return response


@router.post("/sign-out")
async def sign_out(request: Request, config: Config_, engine: Engine_) -> Response:
    """Ends the session on the server (its cookie is refused from now on, wherever a copy
    of it is), when the form is ours; the browser's cookie goes either way."""
    found = _session_of(config, request)
    token = (await _form(request)).get("csrf", "")
    if found is not None and _same(token, csrf_token(config, found[1])):
        def end() -> None:
            with unit_of_work(engine, Actor("web", "web")) as uow:
                uow.review.sign_out(found[0])

        await run_in_threadpool(end)
    response = RedirectResponse("/review/", status_code=303)
    response.delete_cookie(COOKIE, path="/review", httponly=True, samesite="strict",
                           secure=config.http.public_url.startswith("https://"))
    return response


#: What a button does to a lead or a contact (True: changed; False: it had changed already).
Change = Callable[[UnitOfWork, Any], bool]


async def _change(request: Request, config: Config, engine: Engine,
                  model: type[Lead | Contact], object_id: int, done: str,
                  change: Change) -> Response:
    who = await run_in_threadpool(signed_in, config, request, engine)
    if who is None:
        return _page("sign_in", 401, title="Review",
                     error="Your sign-in has expired. Ask for a new link below.")
    email, cookie = who
    token = (await _form(request)).get("csrf", "")
    if not _same(token, csrf_token(config, cookie)):
        return _page("sign_in", 403, title="Review",
                     error="That form was not ours (its CSRF token did not match).")

    def act_on() -> bool | None:
        with unit_of_work(engine, Actor(f"web:{email}", "web")) as uow:
            found: Lead | Contact | None = (uow.session.get(Lead, object_id) if model is Lead
                                            else uow.session.get(Contact, object_id))
            if found is None or found.account_id not in uow.review.reviewer_accounts(email):
                return None  # the same answer for another account's as for none
            return change(uow, found)

    changed = await run_in_threadpool(act_on)
    if changed is None:
        return _page("sign_in", 404, title="Review", error="No such lead or contact.")
    return RedirectResponse(f"/review/?done={done if changed else 'unchanged'}&id={object_id}",
                            status_code=303)


@router.post("/leads/{lead_id}/restore")
async def restore_lead(request: Request, config: Config_, engine: Engine_,
                       lead_id: ObjectId) -> Response:
    return await _change(request, config, engine, Lead, lead_id, "restored",
                         lambda uow, lead: uow.leads.restore(lead))


@router.post("/leads/{lead_id}/flag")
async def flag_lead(request: Request, config: Config_, engine: Engine_,
                    lead_id: ObjectId) -> Response:
    """Flag a lead as spam again (the undo of a restore), as a dealer's ``SPAM`` would."""
    return await _change(request, config, engine, Lead, lead_id, "flagged",
                         lambda uow, lead: uow.leads.flag_spam(lead))


@router.post("/contacts/{contact_id}/keep")
async def keep_contact(request: Request, config: Config_, engine: Engine_,
                       contact_id: ObjectId) -> Response:
    return await _change(request, config, engine, Contact, contact_id, "kept",
                         lambda uow, contact: uow.quality.verify(contact))
