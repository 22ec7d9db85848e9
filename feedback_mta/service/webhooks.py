"""Sending committed events to the webhook subscriptions, signed as Standard Webhooks.

The event table is the outbox: an event is committed with the change it records, and each
subscription keeps a cursor, the last event it is done with. So nothing is queued twice,
nothing committed is missed, and order per subscription is the order of the event ids,
which is commit order (``actions.audit``). At least once: an event is POSTed until the
receiver answers 2xx; a crash between its 2xx and our note of it sends it once more, with
the same ``webhook-id``, which is how receivers deduplicate.

* Signing (https://www.standardwebhooks.com/, the ``standardwebhooks`` package):
  ``webhook-id`` (``evt_<event id>``), ``webhook-timestamp`` (Unix seconds) and
  ``webhook-signature: v1,<base64 HMAC-SHA256 of "{id}.{timestamp}.{body}">`` keyed with
  the base64-decoded part of the secret after ``whsec_``.
* Failure (a timeout, no connection, an answer that is not 2xx): the same event again
  after 1, 2, 4, ... seconds (at most ``[webhooks] max_backoff``); once it is older than
  ``retry_for`` it is ``failed`` (``webhook.failed``, a metric) and the next one goes. A
  subscription that is waiting holds back only itself.
* Who sends: any ``serve`` process. A subscription is worked on by one process at a time,
  which holds a lease on its row (a conditional UPDATE, as between nodes everywhere here).
  The process that commits an event wakes its own sender at once (an ``actions``
  listener); the others look every second.
* Never in the way: the senders are threads of their own with their own HTTP client, the
  work for a slow receiver waits in its own thread, and nothing here runs on the SMTP event
  loop or in a processing transaction.
* Hostile receivers (``client``, ``post``): an attempt has one deadline, ``[webhooks]
  timeout``, for all of it (resolving, connecting, TLS, sending, the answer), not httpx's
  per-read timeout that a receiver answering a byte every few seconds never trips; at most
  ``MAX_ANSWER_BYTES`` of an answer's body are read. A receiver that misses the deadline
  has failed that attempt and waits for its next (backoff), so it holds a thread for one
  deadline at most. Fairness between subscriptions: a subscription's turn ends after the
  event in hand once another is waiting (``SLICE_SECONDS``), and one account's
  subscriptions never take every thread (``per_account``). So a slow receiver delays
  another subscription's delivery by at most one deadline.
* Never inside: every address a URL's host resolves to is checked as the connection is
  made (``destinations``), and the connection goes to the address checked (no second
  lookup to rebind); no proxies from the environment, no redirects followed.
"""

from __future__ import annotations

import json
import os
import socket
import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpcore
import httpx
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, select
from standardwebhooks.webhooks import Webhook as Signer

from feedback_mta import counters, destinations, logs
from feedback_mta.actions import listen
from feedback_mta.actions.audit import unlisten
from feedback_mta.config import WebhooksConfig
from feedback_mta.queries import iso
from feedback_mta.queries.events import feed
from feedback_mta.runner import Runner
from feedback_mta.store import db
from feedback_mta.store.models import Event, Webhook, WebhookDelivery, table_of, utcnow

log = logs.get(__name__)

_W = table_of(Webhook)
#: How long a process may hold a subscription without renewing its lease.
LEASE_SECONDS = 60.0
#: How often a sender looks for work it was not woken for (other processes' events).
POLL_SECONDS = 1.0
#: At most this often, however many events commit: every commit wakes the sender, and a
#: look per commit cost a fifth of a busy API's CPU.
MIN_TICK_SECONDS = 0.05
#: Events read per round of one subscription.
BATCH = 100
#: Delivered events noted per transaction (one write for many: the intake writes too).
NOTE_EVERY = 20
USER_AGENT = "feedback-mta-webhooks/1"
#: At most this much of an answer's body is read (only its status matters); the rest is
#: left unread and the connection closed.
MAX_ANSWER_BYTES = 4096
#: No socket read asks for more than this (the headers and ``MAX_ANSWER_BYTES``).
READ_BYTES = 8192
#: A subscription's turn ends after the event in hand once another subscription waits and
#: the turn has lasted this long (so a busy fast one still sends in batches).
SLICE_SECONDS = 0.2


def body_of(item: dict[str, Any]) -> str:
    """The JSON body of one event, as signed and sent (compact, datetimes in ISO 8601)."""
    return json.dumps(item, ensure_ascii=False, separators=(",", ":"), default=_iso)


def _iso(value: Any) -> str:
    return (iso(value) or "") if isinstance(value, datetime) else str(value)


def signed_headers(secret: str, message_id: str, body: str,
                   now: datetime | None = None) -> dict[str, str]:
    now = now or datetime.now(UTC)
    return {"content-type": "application/json", "user-agent": USER_AGENT,
            "webhook-id": message_id, "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Signer(secret).sign(message_id, now, body)}


def backoff(attempts: int, cap: float) -> float:
    """Seconds before attempt ``attempts + 1``: 1, 2, 4, ... at most ``cap``."""
    return min(cap, 2.0 ** max(0, attempts - 1))


# --- the HTTP client: one deadline per attempt, public addresses only ----------------------

#: The deadline (``time.monotonic()``) of the attempt this thread is making, if any.
_attempt = threading.local()


def _within(timeout: float | None, expired: type[Exception]) -> float | None:
    """``timeout`` cut to what is left of this thread's attempt; ``expired`` when nothing
    is."""
    deadline: float | None = getattr(_attempt, "deadline", None)
    if deadline is None:
        return timeout
    left = deadline - time.monotonic()
    if left <= 0:
        raise expired("the attempt's deadline ([webhooks] timeout) passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    """A connection whose every read and write ends by the attempt's deadline."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self.inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self.inner.read(min(max_bytes, READ_BYTES),
                               _within(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.inner.write(buffer, _within(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self.inner.close()

    def start_tls(self, ssl_context: Any, server_hostname: str | None = None,
                  timeout: float | None = None) -> httpcore.NetworkStream:
        return _Stream(self.inner.start_tls(ssl_context, server_hostname,
                                            _within(timeout, httpcore.ConnectTimeout)))

    def get_extra_info(self, info: str) -> Any:
        return self.inner.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    """Connections made to the addresses checked: the host is resolved once, here, within
    the deadline; any address that is not public refuses the attempt (unless allowed);
    then the socket is opened to that address itself, so nothing resolves it again."""

    def __init__(self, allow_private: bool) -> None:
        self.allow_private = allow_private
        self.inner = httpcore.SyncBackend()

    def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                    local_address: str | None = None,
                    socket_options: Any = None) -> httpcore.NetworkStream:
        wait = _within(timeout, httpcore.ConnectTimeout)
        try:
            addresses = destinations.resolve(host, port, 30.0 if wait is None else wait)
        except OSError as exc:
            raise httpcore.ConnectError(f"{host}: {exc}") from None
        try:
            for address in addresses:
                destinations.check_address(address, host, allow_private=self.allow_private)
        except destinations.Refused as exc:
            raise httpcore.ConnectError(f"refused: {exc}") from None
        failed: Exception = httpcore.ConnectError(f"no address for {host}")
        for address in addresses:
            try:
                return _Stream(self.inner.connect_tcp(
                    str(address), port, timeout=_within(timeout, httpcore.ConnectTimeout),
                    local_address=local_address, socket_options=socket_options))
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failed = exc
        raise failed

    def connect_unix_socket(self, path: str, timeout: float | None = None,
                            socket_options: Any = None) -> httpcore.NetworkStream:
        raise httpcore.ConnectError("webhooks go over TCP only")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


def client(config: WebhooksConfig) -> httpx.Client:
    """The HTTP client webhooks are sent with: ``config.timeout`` for each attempt in all
    (``post``), public addresses only unless ``allow_private_networks``, no proxy from the
    environment, no redirects."""
    transport = httpx.HTTPTransport(trust_env=False)
    transport._pool = httpcore.ConnectionPool(
        ssl_context=httpx.create_ssl_context(), max_connections=100,
        max_keepalive_connections=20, keepalive_expiry=5.0,
        network_backend=_Backend(config.allow_private_networks))
    return httpx.Client(transport=transport, timeout=config.timeout, follow_redirects=False,
                        trust_env=False)


def post(client: httpx.Client, url: str, secret: str, item: dict[str, Any],
         message_id: str | None = None) -> tuple[int | None, str | None, float]:
    """POST one event: (status code or None, error or None, milliseconds). The whole
    attempt ends by the client's timeout (its read timeout, which ``client`` sets to
    ``[webhooks] timeout``); at most ``MAX_ANSWER_BYTES`` of the answer are read."""
    body = body_of(item)
    started = time.perf_counter()
    _attempt.deadline = time.monotonic() + (client.timeout.read or 10.0)
    try:
        with client.stream("POST", url, content=body.encode(), headers=signed_headers(
                secret, message_id or f"evt_{item['id']}", body)) as answer:
            read = 0
            for chunk in answer.iter_raw():
                read += len(chunk)
                if read >= MAX_ANSWER_BYTES:
                    break
            status = answer.status_code
    except httpx.HTTPError as exc:
        return None, f"{type(exc).__name__}: {exc}"[:500], _ms(started)
    finally:
        _attempt.deadline = None
    if 200 <= status < 300:
        return status, None, _ms(started)
    return status, f"HTTP {status}", _ms(started)


def _ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@dataclass(frozen=True)
class _Done:
    """One event done with: delivered, or failed for good."""

    item: dict[str, Any]
    attempts: int
    outcome: str
    status: int | None
    error: str | None
    ms: float


class Sender(Runner[int]):
    """Threads that each take a subscription id and send what is due to it."""

    name = "webhooks"

    def __init__(self, engine: Engine, config: WebhooksConfig, *, threads: int = 4) -> None:
        super().__init__(threads=threads)
        self.engine = engine
        #: Reads take no write lock (SQLite): the intake must never wait on a sender.
        self.reader = db.reader(engine)
        self.config = config
        self.owner = f"{socket.gethostname()}:{os.getpid()}:{id(self):x}"
        self.client = client(config)
        #: At most this many of one account's subscriptions are sent to at once, so the
        #: others always have a thread.
        self.per_account = max(1, threads - 1)
        self._wake = threading.Event()
        #: Subscriptions handed to a thread, with their account (None: every account).
        self._busy: dict[int, int | None] = {}
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._ticker = threading.Thread(target=self._tick, name="webhooks-tick", daemon=True)
        self.delivered = 0

    # --- the ticker: finds subscriptions with work, hands them to the threads -------------

    def start(self) -> None:
        listen(self._heard)
        super().start()
        self._ticker.start()

    def _heard(self, action: str, fields: dict[str, Any]) -> None:
        if "event_id" in fields:  # an audit event committed in this process
            self._wake.set()

    def _tick(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait(POLL_SECONDS)
            if self._stopping.wait(MIN_TICK_SECONDS):
                return
            self._wake.clear()
            try:
                due = self.due()
            except Exception:  # the database is away: look again next round
                log.exception("webhooks.error")
                continue
            for webhook_id, account_id in due:
                with self._lock:
                    if webhook_id in self._busy or sum(
                            1 for a in self._busy.values()
                            if a == account_id) >= self.per_account:
                        continue  # the account's share is taken: the next round
                    self._busy[webhook_id] = account_id
                self.put(webhook_id)

    def due(self) -> list[tuple[int, int | None]]:
        """Subscriptions (id, account) with an event after their cursor and no wait
        pending, the one furthest behind first."""
        now = utcnow()
        with self.reader.connect() as conn:
            last = conn.execute(sa.select(sa.func.max(table_of(Event).c.id))).scalar() or 0
            return [(row[0], row[1]) for row in conn.execute(sa.select(
                _W.c.id, _W.c.account_id).where(
                _W.c.removed_at.is_(None), _W.c.cursor < last,
                sa.or_(_W.c.next_attempt_at.is_(None), _W.c.next_attempt_at <= now),
                sa.or_(_W.c.lease_until.is_(None), _W.c.lease_until < now,
                       _W.c.lease_owner == self.owner)).order_by(_W.c.cursor))]

    def stop(self, *, drain: bool = False, timeout: float | None = None) -> list[int]:
        unlisten(self._heard)
        self._stopping.set()
        self._wake.set()
        self._ticker.join(timeout)
        dropped = super().stop(drain=drain, timeout=timeout)
        self.client.close()
        return dropped

    # --- one subscription -------------------------------------------------------------------

    def run_batch(self, batch: list[int]) -> None:
        for webhook_id in batch:
            try:
                if self._claim(webhook_id):
                    try:
                        self.send_due(webhook_id)
                    finally:
                        self._release(webhook_id)
            finally:
                with self._lock:
                    self._busy.pop(webhook_id, None)
                self._wake.set()  # what waited for this thread (or this one, for its turn)

    def _claim(self, webhook_id: int) -> bool:
        now = utcnow()
        with self.engine.begin() as conn:
            return bool(conn.execute(sa.update(_W).where(
                _W.c.id == webhook_id, _W.c.removed_at.is_(None),
                sa.or_(_W.c.lease_until.is_(None), _W.c.lease_until < now,
                       _W.c.lease_owner == self.owner))
                .values(lease_owner=self.owner,
                        lease_until=now + timedelta(seconds=LEASE_SECONDS))).rowcount)

    def _release(self, webhook_id: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(_W).where(_W.c.id == webhook_id,
                                             _W.c.lease_owner == self.owner)
                         .values(lease_owner=None, lease_until=None))

    def send_due(self, webhook_id: int) -> None:
        """Send the subscription's events in order until it is caught up, one fails (and
        waits for its next attempt), we stop, or the lease would run out."""
        began = time.monotonic()
        until = began + LEASE_SECONDS / 2
        while not self._stopping.is_set() and time.monotonic() < until:
            with Session(self.reader) as session:
                hook = session.get(Webhook, webhook_id)
                if hook is None or hook.removed_at is not None:
                    return
                # Read first: every event up to it is committed (ids follow commit order),
                # so when none of them is for this subscription, the cursor may skip them.
                last = session.exec(select(sa.func.max(Event.id))).one() or hook.cursor
                items = feed(session, after=hook.cursor, limit=BATCH,
                             types=hook.event_types or (), account=hook.account_id)
                url, secret, attempts = hook.url, hook.secret, hook.attempts
            if not items:  # none of the new events is for it
                self._advance(webhook_id, last)
                return
            done: list[_Done] = []
            try:
                for item in items:
                    if self._stopping.is_set():
                        return
                    status, error, ms = post(self.client, url, secret, item)
                    attempts += 1
                    if error is None:
                        done.append(_Done(item, attempts, "delivered", status, None, ms))
                        attempts = 0
                        if len(done) >= NOTE_EVERY:
                            self._done(webhook_id, done)
                        if self._turn_over(began):
                            return
                        continue
                    self._done(webhook_id, done)
                    if not self._retry(webhook_id, item, attempts, status, error, ms):
                        attempts = 0
                        continue  # given up on this one: the next goes
                    return
            finally:
                self._done(webhook_id, done)

    def _turn_over(self, began: float) -> bool:
        """Another subscription waits for a thread and this one has had its slice."""
        return not self._queue.empty() and time.monotonic() - began >= SLICE_SECONDS

    def _advance(self, webhook_id: int, cursor: int) -> None:
        with self.engine.begin() as conn:
            conn.execute(sa.update(_W).where(_W.c.id == webhook_id, _W.c.cursor < cursor,
                                             _W.c.lease_owner == self.owner)
                         .values(cursor=cursor))

    def _done(self, webhook_id: int, done: list[_Done]) -> None:
        """These events are delivered (or failed for good): note them and move the cursor
        past the last, in one transaction (a crash before it sends them again: at least
        once). ``done`` is emptied."""
        if not done:
            return
        with Session(self.engine) as session:
            session.add_all(WebhookDelivery(
                webhook_id=webhook_id, event_id=d.item["id"], attempt=d.attempts,
                outcome=d.outcome, status_code=d.status, error=d.error, duration_ms=d.ms)
                for d in done)
            session.execute(sa.update(_W).where(_W.c.id == webhook_id,
                                                _W.c.lease_owner == self.owner)
                            .values(cursor=done[-1].item["id"], attempts=0,
                                    next_attempt_at=None, last_error=done[-1].error))
            session.commit()
        for d in done:
            counters.WEBHOOKS.labels(d.outcome).inc()
            if d.outcome == "delivered":
                self.delivered += 1
                log.info("webhook.delivered", webhook_id=webhook_id, event_id=d.item["id"],
                         type=d.item["type"], status=d.status, attempt=d.attempts,
                         duration_ms=d.ms)
            else:
                log.error("webhook.failed", webhook_id=webhook_id, event_id=d.item["id"],
                          type=d.item["type"], attempts=d.attempts, error=d.error)
        done.clear()

    def _retry(self, webhook_id: int, item: dict[str, Any], attempts: int,
               status: int | None, error: str, ms: float) -> bool:
        """Note a failed attempt; True when the event waits for another, False when it is
        older than ``retry_for`` and was marked failed."""
        created: datetime = item["created_at"]
        if created.tzinfo is None:
            created = created.replace(tzinfo=UTC)
        if utcnow() - created > timedelta(seconds=self.config.retry_for):
            self._done(webhook_id, [_Done(item, attempts, "failed", status, error, ms)])
            return False
        wait = backoff(attempts, self.config.max_backoff)
        with Session(self.engine) as session:
            session.add(WebhookDelivery(webhook_id=webhook_id, event_id=item["id"],
                                        attempt=attempts, outcome="retrying",
                                        status_code=status, error=error, duration_ms=ms))
            session.execute(sa.update(_W).where(_W.c.id == webhook_id,
                                                _W.c.lease_owner == self.owner)
                            .values(attempts=attempts, last_error=error,
                                    next_attempt_at=utcnow() + timedelta(seconds=wait)))
            session.commit()
        counters.WEBHOOKS.labels("retrying").inc()
        log.warning("webhook.retrying", webhook_id=webhook_id, event_id=item["id"],
                    type=item["type"], attempt=attempts, error=error, retry_in=wait)
        return True


def send_test(client: httpx.Client, hook: Webhook) -> dict[str, Any]:
    """``webhook test``: one signed ``webhook.test`` message now, outside the order (it is
    not an event); what the receiver answered."""
    item = {"id": 0, "type": "webhook.test", "created_at": utcnow(),
            "data": {"webhook_id": hook.id}}
    status, error, ms = post(client, hook.url, hook.secret, item,
                             message_id=f"test_{uuid.uuid4().hex}")
    return {"id": hook.id, "url": hook.url, "ok": error is None, "status_code": status,
            "error": error, "duration_ms": ms}

