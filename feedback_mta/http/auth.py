"""API keys: ``Authorization: Bearer fmk_...``.

A key is one account's or every account's. A key of account A asking for anything of
account B is told it does not exist (404), as an unknown id is: it learns nothing about
other accounts, not even that an id is taken.

For the registrations (``registrar``), a key found valid is remembered for
``KEY_CACHE_SECONDS`` (``Keys``): a registration with it then reads nothing and takes no
thread pool hop. A key revoked in this process (``key revoke``, the API) is
forgotten as its ``key.revoked`` event is committed; one revoked by another process (a
``feedback-mta key revoke`` elsewhere, another node) stops working within
``KEY_CACHE_SECONDS``. Unknown and revoked keys are never remembered: a new key works at
once.
"""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from feedback_mta import events
from feedback_mta.actions import Actor, listen
from feedback_mta.actions.platform import KEY_USE_EVERY, hash_key, note_key_used
from feedback_mta.http.problems import ProblemError
from feedback_mta.http.services import Engine_, Reader
from feedback_mta.store import db
from feedback_mta.store.models import ApiKey, utcnow

_bearer = HTTPBearer(auto_error=False, description="An API key: feedback-mta key add")
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="feedback-mta"'}


@dataclass(frozen=True)
class Caller:
    key_id: int
    #: The key's account; None: every account.
    account_id: int | None

    @property
    def actor(self) -> Actor:
        return Actor(f"api:key{self.key_id}", "api")

    def sees(self, account_id: int | None) -> bool:
        return self.account_id is None or self.account_id == account_id

    def check(self, account_id: int | None, what: str) -> None:
        """404 for what belongs to another account (``what``: "lead 7")."""
        if not self.sees(account_id):
            raise ProblemError(404, f"no {what}")

    def account(self, asked: int | None) -> int | None:
        """The account a request is about: the one asked for (which this key must see),
        else the key's own (None for an every-account key that asked for none)."""
        if asked is None:
            return self.account_id
        self.check(asked, f"account {asked}")
        return asked


#: How long a valid key is taken as valid without reading it again: the bound on how late
#: a revocation made by another process (or node) takes effect.
KEY_CACHE_SECONDS = 5.0
#: Keys remembered at most (each a hash and a few numbers); past it, all are forgotten.
_MAX_KEYS = 4096


@dataclass(slots=True)
class _Known:
    caller: Caller
    #: The key's ``last_used_at`` as read or last noted (``note_key_used``).
    used: datetime | None
    until: float


class Keys:
    """Valid keys, by (reader, hash), for ``KEY_CACHE_SECONDS`` each (see the module)."""

    def __init__(self) -> None:
        self._known: dict[tuple[int, str], _Known] = {}
        self._lock = threading.Lock()
        #: Counts ``forget``s: a key read before a revocation is not remembered after it.
        self.generation = 0

    def get(self, reader: Engine, digest: str) -> _Known | None:
        known = self._known.get((id(reader), digest))
        if known is None or known.until < time.monotonic():
            return None
        return known

    def put(self, reader: Engine, digest: str, known: _Known, generation: int) -> None:
        with self._lock:
            if generation != self.generation:
                return  # a key was revoked while this one was read: it may be the one
            if len(self._known) >= _MAX_KEYS:
                self._known.clear()
            self._known[(id(reader), digest)] = known

    def forget(self) -> None:
        with self._lock:
            self.generation += 1
            self._known.clear()


KEYS = Keys()


def _revoked(action: str, fields: dict[str, Any]) -> None:
    if action == events.KEY_REVOKED:
        KEYS.forget()


listen(_revoked)


def _read(reader: Engine, engine: Engine, digest: str) -> _Known | None:
    """The key's holder as stored (None: unknown or revoked), its use noted."""
    with Session(reader) as session:
        row = session.exec(select(ApiKey.id, ApiKey.account_id, ApiKey.last_used_at).where(
            ApiKey.key_hash == digest, col(ApiKey.revoked_at).is_(None))).first()
    if row is None:
        return None
    key_id = row[0] or 0
    note_key_used(engine, key_id, row[2])
    used, now = db.aware(row[2]) if row[2] is not None else None, utcnow()
    if used is None or used < now - KEY_USE_EVERY:
        used = now  # noted now (or by another request meanwhile)
    return _Known(Caller(key_id, row[1]), used, time.monotonic() + KEY_CACHE_SECONDS)


def caller(reader: Reader, engine: Engine_,
           credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
    """The key's holder; the key's ``last_used_at`` is noted on the way (a write at most
    once a minute per key: ``note_key_used``)."""
    known = _read(reader, engine, _digest(credentials))
    if known is None:
        raise _invalid()
    return known.caller


async def registrar(reader: Reader, engine: Engine_,
                    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
                    ) -> Caller:
    """``caller`` for the registrations (``POST /v1/leads``, ``POST /v1/contacts``), the
    API's hot path: a key read in the last ``KEY_CACHE_SECONDS`` is not read again
    (``Keys``), and its ``last_used_at`` is noted when what was read, or noted since, is a
    minute old."""
    digest = _digest(credentials)
    known = KEYS.get(reader, digest)
    if known is None:
        generation = KEYS.generation
        known = await asyncio.to_thread(_read, reader, engine, digest)
        if known is None:
            raise _invalid()
        KEYS.put(reader, digest, known, generation)
    elif known.used is None or known.used < utcnow() - KEY_USE_EVERY:
        # Noted at most once a minute, as before: in a thread, the request waits for it.
        seen, known.used = known.used, utcnow()
        await asyncio.to_thread(note_key_used, engine, known.caller.key_id, seen)
    return known.caller


def _digest(credentials: HTTPAuthorizationCredentials | None) -> str:
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(401, "an API key is needed: Authorization: Bearer KEY",
                           headers=_CHALLENGE)
    return hash_key(credentials.credentials)


def _invalid() -> ProblemError:
    return ProblemError(401, "this API key is not valid (unknown or revoked)",
                        headers=_CHALLENGE)
