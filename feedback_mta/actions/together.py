"""Units of work committed together: the API's registrations (``POST /v1/leads``,
``POST /v1/contacts``), as the intake commits mail.

A request hands what makes its work (``Prepare``: the checks and reads that need no
transaction, such as reading a lead's comments for its score) to ``Together.run`` and
awaits it. One writer thread takes everything queued, prepares each request's work
(outside any transaction: a slow one holds no lock), begins one transaction, runs each
request's work (what it does in its unit of work, and the answer it makes of it) in a
SAVEPOINT of its own, with a ``UnitOfWork`` of its own (its actor, its recorder), and
commits once: one fsync for all of them. A request whose work raised is rolled back to its
SAVEPOINT alone, its recorder forgets its events and its spam counts
(``Recorder.discard``), and it is answered its own error; the others commit. Only when the
commit returned is anyone answered, so nothing answered is lost (the store-then-answer
rule of the intake). A commit that failed is tried again one request at a time, so a
request whose rows break the commit fails alone. What arrives meanwhile is the next batch.

The SAVEPOINTs are taken only when needed: a batch runs first without them, and only if
one request's work raised is the transaction rolled back and the batch run again, each
request in its SAVEPOINT. A SAVEPOINT and its release were a fifth of a registration's
time on the writer (and two round trips on PostgreSQL), and a work that raises is rare:
what a request can be refused for without the database (its fields) is checked before,
in its ``Prepare``.

On SQLite sixteen connections queued on the one write lock, an fsync each; on PostgreSQL
each registration was a transaction that took the event lock and the platform's count
rows (``learning``) for its commit. Now one transaction does both for a batch.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from feedback_mta import logs
from feedback_mta.actions import AuditedSession, UnitOfWork, unit_of_work
from feedback_mta.actions.accounts import remember_accounts
from feedback_mta.actions.audit import Actor
from feedback_mta.runner import LoopPromise, Runner

log = logs.get(__name__)

T = TypeVar("T")
#: What a request does in its unit of work; its value is the request's answer.
Work = Callable[[UnitOfWork], T]
#: What makes a request's work, run on the writer thread before the transaction: the
#: request's checks and reads that need none (no thread hop on the request's path).
Prepare = Callable[[], Work[T]]


class NotCommitted(Exception):
    """The work was not committed in time: it may still be (an Idempotency-Key makes the
    retry safe); the caller answers 503."""


@dataclass(frozen=True, slots=True)
class _Job:
    actor: Actor
    prepare: Prepare[Any]
    promise: LoopPromise[Any]


@dataclass(slots=True)
class _Done:
    job: _Job
    uow: UnitOfWork | None
    value: Any = None
    error: BaseException | None = None


@dataclass(slots=True)
class _Ready:
    job: _Job
    work: Work[Any]


#: Writer threads on PostgreSQL. A transaction there is a round trip per statement, and
#: one thread spent the registrations' time waiting on them in turn (half the rate of a
#: thread per request, when a registration's statements cost more); two batches at once
#: overlap those waits. More threads bought nothing once the statements ran on the
#: driver's cursor (``db.Prepared``): on the 2-core machine with PostgreSQL beside it, 1, 2,
#: 3 and 4 writers registered 280-300 leads/s alike, at 2.3-2.5, 3.1, 3.2 and 3.5-3.8 ms of
#: ``serve``'s CPU each (their threads taking the GIL from each other). Two keep some
#: overlap for a server a network away. (SQLite has one writer.)
PG_WRITERS = 2


def writers(engine: Engine) -> int:
    return 1 if engine.dialect.name == "sqlite" else PG_WRITERS


class Together(Runner[_Job]):
    """One writer thread committing queued units of work in batches. Not started (an app
    made without its server) or stopped, ``run`` does the work alone, in a transaction
    of its own on a thread of its own, as before."""

    name = "together"

    def __init__(self, engine: Engine, *, max_batch: int = 128,
                 threads: int | None = None) -> None:
        super().__init__(threads=threads or writers(engine), max_batch=max_batch)
        self._engine = engine
        self.batches = 0

    async def run(self, actor: Actor, prepare: Prepare[T], timeout: float = 30.0) -> T:
        """The value of the work ``prepare`` made, once its unit of work committed; what
        either raised otherwise."""
        if not self.alive:
            return await asyncio.to_thread(self._alone, actor, prepare)
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self.put(_Job(actor, prepare, LoopPromise(loop, future)))
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            raise NotCommitted(f"not committed within {timeout:g}s") from None

    def _alone(self, actor: Actor, prepare: Prepare[T]) -> T:
        work = prepare()
        with unit_of_work(self._engine, actor) as uow:
            return work(uow)

    def run_batch(self, batch: list[_Job]) -> None:
        ready: list[_Ready] = []
        for job in batch:
            if not job.promise.set_running_or_notify_cancel():
                continue  # its request gave up waiting
            try:
                ready.append(_Ready(job, job.prepare()))
            except Exception as exc:
                self._answer([_Done(job, None, error=exc)])
        if ready:
            self._run(ready)

    def _run(self, ready: list[_Ready]) -> None:
        started = time.perf_counter()
        try:
            done = self._commit(ready)
        except Exception as exc:
            if len(ready) == 1:
                self._answer([_Done(ready[0].job, None, error=exc)])
                return
            # The transaction failed, not one request's work: each again on its own.
            log.warning("together.retry_alone", items=len(ready), error=logs.error_line(exc))
            for one in ready:
                self._run([one])
            return
        self.batches += 1
        log.debug("together.committed", count=len(done),
                  commit_ms=round((time.perf_counter() - started) * 1000, 2))
        self._answer(done)

    def _commit(self, ready: list[_Ready]) -> list[_Done]:
        # What arrives while this one runs (or waits for SQLite's write lock) is the next
        # batch: its work is prepared before its own transaction, never inside this one.
        done = self._transaction(ready, savepoints=False)
        if done is None:  # a work raised: again, each in its SAVEPOINT
            log.debug("together.savepoints", items=len(ready))
            done = self._transaction(ready, savepoints=True)
            assert done is not None
        return done

    def _transaction(self, ready: list[_Ready], savepoints: bool) -> list[_Done] | None:
        """Every job's work in one transaction, committed; None when, without
        ``savepoints``, one of several raised: the transaction is rolled back (nothing of
        any is kept, their recorders go with the session) for the batch to run again with
        them. A batch of one needs none: what its SAVEPOINT would hold is all there is."""
        with AuditedSession(self._engine, expire_on_commit=False) as session:
            done: list[_Done] = []
            for one in ready:
                item = self._one(session, one, savepoints)
                if item.error is not None and not savepoints:
                    session.rollback()
                    if len(ready) > 1:
                        return None
                done.append(item)
            session.commit()
            remember_accounts(self._engine, session)
        return done

    @staticmethod
    def _one(session: AuditedSession, one: _Ready, savepoint: bool) -> _Done:
        """The job's work (in a SAVEPOINT, if ``savepoint``: what it raised rolls back its
        part alone); what it raised is its answer."""
        job = one.job
        uow = UnitOfWork(session, job.actor)
        try:
            with session.begin_nested() if savepoint else nullcontext():
                value = one.work(uow)
                session.flush()
        except sa.exc.OperationalError:
            raise  # the database, not the request: the batch is tried one by one
        except Exception as exc:
            uow.recorder.discard()
            return _Done(job, None, error=exc)
        return _Done(job, uow, value)

    @staticmethod
    def _answer(done: list[_Done]) -> None:
        """After the commit: each request's log lines, then its answer."""
        for item in done:
            if item.uow is not None:
                item.uow.recorder.emit_logs()
            if item.error is not None:
                item.job.promise.set_exception(item.error)
            else:
                item.job.promise.set_result(item.value)
