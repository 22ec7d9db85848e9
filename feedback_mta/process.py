"""After the intake: parse -> classify -> the handler for that kind -> actions -> final state.

``parse`` reads the stored bytes; ``classify`` asks the report ``formats`` (ARF, DSN, ...)
and the box the mail reached; ``HANDLERS`` below sends each kind to its module (``complaint``,
``bounce``, ``unsubscribe``, ``reply``), which finds its contact or lead (``attribution``,
tokens) and changes it only through ``actions``.

``process_one`` takes one stored message from ``received`` to ``processed``, ``ignored`` or
``failed``, exactly once:

* The claim (``UPDATE ... WHERE state = 'received'``), the handler's changes and the final
  state are one transaction. A crash anywhere rolls all of it back, so the message is
  still ``received`` and is processed on the next start (or by another node's sweep).
* In the same transaction ``dedupe_key`` is set to the content hash; its unique index
  makes the second copy of a message (delivered twice, through two relays, to two nodes)
  fail to claim, and that copy ends ``ignored`` with reason ``duplicate``.
* A handler error rolls back its changes and leaves the message ``failed`` with the error,
  kept for ``feedback-mta inbox retry``.

One canonical ``message.processed`` log line per message: id, kind, state, reason, duration.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Callable, Iterable

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from feedback_mta import bounce, complaint, db, logs, metrics, reply, unsubscribe
from feedback_mta.actions import Actions, Actor
from feedback_mta.addresses import AddressBook
from feedback_mta.classify import Classification, Kind, classify
from feedback_mta.handler import NO_ACTION, Handler, HandlerContext, Outcome, Settings
from feedback_mta.models import InboundMessage, MessageState, utcnow
from feedback_mta.parse import ParsedMessage, parse

log = logs.get("feedback_mta.process")

_T = InboundMessage.__table__


def _no_action(_ctx: HandlerContext) -> Outcome:
    return NO_ACTION


#: The handler for each kind. Kinds without a handler yet are stored and end ``ignored``
#: (``no action``): kept, visible in ``inbox list``, and re-processable once one exists.
HANDLERS: dict[Kind, Handler] = {
    Kind.COMPLAINT: complaint.handle,
    Kind.BOUNCE: bounce.handle,
    Kind.UNSUBSCRIBE: unsubscribe.handle,
    Kind.REPLY: reply.handle,
    # A report format that says "auto_reply" read a delivery notice (DSN "delivered", SES).
    Kind.AUTO_REPLY: lambda ctx: Outcome(
        MessageState.IGNORED,
        "delivery report" if ctx.classification.report is not None else "auto-reply"),
}


class _Duplicate(Exception):
    pass


def _actor(parsed: ParsedMessage) -> Actor:
    sender = parsed.from_address or parsed.mail_from or "unknown"
    return Actor(f"email:{sender}", "email")


MailSink = Callable[[list[int]], None]


def process_one(engine: Engine, book: AddressBook, message_id: int,
                settings: Settings = Settings(), on_mail: MailSink | None = None
                ) -> Outcome | None:
    """Process one stored message; None when it was not ``received`` (someone else has it).

    Mail the handler queued (acknowledgements) goes to ``on_mail`` once committed."""
    started = time.perf_counter()
    with db.reader(engine).connect() as conn:
        row = conn.execute(
            sa.select(_T.c.raw, _T.c.mail_from, _T.c.rcpt_tos, _T.c.content_hash, _T.c.state)
            .where(_T.c.id == message_id)).first()
    if row is None or row.state != MessageState.RECEIVED:
        return None

    kind: Kind | None = None
    try:
        rcpt_tos = tuple(json.loads(row.rcpt_tos))
        parsed = parse(row.raw, row.mail_from, rcpt_tos)
        classification = classify(parsed, book.resolve_all(rcpt_tos))
        kind = classification.kind
        outcome = _act(engine, book, message_id, row.content_hash, parsed, classification,
                       settings, on_mail)
    except _Duplicate:
        outcome = _finish_duplicate(engine, message_id, row.content_hash, kind)
    except sa.exc.OperationalError:
        # The database, not the message: leave it ``received`` for the next sweep.
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:2000]
        outcome = _finish(engine, message_id, MessageState.FAILED, kind, error=error)
        log.error("message.failed", id=message_id, kind=kind, error=error[:300])
    if outcome is None:
        return None
    seconds = time.perf_counter() - started
    metrics.PROCESSED.labels(kind.value if kind else "unknown", outcome.state.value).inc()
    metrics.PROCESS_SECONDS.observe(seconds)
    log.info("message.processed", id=message_id, kind=kind, state=outcome.state.value,
             reason=outcome.reason, duration_ms=round(seconds * 1000, 2))
    return outcome


def _act(engine: Engine, book: AddressBook, message_id: int, content_hash: str,
         parsed: ParsedMessage, classification: Classification, settings: Settings,
         on_mail: MailSink | None) -> Outcome | None:
    with Session(engine, expire_on_commit=False) as session:
        claimed = session.execute(
            sa.update(_T).where(_T.c.id == message_id, _T.c.state == MessageState.RECEIVED)
            .values(attempts=_T.c.attempts + 1)).rowcount
        if not claimed:
            session.rollback()
            return None
        try:
            session.execute(sa.update(_T).where(_T.c.id == message_id)
                            .values(dedupe_key=content_hash))
        except IntegrityError:
            session.rollback()
            raise _Duplicate from None
        actions = Actions(session, _actor(parsed), inbound_message_id=message_id)
        ctx = HandlerContext(message_id, parsed, classification, actions, book, settings)
        outcome = HANDLERS.get(classification.kind, _no_action)(ctx)
        session.execute(sa.update(_T).where(_T.c.id == message_id).values(
            state=outcome.state.value, reason=outcome.reason, kind=classification.kind.value,
            processed_at=utcnow(), error=None))
        session.commit()
        actions.emit_logs()
        if actions.queued_mail and on_mail is not None:
            on_mail(actions.queued_mail)
        return outcome


def _finish(engine: Engine, message_id: int, state: MessageState, kind: Kind | None, *,
            reason: str | None = None, error: str | None = None,
            duplicate_of: int | None = None) -> Outcome | None:
    with engine.begin() as conn:
        done = conn.execute(
            sa.update(_T).where(_T.c.id == message_id, _T.c.state == MessageState.RECEIVED)
            .values(state=state.value, reason=reason, error=error,
                    kind=kind.value if kind else None, processed_at=utcnow(),
                    duplicate_of=duplicate_of, attempts=_T.c.attempts + 1)).rowcount
    return Outcome(state, reason or error) if done else None


def _finish_duplicate(engine: Engine, message_id: int, content_hash: str,
                      kind: Kind | None) -> Outcome | None:
    with db.reader(engine).connect() as conn:
        original = conn.execute(sa.select(_T.c.id).where(_T.c.dedupe_key == content_hash)
                                ).scalar()
    return _finish(engine, message_id, MessageState.IGNORED, kind, reason="duplicate",
                   duplicate_of=original)


def received_ids(engine: Engine, limit: int = 10000) -> list[int]:
    with db.reader(engine).connect() as conn:
        return list(conn.execute(
            sa.select(_T.c.id).where(_T.c.state == MessageState.RECEIVED)
            .order_by(_T.c.id).limit(limit)).scalars())


_STOP = object()


class Processor:
    """Worker threads that process stored messages, fed by the intake and the sweep."""

    def __init__(self, engine: Engine, book: AddressBook, workers: int = 1,
                 settings: Settings = Settings(), on_mail: MailSink | None = None) -> None:
        self._engine = engine
        self._book = book
        self._settings = settings
        self._on_mail = on_mail
        self._queue: queue.Queue = queue.Queue()
        self._pending: set[int] = set()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, name=f"processor-{i}", daemon=True)
                         for i in range(workers)]
        self.processed = 0

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        return all(thread.is_alive() for thread in self._threads)

    def submit(self, ids: Iterable[int]) -> None:
        with self._lock:
            for message_id in ids:
                if message_id not in self._pending:
                    self._pending.add(message_id)
                    self._queue.put(message_id)

    def sweep(self) -> int:
        """Queue every stored message still ``received`` (crash recovery, other nodes, retries)."""
        ids = received_ids(self._engine)
        self.submit(ids)
        return len(ids)

    def stop(self) -> None:
        """Finish the message in hand and stop; what is still queued stays ``received``."""
        with self._lock:
            while True:
                try:
                    self._queue.get_nowait()
                except queue.Empty:
                    break
            self._pending.clear()
        for _ in self._threads:
            self._queue.put(_STOP)
        for thread in self._threads:
            thread.join()

    def _run(self) -> None:
        for item in iter(self._queue.get, _STOP):
            try:
                process_one(self._engine, self._book, item, self._settings, self._on_mail)
                self.processed += 1
            except Exception:  # database gone: it stays received; the sweep retries it
                log.exception("message.process_error", id=item)
            finally:
                with self._lock:
                    self._pending.discard(item)
