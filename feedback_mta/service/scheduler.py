"""Scheduled work (APScheduler 3.x, in background threads, off the event loop).

Jobs: ``inbox.sweep`` queues stored messages still ``received`` (left by a crash, by another
node, or put back by ``inbox retry``); ``outbox.flush`` queues outbound mail that is due
(retries after a relay failure); ``review.check`` opts out suspected contacts whose review
deadline passed, sends the review digests that are due, and schedules ``review.deadline``
to the second of the next deadline when it comes before the next check; ``retention.purge``
empties the raw bytes of messages past ``[retention] raw_days`` (hourly, and at start);
``retention.idempotency`` forgets API answers kept for an ``Idempotency-Key`` past a day,
and webhook nonces past theirs; ``guard.check`` judges each account's complaint and
hard-bounce rates (``jobs.guard``); ``spam.retrain`` counts the lead spam model again from
the leads, daily (``jobs.spam_model``); ``leads.digest`` sends each account's digest of
automatically flagged leads at ``[leads] digest_time`` (``jobs.spam_digest``).
Jobs coalesce and never overlap, so a slow run is not stacked on top of itself.
"""

from __future__ import annotations

from datetime import timedelta

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_EXECUTED, EVENT_JOB_MISSED, JobEvent
from apscheduler.schedulers.background import BackgroundScheduler
from sqlalchemy.engine import Engine

from feedback_mta import counters, logs
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.jobs import guard, retention, review, spam_digest, spam_model
from feedback_mta.service.outbox import Outbox
from feedback_mta.service.process import Sweeper
from feedback_mta.store.models import utcnow

log = logs.get(__name__)

#: Seconds between retention runs: raw_days is counted in days, an hour late is nothing.
PURGE_INTERVAL = 3600


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


def digest_spam(engine: Engine, config: Config, book: AddressBook, outbox: Outbox) -> None:
    outbox.submit(spam_digest.send(engine, config, book))


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
          engine: Engine | None = None, book: AddressBook | None = None
          ) -> BackgroundScheduler:
    scheduler = BackgroundScheduler(
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
        timezone="UTC",
    )
    scheduler.add_job(sweep, "interval", args=[processor], id="inbox.sweep",
                      seconds=config.processing.sweep_interval)
    if outbox is not None and outbox.enabled:
        scheduler.add_job(flush, "interval", args=[outbox], id="outbox.flush",
                          seconds=config.outbound.retry_interval)
    if engine is not None and book is not None:
        scheduler.add_job(check_reviews, "interval", args=[scheduler, engine, config, book, outbox],
                          id="review.check", seconds=config.review.check_interval,
                          next_run_time=utcnow())
    digest_at = config.leads.digest_at
    if engine is not None and book is not None and outbox is not None and outbox.enabled \
            and digest_at is not None:
        scheduler.add_job(digest_spam, "cron", args=[engine, config, book, outbox],
                          id="leads.digest", hour=digest_at[0], minute=digest_at[1])
    if engine is not None and config.retention.raw_days:
        scheduler.add_job(retention.purge, "interval", args=[engine, config.retention.raw_days],
                          id="retention.purge", seconds=PURGE_INTERVAL, next_run_time=utcnow())
    if engine is not None:
        scheduler.add_job(spam_model.retrain, "interval", args=[engine], id="spam.retrain",
                          seconds=86400)
        scheduler.add_job(guard.check, "interval", args=[engine, config.guard],
                          id="guard.check", seconds=config.guard.check_interval,
                          next_run_time=utcnow())
        scheduler.add_job(retention.forget_idempotency_keys, "interval", args=[engine],
                          id="retention.idempotency", seconds=PURGE_INTERVAL,
                          next_run_time=utcnow())
    scheduler.add_listener(_count, EVENT_JOB_EXECUTED | EVENT_JOB_ERROR | EVENT_JOB_MISSED)
    scheduler.start()
    log.info("scheduler.started", jobs=sorted(job.id for job in scheduler.get_jobs()))
    return scheduler
