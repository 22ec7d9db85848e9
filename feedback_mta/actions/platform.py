"""What the sending platform is given: API keys and webhook subscriptions.

A key is shown once, when made, and only its SHA-256 is kept: keys are 256 random bits, so
a plain hash is as good as a slow one and lets a request be checked with one indexed read.
A webhook's secret must be kept as it is, since every delivery is signed with it.
"""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import func, select

from feedback_mta import destinations, events
from feedback_mta.actions.accounts import Accounts
from feedback_mta.actions.audit import Conflict, Invalid, NotFound, Recorder
from feedback_mta.store import db
from feedback_mta.store.models import (
    ApiKey,
    Event,
    IdempotencyKey,
    Webhook,
    table_of,
    utcnow,
)

KEY_PREFIX = "fmk_"
#: A key's ``last_used_at`` is noted when it is older than this: one write per key and
#: minute at most, however many requests.
KEY_USE_EVERY = timedelta(minutes=1)
_K = table_of(ApiKey)
_W = table_of(Webhook)
SECRET_PREFIX = "whsec_"


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


class BadUrl(Invalid):
    """A webhook URL refused: not http(s), ``user:pass@``, or pointing inside."""

    field = "url"


def check_event_types(types: Iterable[str]) -> list[str]:
    """``lead.*,contact.opted_out`` as a list, each a known event or a pattern matching one."""
    out = []
    for pattern in (t.strip() for t in types):
        if not pattern:
            continue
        if not any(fnmatch.fnmatchcase(name, pattern) for name in events.ALL):
            raise Invalid(f"no event type matches {pattern!r} (known: "
                          f"{', '.join(events.ALL)})", "events")
        out.append(pattern)
    return out


class Platform:
    """The sending platform's keys, webhooks and remembered answers, each of one account
    (checked in ``accounts``) or of all."""

    __slots__ = ("accounts", "recorder", "session")

    def __init__(self, recorder: Recorder, accounts: Accounts) -> None:
        self.recorder, self.session = recorder, recorder.session
        self.accounts = accounts

    def add_key(self, account_id: int | None, name: str = "") -> tuple[ApiKey, str]:
        """A new key of one account (or of every account: None); (row, the key itself)."""
        if account_id is not None:
            self.accounts.get(account_id)
        key = KEY_PREFIX + secrets.token_urlsafe(32)
        row = ApiKey(account_id=account_id, name=name.strip(), key_hash=hash_key(key))
        self.session.add(row)
        self.session.flush()
        self.recorder.record(events.KEY_CREATED, "key", row.id, account_id, name=row.name,
                             all_accounts=account_id is None)
        return row, key

    def revoke_key(self, key_id: int) -> bool:
        """Revoke a key: requests with it get 401 from now on (a running ``serve`` that
        remembers it for its registrations, in another process, within
        ``http.auth.KEY_CACHE_SECONDS``). False when it was revoked."""
        row = self.session.get(ApiKey, key_id)
        if row is None:
            raise NotFound(f"no key {key_id}")
        if row.revoked_at is not None:
            return False
        row.revoked_at = utcnow()
        self.session.add(row)
        self.recorder.record(events.KEY_REVOKED, "key", row.id, row.account_id)
        return True

    def remember(self, scope: str, key: str, request_hash: str, status_code: int,
                 body: dict[str, Any]) -> None:
        """Keep an API answer for its ``Idempotency-Key`` (forgotten after a day by
        ``jobs.retention``); IntegrityError when another request kept one first."""
        self.session.add(IdempotencyKey(scope=scope, key=key, request_hash=request_hash,
                                        status_code=status_code, body=body))
        self.session.flush()

    def add_webhook(self, url: str, account_id: int | None,
                    event_types: Iterable[str] = (), *,
                    allow_private_networks: bool = False) -> Webhook:
        """Subscribe ``url`` to the events from now on (of one account, or of all: None).
        ``url`` must point outside (``destinations.check_url``; ``BadUrl`` otherwise) unless
        ``allow_private_networks`` (``[webhooks]``)."""
        try:
            destinations.check_url(url, allow_private=allow_private_networks)
        except destinations.Refused as exc:
            raise BadUrl(str(exc)) from None
        if account_id is not None:
            self.accounts.get(account_id)
        types = check_event_types(event_types) or None
        secret = SECRET_PREFIX + base64.b64encode(secrets.token_bytes(24)).decode()
        # From now on: the events committed so far are not sent (the feed has them).
        last = self.session.exec(select(func.max(Event.id))).one() or 0
        hook = Webhook(account_id=account_id, url=url.strip(), secret=secret,
                       event_types=types, cursor=last)
        self.session.add(hook)
        self.session.flush()
        self.recorder.record(events.WEBHOOK_CREATED, "webhook", hook.id, account_id, url=hook.url,
                             event_types=types)
        return hook

    def webhook(self, webhook_id: int) -> Webhook:
        hook = self.session.get(Webhook, webhook_id)
        if hook is None or hook.removed_at is not None:
            raise NotFound(f"no webhook {webhook_id}")
        return hook

    def remove_webhook(self, webhook_id: int) -> None:
        """Stop delivering to it (what was delivered stays listed)."""
        hook = self.webhook(webhook_id)
        hook.removed_at = utcnow()
        self.session.add(hook)
        self.recorder.record(events.WEBHOOK_REMOVED, "webhook", hook.id, hook.account_id,
                             url=hook.url)

    def redeliver(self, webhook_id: int, after: int) -> bool:
        """Send the subscription's events after event ``after`` again (those of its own
        account and types, as ever): its cursor moves back to ``after``, its wait and count
        of attempts are cleared. Only while no sender holds its lease (``Conflict``
        otherwise: try again in a moment), and the lease is cleared with it, so a sender
        whose lease ran out cannot move the cursor forward over it. False when the cursor
        was there already. Never forward: that would skip events (``Invalid``)."""
        hook = self.webhook(webhook_id)
        self.recorder.lock(hook)
        if after > hook.cursor:
            raise Invalid(f"after: {after} is past the subscription's cursor "
                          f"({hook.cursor}); it only moves back", "after")
        if after == hook.cursor:
            return False
        now = utcnow()
        moved = self.session.connection().execute(sa.update(_W).where(
            _W.c.id == webhook_id, _W.c.removed_at.is_(None),
            sa.or_(_W.c.lease_until.is_(None), _W.c.lease_until < now))
            .values(cursor=after, attempts=0, next_attempt_at=None, last_error=None,
                    lease_owner=None, lease_until=None)).rowcount
        if not moved:
            raise Conflict(f"webhook {webhook_id} is being delivered to right now; "
                           "try again in a moment")
        self.recorder.record(events.WEBHOOK_REDELIVERED, "webhook", webhook_id,
                             hook.account_id, after=after, cursor=hook.cursor)
        self.session.expire(hook)
        return True


def note_key_used(engine: Engine, key_id: int, seen: object) -> None:
    """Note that key ``key_id`` was used now, if what was ``seen`` stored (its
    ``last_used_at``) is older than ``KEY_USE_EVERY``: a conditional UPDATE in its own short
    transaction, outside the request's work, so most requests write nothing and two
    racing ones write once. Bookkeeping, not a change of the key: no audit event."""
    now = utcnow()
    if isinstance(seen, datetime) and db.aware(seen) > now - KEY_USE_EVERY:
        return
    try:
        with engine.begin() as conn:
            conn.execute(sa.update(_K).where(
                _K.c.id == key_id, sa.or_(_K.c.last_used_at.is_(None),
                                          _K.c.last_used_at < now - KEY_USE_EVERY))
                .values(last_used_at=now))
    except sa.exc.OperationalError:
        pass  # the database is busy or away: the request goes on, the next one notes it
