"""After the intake: parse -> classify -> the handler for that kind -> actions -> final state.

(What arrived over HTTP, a one-click unsubscribe or a provider's event, is read by its
``reading.hooks`` module instead of parse and classify; the rest is the same.)

``reading.parse`` reads the stored bytes; ``reading.classify`` asks the report ``formats``
(ARF, DSN, ...) and the box the mail reached; ``handlers.registry`` sends each kind to its
module (``complaint``, ``bounce``, ``unsubscribe``, ``reply``), which finds its contact or
lead (``attribution``, tokens) and changes it only through ``actions``.

``process_batch`` takes stored messages from ``received`` to ``processed``, ``ignored`` or
``failed``, each exactly once (``Processor`` feeds it what the intake committed, up to 64 at
a time; ``process_one`` is a batch of one):

* parse and classify are pure and run before the transaction; the claim (``UPDATE ...
  WHERE state = 'received'``), the handlers' changes and the final states are one
  transaction, one commit for the batch. A crash anywhere rolls all of it back, so the
  messages are still ``received`` and are processed on the next start (or by another
  node's sweep).
* In the same transaction ``dedupe_key`` is set to the content hash; its unique index
  makes the second copy of a message (delivered twice, through two relays, to two nodes)
  end ``ignored`` with reason ``duplicate`` and ``duplicate_of`` the first.
* A handler's error rolls back its own changes only and leaves that message ``failed``
  with the error, kept for ``feedback-mta inbox retry``; its neighbours in the batch are
  unaffected. Handlers first run without SAVEPOINTs (they cost a sixth of the processing);
  when one raises, the transaction rolls back and the batch runs again with a SAVEPOINT
  around each handler.

One canonical ``message.processed`` log line per message: id, kind, state, reason, duration,
batch size.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from feedback_mta import counters, logs
from feedback_mta.actions import Actor, AuditedSession, UnitOfWork
from feedback_mta.actions.contacts import preload_contacts
from feedback_mta.addresses import AddressBook
from feedback_mta.handlers import reply
from feedback_mta.handlers.attribution import named_contacts, reported_addresses
from feedback_mta.handlers.base import NO_ACTION, HandlerContext, Outcome, Settings
from feedback_mta.handlers.registry import HANDLERS
from feedback_mta.reading import hooks
from feedback_mta.reading.classify import Classification, Kind, classify
from feedback_mta.reading.parse import ParsedMessage, parse
from feedback_mta.runner import Runner
from feedback_mta.store import db
from feedback_mta.store.models import InboundMessage, MessageState, table_of, utcnow

log = logs.get(__name__)

_T = table_of(InboundMessage)


def _actor(parsed: ParsedMessage, provider: str | None) -> Actor:
    """Who acts: the mail's sender, or for HTTP the provider (``http:mailgun``, by way of
    ``mailgun``; a one-click unsubscribe by way of ``one-click``)."""
    if provider is not None:
        return Actor(f"http:{provider}", provider)
    sender = parsed.from_address or parsed.mail_from or "unknown"
    return Actor(f"email:{sender}", "email")


MailSink = Callable[[list[int]], None]
#: Told of each finished message: its kind, final state and seconds (for the metrics).
Counter = Callable[[str, str, float], None]


def count(kind: str, state: str, seconds: float) -> None:
    """A finished message in this process's metrics (``serve``'s own, or relayed to it
    from the processing process)."""
    counters.PROCESSED.labels(kind, state).inc()
    counters.PROCESS_SECONDS.observe(seconds)

#: Prepared once: building a statement costs more than running it (the profile said so).
_LOAD = (sa.select(_T.c.id, _T.c.raw, _T.c.mail_from, _T.c.rcpt_tos, _T.c.content_hash,
                   _T.c.provider)
         .where(db.one_of(_T.c.id, "ids"), _T.c.state == MessageState.RECEIVED))
_CLAIM = (sa.update(_T).where(db.one_of(_T.c.id, "ids"), _T.c.state == MessageState.RECEIVED)
          .values(attempts=_T.c.attempts + 1).returning(_T.c.id))
_UNCLAIM = sa.update(_T).where(db.one_of(_T.c.id, "ids")).values(attempts=_T.c.attempts - 1)
_KNOWN = sa.select(_T.c.dedupe_key, _T.c.id).where(db.one_of(_T.c.dedupe_key, "keys"))
#: The final state, and the content hash as ``dedupe_key`` of a message that is not a copy
#: (None for a copy, whose key stays unset).
_FINISH = sa.update(_T).where(_T.c.id == sa.bindparam("b_id")).values(
    dedupe_key=sa.bindparam("b_key"),
    state=sa.bindparam("b_state"), reason=sa.bindparam("b_reason"),
    kind=sa.bindparam("b_kind"), error=sa.bindparam("b_error"),
    duplicate_of=sa.bindparam("b_dup"), processed_at=sa.bindparam("b_at"))


@dataclass
class _Work:
    """One message through the batch: the pure decisions first, then its outcome."""

    id: int
    content_hash: str
    #: Who posted it over HTTP (``reading.hooks``); None for mail.
    provider: str | None = None
    parsed: ParsedMessage | None = None
    classification: Classification | None = None
    kind: Kind | None = None
    #: Why parse or classify failed (the message ends ``failed`` with it).
    problem: str | None = None
    #: The error the message ends with: ``problem``, or its handler's.
    error: str | None = None
    duplicate_of: int | None = None
    outcome: Outcome | None = None
    uow: UnitOfWork | None = None
    #: Its genuine tokens' contacts, best first (``attribution.named_contacts``).
    named: tuple[tuple[str, int], ...] = ()
    #: Without those, the reported recipients' (account, address) to read
    #: (``attribution.reported_addresses``).
    reported: tuple[tuple[int, str], ...] = ()
    #: The lead a reply names (``reply.named_lead``), read with the batch's.
    lead: int | None = None


def _decide(row, book: AddressBook, settings: Settings) -> _Work:
    """parse -> classify: pure, before any lock is taken; an error fails only this message."""
    work = _Work(row.id, row.content_hash, row.provider)
    try:
        rcpt_tos = tuple(row.rcpt_tos)
        if row.provider is not None:
            work.parsed, work.classification = hooks.decide(
                row.provider, row.raw, book.resolve_all(rcpt_tos))
        else:
            work.parsed = parse(row.raw, row.mail_from, rcpt_tos)
            work.classification = classify(work.parsed, book.resolve_all(rcpt_tos))
        work.kind = work.classification.kind
        work.lead = reply.named_lead(work.classification)
        work.named = named_contacts(work.classification, book)
        if not work.named:
            work.reported = reported_addresses(work.classification, book, settings)
    except Exception as exc:
        work.problem = f"{type(exc).__name__}: {exc}"[:2000]
    return work


def process_one(engine: Engine, book: AddressBook, message_id: int,
                settings: Settings = Settings(), on_mail: MailSink | None = None
                ) -> Outcome | None:
    """Process one stored message; None when it was not ``received`` (someone else has it)."""
    return process_batch(engine, book, [message_id], settings, on_mail).get(message_id)


def process_batch(engine: Engine, book: AddressBook, message_ids: Sequence[int],
                  settings: Settings = Settings(), on_mail: MailSink | None = None,
                  counter: Counter = count) -> dict[int, Outcome]:
    """Process stored messages, several per transaction: {id: outcome} for those that were
    ours (``received``; another thread or node may have had the rest).

    One commit (one fsync) serves several messages, the way the intake's group commit
    serves concurrent sessions. A transaction ends early when another writer of this
    process (the intake, whose sessions wait for their 250, when processors run in its
    process) is queued for the lock, or after ``TRANSACTION_SECONDS``, which bounds the
    wait of ``serve``'s intake behind the processing process (a signal across processes
    bought nothing measurable): batching must not make the 250s wait. A handler's error
    rolls back that message's changes only and leaves it ``failed`` (``_handle``); a
    database error rolls back the transaction, whose messages stay
    ``received`` for the next sweep. Mail the handlers queued goes to ``on_mail`` once
    committed.
    """
    started = time.perf_counter()
    with db.reading(engine) as conn:
        rows = conn.execute(_LOAD, {"ids": list(message_ids)}).all()
    pending = [_decide(row, book, settings) for row in rows]
    outcomes: dict[int, Outcome] = {}
    one_each = savepoints = False
    while pending:
        try:
            done, pending = _act(engine, book, pending, settings, one_each, savepoints)
        except _HandlerRaised:
            savepoints = True  # all of it rolled back: again, each handler in a SAVEPOINT
            continue
        except IntegrityError:
            # Another node committed one of these contents between our look and our
            # write: again, one message per transaction, and that one is the duplicate.
            if not one_each:
                one_each = True
                continue
            done, pending = _finish_duplicate(engine, pending[0]), pending[1:]
        _report(done, started, len(rows), on_mail, counter)
        outcomes.update((work.id, work.outcome) for work in done if work.outcome is not None)
    return outcomes


#: A processing transaction holds SQLite's write lock; past this, it commits and the next
#: one starts, so a session's 250 never waits long behind a batch. (PostgreSQL's intake
#: does not wait on the processors: a batch there is one transaction, however long.)
TRANSACTION_SECONDS = 0.01
#: What one SQLite transaction claims (and reads the contacts of) of a batch: about what it
#: handles within ``TRANSACTION_SECONDS``. Claiming a batch of ``MAX_BATCH`` each time, to
#: hand back all but a few at the deadline, held the write lock longer for nothing.
SQLITE_CLAIM = 16


class _HandlerRaised(Exception):
    """A handler raised in a transaction without SAVEPOINTs: roll it all back, run again."""


def _act(engine: Engine, book: AddressBook, batch: list[_Work], settings: Settings,
         one_each: bool = False, savepoints: bool = True) -> tuple[list[_Work], list[_Work]]:
    """Claim, deduplicate, handle and finish messages from the front of ``batch`` in one
    transaction; (those done, the rest, for the next transaction)."""
    with AuditedSession(engine, expire_on_commit=False) as session:
        # The batch's own statements are Core ones, run on the session's connection: the
        # ORM's execute path (for ORM statements) cost as much as the statements.
        conn = session.connection()
        later: list[_Work] = []
        if one_each:
            batch, later = batch[:1], batch[1:]
        elif engine.dialect.name == "sqlite":
            batch, later = batch[:SQLITE_CLAIM], batch[SQLITE_CLAIM:]
        claimed = set(conn.execute(_CLAIM, {"ids": [w.id for w in batch]}).scalars())
        # ``dedupe_key`` (unique) is the content hash of the message that acted; a copy,
        # stored earlier or earlier in this batch, ends ``ignored``/``duplicate``.
        known = dict(conn.execute(
            _KNOWN, {"keys": sorted({w.content_hash for w in batch})}).all())
        mine = [w for w in batch if w.id in claimed]
        preload_contacts(session, (w.named[0][1] for w in mine if w.named),
                         (pair for w in mine for pair in w.reported))
        reply.preload(session, ((w.lead, w.parsed) for w in mine
                                if w.lead is not None and w.parsed is not None))
        deadline = time.monotonic() + (TRANSACTION_SECONDS if engine.dialect.name == "sqlite"
                                       else float("inf"))
        done: list[_Work] = []
        rest: list[_Work] = []
        for index, work in enumerate(batch):
            if done and (time.monotonic() > deadline or db.writers_waiting(engine)):
                rest = batch[index:]
                break
            if work.id not in claimed:
                continue  # not ``received`` any more: someone else has it
            work.uow, work.error = None, work.problem
            work.duplicate_of = known.setdefault(work.content_hash, work.id)
            if work.duplicate_of == work.id:
                work.duplicate_of = None
            work.outcome = _handle(session, book, work, settings, savepoints)
            done.append(work)
        if unclaim := [w.id for w in rest if w.id in claimed]:
            conn.execute(_UNCLAIM, {"ids": unclaim})  # the next transaction claims them
        if done:
            now = utcnow()
            assert all(w.outcome is not None for w in done)
            conn.execute(_FINISH, [{
                "b_id": w.id, "b_key": w.content_hash if w.duplicate_of is None else None,
                "b_state": w.outcome.state.value,  # type: ignore[union-attr]
                "b_reason": None if w.error else w.outcome.reason,  # type: ignore[union-attr]
                "b_kind": w.kind.value if w.kind else None, "b_error": w.error,
                "b_dup": w.duplicate_of, "b_at": now} for w in done])
        session.commit()
    return done, rest + later


def _report(done: list[_Work], started: float, batch: int, on_mail: MailSink | None,
            counter: Counter) -> None:
    """After the commit: each message's log line and metrics, its actions' logs, its mail."""
    seconds = time.perf_counter() - started
    for work in done:
        if work.uow is not None:
            work.uow.recorder.emit_logs()
            if work.uow.recorder.queued_mail and on_mail is not None:
                on_mail(work.uow.recorder.queued_mail)
        kind = work.kind.value if work.kind else "unknown"
        outcome = work.outcome
        assert outcome is not None
        if outcome.state is MessageState.FAILED:
            log.error("message.failed", id=work.id, kind=work.kind, error=(work.error or "")[:300])
        counter(kind, outcome.state.value, seconds)
        log.info("message.processed", id=work.id, kind=work.kind,
                 state=outcome.state.value, reason=outcome.reason,
                 duration_ms=round(seconds * 1000, 2), batch=batch)


def _handle(session: Session, book: AddressBook, work: _Work, settings: Settings,
            savepoint: bool) -> Outcome:
    """Run the message's handler. In a SAVEPOINT, its error fails this message alone;
    without one (``savepoint`` False, the usual first try), its error raises
    ``_HandlerRaised`` and the caller rolls the whole transaction back. Its changes are
    flushed here either way, so a constraint they break is this handler's error."""
    if work.duplicate_of is not None:
        return Outcome(MessageState.IGNORED, "duplicate")
    if work.error is not None:
        return Outcome(MessageState.FAILED, work.error)
    assert work.parsed is not None and work.classification is not None  # no error: decided
    handler = HANDLERS.get(work.classification.kind)
    if handler is None:
        return NO_ACTION
    uow = UnitOfWork(session, _actor(work.parsed, work.provider),
                     inbound_message_id=work.id)
    ctx = HandlerContext(work.id, work.parsed, work.classification, uow, book, settings,
                         work.named)
    try:
        if savepoint:
            with session.begin_nested():
                outcome = handler(ctx)
        else:
            outcome = handler(ctx)
            session.flush()
    except sa.exc.OperationalError:
        raise  # the database, not the message: the batch stays ``received``
    except Exception as exc:
        if not savepoint:
            raise _HandlerRaised from exc
        uow.recorder.discard()
        work.error = f"{type(exc).__name__}: {exc}"[:2000]
        return Outcome(MessageState.FAILED, work.error)
    work.uow = uow
    return outcome


def _finish_duplicate(engine: Engine, work: _Work) -> list[_Work]:
    """A lone message whose content another node committed meanwhile: ``duplicate``."""
    with engine.begin() as conn:
        original = conn.execute(_KNOWN, {"keys": [work.content_hash]}).first()
        work.duplicate_of = original.id if original else None
        work.outcome = Outcome(MessageState.IGNORED, "duplicate")
        done = conn.execute(
            sa.update(_T).where(_T.c.id == work.id, _T.c.state == MessageState.RECEIVED)
            .values(state=MessageState.IGNORED.value, reason="duplicate",
                    kind=work.kind.value if work.kind else None, processed_at=utcnow(),
                    duplicate_of=work.duplicate_of, attempts=_T.c.attempts + 1)).rowcount
    return [work] if done else []


def received_ids(engine: Engine, limit: int = 10000) -> list[int]:
    with db.reading(engine) as conn:
        return list(conn.execute(
            sa.select(_T.c.id).where(_T.c.state == MessageState.RECEIVED)
            .order_by(_T.c.id).limit(limit)).scalars())


class Sweeper(Protocol):
    """What serve's parts ask of the processors, in this process or the processing one."""

    def submit(self, ids: list[int]) -> None: ...

    def sweep(self) -> int: ...


#: A batch grows only while processing is behind; then each of its statements serves up to
#: this many messages (on PostgreSQL about ten round trips a batch: 16 left them a third
#: of a message's time there). On SQLite a transaction takes ``SQLITE_CLAIM`` of them.
MAX_BATCH = 64


class Processor(Runner[int]):
    """Threads that process stored messages, fed by the intake and the sweep. ``stop``
    drops what is queued: those messages stay ``received`` and the next start (or another
    node's sweep) processes them."""

    name = "processor"

    def __init__(self, engine: Engine, book: AddressBook, workers: int = 1,
                 settings: Settings = Settings(), on_mail: MailSink | None = None,
                 max_batch: int = MAX_BATCH, counter: Counter = count) -> None:
        super().__init__(threads=workers, max_batch=max_batch)
        self._engine = engine
        self._book = book
        self._settings = settings
        self._on_mail = on_mail
        self._counter = counter
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self.processed = 0

    def submit(self, ids: Iterable[int]) -> None:
        with self._lock:
            for message_id in ids:
                if message_id not in self._pending:
                    self._pending.add(message_id)
                    self.put(message_id)

    def sweep(self) -> int:
        """Queue every stored message still ``received`` (crash recovery, other nodes, retries)."""
        ids = received_ids(self._engine)
        self.submit(ids)
        return len(ids)

    def stop(self, *, drain: bool = False, timeout: float | None = None) -> list[int]:
        """Finish the batch in hand and stop; what is still queued stays ``received``."""
        with self._lock:
            self._pending.clear()
        return super().stop(drain=drain, timeout=timeout)

    def run_batch(self, batch: list[int]) -> None:
        try:
            process_batch(self._engine, self._book, batch, self._settings, self._on_mail,
                          self._counter)
            self.processed += len(batch)
        finally:
            with self._lock:
                self._pending.difference_update(batch)

    def failed(self, batch: list[int], exc: Exception) -> None:
        # The database, not the messages: they stay received; the sweep retries them.
        log.exception("message.process_error", ids=batch)
