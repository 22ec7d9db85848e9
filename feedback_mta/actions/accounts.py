"""Accounts (tenants), their users and roles, and the messages they report sending."""

from __future__ import annotations

import ipaddress
import re
import weakref
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select

from feedback_mta import events
from feedback_mta.actions.audit import (
    Invalid,
    NotFound,
    Recorder,
    remember_by_address,
    remembered,
)
from feedback_mta.store import db
from feedback_mta.store.models import (
    Account,
    Contact,
    Event,
    Role,
    SentCount,
    User,
    table_of,
    utcnow,
)
from feedback_mta.store.states import ConsentMethod

_EMAIL = re.compile(r"^[^@\s<>()\[\],;:\"]+@[a-z0-9.-]+\.[a-z0-9-]+$")
#: Never text: lone surrogates (a JSON ``\ud800`` escape) cannot be stored by either engine.
_SURROGATE = re.compile("[\ud800-\udfff]")
#: C0 and C1 controls and DEL: never in a name or an address (NUL cannot even be stored
#: in PostgreSQL; CR and LF would end a header line of the mail that carries them).
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f]")
#: In free text (comments): the same, but tab and line ends are text.
_CONTROL_IN_TEXT = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def check_text(field: str, value: str, *, lines: bool = False) -> str:
    """``value`` if it is text a name, an address (or, with ``lines``, free text) may be;
    ``Invalid`` naming ``field`` otherwise: a lone surrogate, a control character."""
    if _SURROGATE.search(value):
        raise Invalid(f"{field}: not text (a lone surrogate)", field)
    bad = (_CONTROL_IN_TEXT if lines else _CONTROL).search(value)
    if bad:
        raise Invalid(f"{field}: a control character ({ord(bad.group()):#04x}) is not "
                      "allowed", field)
    return value


def normalize_email(address: str) -> str:
    """Lower-case and check the shape of an address (full validation comes with quality checks)."""
    address = check_text("email", address).strip().lower()
    if not _EMAIL.match(address) or len(address) > 254:
        raise Invalid(f"not an email address: {address!r}", "email")
    return address


def normalize_ip(value: object) -> str | None:
    """A form's source IP in its canonical text, None when empty; ``Invalid`` otherwise."""
    text = str(value or "").strip()
    if not text:
        return None
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Invalid(f"not an IP address: {text!r}", "ip") from None


#: Built once (the reply handler asks per message): building costs more than running it.
_USER = select(User).where(User.account_id == sa.bindparam("b_account"),
                           User.email == sa.bindparam("b_email"))
_USERS = select(User).where(sa.tuple_(User.account_id, User.email).in_(
    sa.bindparam("b_pairs", expanding=True)))
#: {(account id, address): user} of what ``preload_users`` read.
_USERS_BY_ADDRESS = "feedback_mta.users_by_address"


def preload_users(session: Session, pairs: Iterable[tuple[int, str]]) -> None:
    """Read the users with these (account, address) in one query, for ``Accounts.user``
    to find there: the processor reads its batch's reply senders so, a statement a batch
    instead of one a reply. An address read so and not found is looked up again when
    asked: a hint, never an answer."""
    wanted = sorted({(account_id, email.strip().lower()) for account_id, email in pairs})
    if wanted:
        remember_by_address(session, _USERS_BY_ADDRESS,
                            session.exec(_USERS, params={"b_pairs": wanted}))


_A = table_of(Account)
_EXISTS = sa.select(_A.c.id).where(_A.c.id == sa.bindparam("b_id"))
#: The accounts a session found (``Accounts.check``): none is ever deleted.
_FOUND = "feedback_mta.accounts_found"
#: The accounts found by sessions that then committed (``remember_accounts``), by engine.
_KNOWN: weakref.WeakKeyDictionary[Engine, set[int]] = weakref.WeakKeyDictionary()


def remember_accounts(engine: Engine, session: Session) -> None:
    """After ``session`` committed: the accounts it found exist, and will (none is ever
    deleted), so ``known`` can say so without the database. Not before: an account a
    transaction made is not there if it rolls back."""
    found = session.info.get(_FOUND)
    if found:
        _KNOWN.setdefault(engine, set()).update(found)


def known(bind: Engine | sa.Connection, account_id: int) -> bool:
    """Whether the account was found by a committed session (``remember_accounts``) of
    ``bind``'s engine: it exists. False says nothing."""
    engine = bind if isinstance(bind, Engine) else bind.engine
    return account_id in _KNOWN.get(engine, ())


class Accounts:
    """Accounts and their users: the tenant every other area checks first."""

    __slots__ = ("recorder", "session")

    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.session = recorder, recorder.session

    def check(self, account_id: int) -> None:
        """``NotFound`` unless the account exists: ``get`` without the ORM object, read
        once per session (the registrations committed together share one)."""
        found: set[int] = self.session.info.setdefault(_FOUND, set())
        if account_id in found or known(self.session.get_bind(), account_id):
            return
        if self.session.connection().execute(_EXISTS, {"b_id": account_id}).first() is None:
            raise NotFound(f"no account {account_id}")
        found.add(account_id)

    def get(self, account_id: int) -> Account:
        account = self.session.get(Account, account_id)
        if account is None:
            raise NotFound(f"no account {account_id}")
        return account

    def user(self, account_id: int, email: str) -> User | None:
        """The account's user with this address, or None."""
        email = email.strip().lower()
        if (user := remembered(self.session, _USERS_BY_ADDRESS, account_id, email)) is not None:
            return user
        return self.session.exec(_USER, params={"b_account": account_id, "b_email": email}
                                 ).first()

    def contact_admins(self, account_id: int) -> list[User]:
        """The account's users holding ``contact-admin`` (who get its digests)."""
        return [u for u in self.session.exec(select(User).where(User.account_id == account_id))
                if Role.CONTACT_ADMIN in u.role_set]

    def add(self, name: str) -> Account:
        name = check_text("name", name).strip()
        if not name:
            raise Invalid("an account needs a name", "name")
        account = Account(name=name)
        self.session.add(account)
        self.session.flush()
        self.recorder.record(events.ACCOUNT_CREATED, "account", account.id, account.id, name=name)
        return account

    def add_user(self, account_id: int, email: str, roles: Iterable[str] = ()) -> User:
        """Add a user, or grant more roles to an existing one."""
        self.get(account_id)
        email = normalize_email(email)
        wanted = {Role(r).value for r in roles}
        user = self.user(account_id, email)
        if user is None:
            user = User(account_id=account_id, email=email, roles=" ".join(sorted(wanted)))
            self.session.add(user)
            self.session.flush()
            self.recorder.record(events.USER_CREATED, "user", user.id, account_id,
                                 roles=sorted(wanted))
        elif not wanted <= user.role_set:
            user.roles = " ".join(sorted(user.role_set | wanted))
            self.session.add(user)
            self.recorder.record(events.USER_ROLES_GRANTED, "user", user.id, account_id,
                                 roles=sorted(wanted))
        return user

    def existing_user(self, account_id: int, email: str) -> User:
        """The account's user with this address; NotFound names what is missing."""
        self.get(account_id)
        user = self.user(account_id, email)
        if user is None:
            raise NotFound(f"no user {email.strip().lower()} in account {account_id}")
        return user

    def revoke_roles(self, user: User, roles: Iterable[str]) -> bool:
        """Take roles from a user; False (and no event) when it held none of them."""
        gone = {Role(r).value for r in roles} & user.role_set
        if not gone:
            return False
        user.roles = " ".join(sorted(user.role_set - gone))
        self.session.add(user)
        self.recorder.record(events.USER_ROLES_REVOKED, "user", user.id, user.account_id,
                             roles=sorted(gone))
        return True

    def remove_user(self, user: User) -> None:
        """Remove a user: its replies no longer act (the audit events stay)."""
        self.session.delete(user)
        self.session.flush()
        self.recorder.record(events.USER_REMOVED, "user", user.id, user.account_id,
                             email=user.email)

    def add_sent(self, account_id: int, day: str, count: int) -> SentCount:
        """Add to the messages the account sent on ``day`` (ISO date)."""
        self.get(account_id)
        if count < 0:
            raise Invalid("a sent count cannot be negative")
        row = self.session.exec(select(SentCount).where(
            SentCount.account_id == account_id, SentCount.day == day)).first()
        if row is None:
            row = SentCount(account_id=account_id, day=day, count=0)
        row.count += count
        self.session.add(row)
        self.session.flush()
        self.recorder.record(events.ACCOUNT_SENT_RECORDED, "account", account_id, account_id,
                             day=day, count=count, total=row.count)
        return row

    def advise(self, account_id: int, state: str, reasons: list[str],
               figures: dict[str, Any]) -> bool:
        """Set what the account guard advises (``ok``, ``warned``, ``paused``); False when
        it says so already. A pause stays until ``resume``: the guard never lifts one."""
        account = self.get(account_id)
        self.recorder.lock(account)
        current = account.sending
        if state == current or current == "paused" or state not in _ADVICE:
            return False
        account.sending, account.sending_reasons = state, list(reasons)
        account.sending_changed_at = utcnow()
        self.session.add(account)
        action = _ADVICE[state]
        self.recorder.record(action, "account", account_id, account_id,
                             reason="; ".join(reasons) or None, previous=current, **figures)
        return True

    def resume(self, account_id: int) -> bool:
        """Clear a pause (or a warning): the guard counts from now on. False when the
        account was not held back."""
        account = self.get(account_id)
        self.recorder.lock(account)
        if account.sending == "ok":
            return False
        previous = account.sending
        now = utcnow()
        account.sending, account.sending_reasons = "ok", []
        account.sending_changed_at = account.resumed_at = now
        self.session.add(account)
        self.recorder.record(events.ACCOUNT_RESUMED, "account", account_id, account_id,
                             previous=previous)
        return True


_E = table_of(Event)
_S = table_of(SentCount)


_A = table_of(Account)
_C = table_of(Contact)
_GUARDED = (events.CONTACT_COMPLAINED, events.CONTACT_HARD_BOUNCED)
#: The guarded events with the consent method of their contact (a deleted contact's:
#: ``unknown``), counted per action and method in one grouped read.
_METHOD = _C.c.consent_method.label("method")
_WITH_CONTACT = _E.outerjoin(_C, sa.and_(_E.c.subject_type == "contact",
                                         _C.c.id == _E.c.subject_id))


def _counting(*keys: sa.ColumnElement[Any]) -> sa.Select[Any]:
    """Guarded events counted per ``keys``, action and consent method (group it so)."""
    return sa.select(*keys, _E.c.action, _METHOD, sa.func.count()).select_from(_WITH_CONTACT)

#: (action, consent method) -> events of that action whose contact came so.
Counted = dict[tuple[str, str | None], int]


def guard_figures(session: Session, account: Account, window: float,
                  now: datetime | None = None) -> dict[str, Any]:
    """What the account guard judges (a read, for ``advise`` and ``account show``):
    messages sent (``account sent``), complaints and hard bounces over the window, counted
    from the last ``account resume`` when that is later."""
    assert account.id is not None
    return _account_figures(session, account.id, account.resumed_at, window, now or utcnow())


def _account_figures(reader: Session | sa.Connection, account_id: int,
                     resumed_at: datetime | None, window: float,
                     now: datetime) -> dict[str, Any]:
    since = _guard_since(resumed_at, window, now)
    sent = reader.execute(sa.select(sa.func.coalesce(sa.func.sum(_S.c.count), 0)).where(
        _S.c.account_id == account_id, _S.c.day >= since.date().isoformat())).scalar_one()
    counted = {(action, method): n for action, method, n in reader.execute(
        _counting().where(_E.c.account_id == account_id, _E.c.at >= since,
                       _E.c.action.in_(_GUARDED)).group_by(_E.c.action, _METHOD))}
    return _figures(since, int(sent), counted)


def every_guard_figures(conn: sa.Connection, window: float, now: datetime | None = None
                        ) -> list[tuple[int, str, dict[str, Any]]]:
    """(account id, advice now, ``guard_figures``) of every account, by id: two grouped
    reads for all of them (the guard runs over every account every few minutes), and
    the accounts resumed within the window one by one, as they count from then."""
    now = now or utcnow()
    since = _guard_since(None, window, now)
    sent = dict(conn.execute(
        sa.select(_S.c.account_id, sa.func.sum(_S.c.count))
        .where(_S.c.day >= since.date().isoformat()).group_by(_S.c.account_id)).all())
    counted: dict[int, Counted] = {}
    for account_id, action, method, count in conn.execute(
            _counting(_E.c.account_id).where(_E.c.at >= since, _E.c.action.in_(_GUARDED))
            .group_by(_E.c.account_id, _E.c.action, _METHOD)):
        counted.setdefault(account_id, {})[(action, method)] = count
    out = []
    for row in conn.execute(sa.select(_A.c.id, _A.c.sending, _A.c.resumed_at)
                            .order_by(_A.c.id)):
        if row.resumed_at is not None and db.aware(row.resumed_at) > since:
            figures = _account_figures(conn, row.id, row.resumed_at, window, now)
        else:
            figures = _figures(since, int(sent.get(row.id) or 0), counted.get(row.id, {}))
        out.append((row.id, row.sending, figures))
    return out


def _guard_since(resumed_at: datetime | None, window: float, now: datetime) -> datetime:
    since = now - timedelta(seconds=window)
    return since if resumed_at is None else max(since, db.aware(resumed_at))


def _figures(since: datetime, sent: int, counted: Counted) -> dict[str, Any]:
    """The figures of one account; ``complaints_by_consent``: its complaints by how the
    complaining contacts came (an account mailing imported lists shows before its ESP
    sees it)."""
    by_consent: dict[str, int] = {}
    bounces = 0
    for (action, method), n in counted.items():
        if action == events.CONTACT_COMPLAINED:
            key = method or ConsentMethod.UNKNOWN.value
            by_consent[key] = by_consent.get(key, 0) + int(n)
        else:
            bounces += int(n)
    complaints = sum(by_consent.values())
    return {"since": since.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z"),
            "sent": sent, "complaints": complaints, "hard_bounces": bounces,
            "complaint_rate": round(complaints / sent, 6) if sent else 0.0,
            "bounce_rate": round(bounces / sent, 6) if sent else 0.0,
            "complaints_by_consent": dict(sorted(by_consent.items()))}


#: The event each state the guard sets is announced with.
_ADVICE = {"warned": events.ACCOUNT_WARNED, "paused": events.ACCOUNT_PAUSED,
           "ok": events.ACCOUNT_RECOVERED}
