"""Scheduled work (APScheduler 3.x, in background threads, off the event loop).

Jobs: ``inbox.sweep`` queues stored messages still ``received`` (left by a crash, by another
node, or put back by ``inbox retry``); ``outbox.flush`` queues outbound mail that is due
(retries after a relay failure). Jobs coalesce and never overlap, so a slow run is not
stacked on top of itself.
"""

from __future__ import annotations

from apscheduler.schedulers.background import BackgroundScheduler

from feedback_mta import logs
from feedback_mta.config import Config
from feedback_mta.outbound import Outbox
from feedback_mta.process import Processor

log = logs.get("feedback_mta.scheduler")


def sweep(processor: Processor) -> int:
    queued = processor.sweep()
    if queued:
        log.info("scheduler.sweep", queued=queued)
    return queued


def flush(outbox: Outbox) -> int:
    queued = outbox.flush()
    if queued:
        log.info("scheduler.outbox_flush", queued=queued)
    return queued


def start(config: Config, processor: Processor, outbox: Outbox | None = None
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
    scheduler.start()
    return scheduler
