"""Scheduled work (APScheduler 3.x, in background threads, off the event loop), as one table.

``JOBS`` lists every job, one row each: its id, its trigger (read from the config), and its
call: the function and the arguments it takes from the running server (``Needs``: the
config, the processor, the scheduler, the database engine, the address book, the outbox).
``start`` is a loop over the rows. A row whose arguments ask for something this server
lacks (no engine, no enabled outbound relay) is not started; one whose trigger reads
None from the config is off. Adding a job is adding its function in ``feedback_mta.jobs``
and one row here.

The table lives here rather than in ``jobs/__init__``: its rows hand the jobs this layer's
objects (the processor, the outbox, the scheduler itself), and ``jobs`` sits below
``service`` in the layers (pyproject's import-linter contract), so it cannot name them.

Jobs: ``inbox.sweep`` queues stored messages still ``received`` (left by a crash, by another
node, or put back by ``inbox retry``); ``outbox.flush`` queues outbound mail that is due
(retries after a relay failure); ``review.check`` opts out suspected contacts whose review
deadline passed, sends the review digests that are due, and schedules ``review.deadline``
(a one-off, not a row) to the second of the next deadline when it comes before the next
check; ``retention.purge`` empties the raw bytes of messages past ``[retention] raw_days``
(hourly, and at start); ``retention.idempotency`` forgets API answers kept for an
``Idempotency-Key`` past a day, and webhook nonces past theirs; ``guard.check`` judges each
account's complaint and hard-bounce rates (``jobs.guard``); ``spam.retrain`` counts the lead
spam model again from the leads, daily (``jobs.spam_model``); ``leads.digest`` sends each
account's digest of automatically flagged leads at ``[leads] digest_time``
(``jobs.spam_digest``); ``consent.check`` opts out pending contacts whose confirmation
deadline passed and, with a relay, sends the confirmation requests and reminders that are
due (``jobs.consent``; every ``[review] check_interval``, and at start).

Jobs coalesce and never overlap, so a slow run is not stacked on top of itself. Scheduled
work runs once across nodes: ``serve`` starts the scheduler in its first worker only, and the
jobs that change things are idempotent SQL or hold a PostgreSQL advisory lock
(``jobs.review``, ``jobs.guard``, ...), so two nodes do nothing twice.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, TypeVarTuple

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from feedback_mta import counters, logs
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.jobs import consent, guard, retention, review, spam_digest, spam_model
from feedback_mta.service.outbox import Outbox
from feedback_mta.service.process import Sweeper
from feedback_mta.store.models import utcnow

log = logs.get(__name__)

#: Seconds between retention runs: raw_days is counted in days, an hour late is nothing.
PURGE_INTERVAL = 3600
#: Seconds between recounts of the lead spam model.
RETRAIN_INTERVAL = 86400

Ts = TypeVarTuple("Ts")


class Missing(Exception):
    """A job asks for something this server does not have (its row is not started)."""


class Needs:
    """What the running server offers its jobs. ``engine``, ``book`` and ``outbox`` raise
    ``Missing`` when the server has none (``outbox``: none that is enabled), so what a row's
    ``call`` takes is also what its job needs."""

    def __init__(self, config: Config, processor: Sweeper, scheduler: BackgroundScheduler,
                 engine: Engine | None, book: AddressBook | None, outbox: Outbox | None,
                 page: Callable[[], str | None] = lambda: None) -> None:
        self.config = config
        self.processor = processor
        self.scheduler = scheduler
        self._engine = engine
        self._book = book
        #: The outbox, if any, enabled or not (``review.check`` sends digests only when it is).
        self.any_outbox = outbox
        #: Where links in our mail point (``[http] public_url``, else the HTTP listener's
        #: bound address): "" when there is no page, None while the listener is not up.
        self.page = page

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            raise Missing("engine")
        return self._engine

    @property
    def book(self) -> AddressBook:
        if self._book is None:
            raise Missing("book")
        return self._book

    @property
    def outbox(self) -> Outbox:
        if self.any_outbox is None or not self.any_outbox.enabled:
            raise Missing("outbox")
        return self.any_outbox


@dataclass(frozen=True)
class Trigger:
    """An APScheduler trigger (``interval``, ``cron``) and its fields."""

    kind: str
    fields: Mapping[str, Any]
    #: The first run at start, not one interval later.
    at_start: bool = False


def every(seconds: Callable[[Config], float | None], *, at_start: bool = False
          ) -> Callable[[Config], Trigger | None]:
    """An interval of ``seconds(config)``; None there: the job is off."""
    def trigger(config: Config) -> Trigger | None:
        interval = seconds(config)
        return None if interval is None else Trigger("interval", {"seconds": interval},
                                                     at_start)
    return trigger


def daily(at: Callable[[Config], tuple[int, int] | None]) -> Callable[[Config], Trigger | None]:
    """Every day at ``at(config)``, (hour, minute) UTC; None there: the job is off."""
    def trigger(config: Config) -> Trigger | None:
        when = at(config)
        return None if when is None else Trigger("cron", {"hour": when[0], "minute": when[1]})
    return trigger


class Call:
    """A function and the arguments it is called with; mypy checks they fit, as it does
    for ``loop.call_soon`` (a wrong one reads: Argument 1 to "Call" has incompatible type)."""

    def __init__(self, run: Callable[[*Ts], object], *args: *Ts) -> None:
        self.run: Callable[..., object] = run
        self.args: tuple[object, ...] = args


@dataclass(frozen=True)
class Job:
    """One row of ``JOBS``: the job's id, its trigger, and its call.

    ``call`` is asked once, at start, with the ``Needs``: it names the function and picks
    what it is called with every time; a need this server lacks (``Missing``) leaves the
    job out.
    """

    id: str
    #: Read from the config at start; None: off.
    trigger: Callable[[Config], Trigger | None] = field(repr=False)
    call: Callable[[Needs], Call] = field(repr=False)


def sweep(processor: Sweeper) -> int:
    queued = processor.sweep()
    if queued:
        log.info("scheduler.sweep", queued=queued)
    return queued


def flush(outbox: Outbox) -> int:
    queued = outbox.flush()
    if queued:
        log.info("scheduler.outbox_flush", queued=queued)
    return queued


def expire(engine: Engine) -> int:
    return review.expire_due(engine)


def check_reviews(scheduler: BackgroundScheduler, engine: Engine, config: Config,
                  book: AddressBook, outbox: Outbox | None) -> None:
    """Expire what is due, send due digests, and time the next deadline to the second."""
    review.expire_due(engine)
    if outbox is not None and outbox.enabled:
        mail = review.remind_due(engine, config, book)
        if mail:
            log.info("scheduler.review_reminders", queued=len(mail))
            outbox.submit(mail)
    upcoming = review.next_deadline(engine)
    if upcoming is not None and upcoming < utcnow() + timedelta(
            seconds=config.review.check_interval):
        scheduler.add_job(expire, "date", args=[engine], id="review.deadline",
                          run_date=upcoming, replace_existing=True, misfire_grace_time=None)


def check_consent(engine: Engine, config: Config, book: AddressBook,
                  page: Callable[[], str | None], outbox: Outbox | None) -> None:
    """Opt out the pending contacts past their deadline; with a relay, ask (and remind)
    the others."""
    consent.check(engine, config, book, page,
                  outbox.submit if outbox is not None and outbox.enabled else None)


def digest_spam(engine: Engine, config: Config, book: AddressBook, outbox: Outbox) -> None:
    outbox.submit(spam_digest.send(engine, config, book))


#: Every scheduled job, in the order they are added.
JOBS: tuple[Job, ...] = (
    Job("inbox.sweep", every(lambda c: c.processing.sweep_interval),
        lambda n: Call(sweep, n.processor)),
    Job("outbox.flush", every(lambda c: c.outbound.retry_interval),
        lambda n: Call(flush, n.outbox)),
    Job("review.check", every(lambda c: c.review.check_interval, at_start=True),
        lambda n: Call(check_reviews, n.scheduler, n.engine, n.config, n.book, n.any_outbox)),
    Job("consent.check", every(lambda c: c.review.check_interval, at_start=True),
        lambda n: Call(check_consent, n.engine, n.config, n.book, n.page, n.any_outbox)),
    Job("leads.digest", daily(lambda c: c.leads.digest_at),
        lambda n: Call(digest_spam, n.engine, n.config, n.book, n.outbox)),
    Job("retention.purge",
        every(lambda c: PURGE_INTERVAL if c.retention.raw_days else None, at_start=True),
        lambda n: Call(retention.purge, n.engine, n.config.retention.raw_days)),
    Job("spam.retrain", every(lambda c: RETRAIN_INTERVAL),
        lambda n: Call(spam_model.retrain, n.engine)),
    Job("guard.check", every(lambda c: c.guard.check_interval, at_start=True),
        lambda n: Call(guard.check, n.engine, n.config.guard)),
    Job("retention.idempotency", every(lambda c: PURGE_INTERVAL, at_start=True),
        lambda n: Call(retention.forget_idempotency_keys, n.engine)),
)


def _count(event: JobEvent) -> None:
    """Every run in ``feedback_mta_scheduler_runs``; a failed one in the log, too."""
    if event.code == EVENT_JOB_MISSED:
        result = "missed"
    elif event.exception is not None:
        result = "error"
        log.error("scheduler.job_failed", job=event.job_id,
                  error=logs.error_line(event.exception))
    else:
        result = "ok"
    counters.SCHEDULER_RUNS.labels(event.job_id, result).inc()


def start(config: Config, processor: Sweeper, outbox: Outbox | None = None,
          engine: Engine | None = None, book: AddressBook | None = None,
          jobs: tuple[Job, ...] = JOBS, page: Callable[[], str | None] = lambda: None
          ) -> BackgroundScheduler:
    """Start every row of ``jobs`` whose trigger is on and whose needs this server has."""
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        timezone="UTC",
    )
    needs = Needs(config, processor, scheduler, engine, book, outbox, page)
    for job in jobs:
        trigger = job.trigger(config)
        if trigger is None:
            continue
        try:
            call = job.call(needs)
        except Missing:
            continue
        start_now = {"next_run_time": utcnow()} if trigger.at_start else {}
        scheduler.add_job(call.run, trigger.kind, args=list(call.args), id=job.id,
                          **trigger.fields, **start_now)
    scheduler.add_listener(_count, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    scheduler.start()
    log.info("scheduler.started", jobs=sorted(job.id for job in scheduler.get_jobs()))
    return scheduler
