"""API keys: ``Authorization: Bearer fmk_...``.

A key is one account's or every account's. A key of account A asking for anything of
account B is told it does not exist (404), as an unknown id is: it learns nothing about
other accounts, not even that an id is taken.
"""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlmodel import Session, col, select

from feedback_mta.actions import Actor
from feedback_mta.actions.platform import hash_key, note_key_used
from feedback_mta.http.problems import ProblemError
from feedback_mta.http.services import Engine_, Reader
from feedback_mta.store.models import ApiKey

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


def caller(reader: Reader, engine: Engine_,
           credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)) -> Caller:
    """The key's holder; the key's ``last_used_at`` is noted on the way (a write at most
    once a minute per key: ``note_key_used``)."""
    if credentials is None or credentials.scheme.lower() != "bearer":
        raise ProblemError(401, "an API key is needed: Authorization: Bearer KEY",
                           headers=_CHALLENGE)
    with Session(reader) as session:
        row = session.exec(select(ApiKey.id, ApiKey.account_id, ApiKey.last_used_at).where(
            ApiKey.key_hash == hash_key(credentials.credentials),
            col(ApiKey.revoked_at).is_(None))).first()
    if row is None:
        raise ProblemError(401, "this API key is not valid (unknown or revoked)",
                           headers=_CHALLENGE)
    key_id = row[0] or 0
    note_key_used(engine, key_id, row[2])
    return Caller(key_id, row[1])
