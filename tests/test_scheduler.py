"""The scheduler's table of jobs (``service.scheduler.JOBS``): which rows a server starts,
with which trigger, from what it has. Pure: the rows are asked, nothing is started."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from apscheduler.schedulers.background import BackgroundScheduler

from feedback_mta import config as config_mod
from feedback_mta.service.scheduler import JOBS, Missing, Needs

SAMPLE = Path(__file__).parents[1] / "config" / "feedback-mta.toml"


class Outbox:
    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled


def _planned(config, engine=None, book=None, outbox=None) -> dict[str, tuple]:
    """id -> (trigger kind, fields, at start, the function's name) of each row started."""
    needs = Needs(config, object(), BackgroundScheduler(), engine, book, outbox)
    planned = {}
    for job in JOBS:
        trigger = job.trigger(config)
        try:
            call = job.call(needs)
        except Missing:
            continue
        if trigger is not None:
            planned[job.id] = (trigger.kind, dict(trigger.fields), trigger.at_start,
                               call.run.__name__)
    return planned


def test_every_job_its_trigger_from_the_config_and_what_it_needs():
    base = config_mod.load(SAMPLE)
    config = dataclasses.replace(
        base, leads=dataclasses.replace(base.leads, digest_time="07:30"),
        retention=dataclasses.replace(base.retention, raw_days=90))
    every = _planned(config, engine="engine", book="book", outbox=Outbox(True))
    assert every == {
        "inbox.sweep": ("interval", {"seconds": config.processing.sweep_interval}, False,
                        "sweep"),
        "outbox.flush": ("interval", {"seconds": config.outbound.retry_interval}, False,
                         "flush"),
        "review.check": ("interval", {"seconds": config.review.check_interval}, True,
                         "check_reviews"),
        "consent.check": ("interval", {"seconds": config.review.check_interval}, True,
                          "check_consent"),
        "leads.digest": ("cron", {"hour": 7, "minute": 30}, False, "digest_spam"),
        "retention.purge": ("interval", {"seconds": 3600}, True, "purge"),
        "spam.retrain": ("interval", {"seconds": 86400}, False, "retrain"),
        "guard.check": ("interval", {"seconds": config.guard.check_interval}, True, "check"),
        "retention.idempotency": ("interval", {"seconds": 3600}, True,
                                  "forget_idempotency_keys"),
    }
    # Off by the config: no digest time, raw bytes kept forever.
    off = dataclasses.replace(
        config, leads=dataclasses.replace(config.leads, digest_time=""),
        retention=dataclasses.replace(config.retention, raw_days=0))
    assert set(every) - set(_planned(off, "engine", "book", Outbox(True))) == {
        "leads.digest", "retention.purge"}
    # Left out for what the server lacks: a disabled outbox sends nothing, but the review
    # and consent checks still run (deadlines pass without mail); no engine leaves only the
    # sweep.
    assert set(every) - set(_planned(config, "engine", "book", Outbox(False))) == {
        "outbox.flush", "leads.digest"}
    assert set(_planned(config, "engine", None, None)) == {
        "inbox.sweep", "retention.purge", "spam.retrain", "guard.check",
        "retention.idempotency"}
    assert set(_planned(config)) == {"inbox.sweep"}
