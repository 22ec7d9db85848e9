"""The account guard: each account's complaint and hard-bounce rates against warn and
pause lines, so the sending platform hears it from us before a provider acts.

SES reviews an account at 0.1% complaints or 5% bounces and pauses it at 0.5% or 10%;
Gmail's line is 0.3% spam. ``[guard]`` sets our lines below theirs (defaults: complaints
0.1% / 0.3%, hard bounces 2% / 5%), over a rolling ``window``, and only once an account has
sent ``min_sent`` messages (``account sent``): three complaints in fifty mails say little.

``verdict`` decides (pure); ``check`` applies it to every account through
``Accounts.advise``, which writes ``account.warned``, ``account.paused`` or
``account.recovered`` when the advice changes, and never lifts a pause: ``account resume``
does. The scheduler runs ``check`` every ``check_interval``; the change is a conditional
update under a row lock, and on PostgreSQL the run holds an advisory lock, so two nodes
announce each change once.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy.engine import Engine

from feedback_mta import logs
from feedback_mta.actions import SCHEDULER, unit_of_work
from feedback_mta.actions.accounts import every_guard_figures
from feedback_mta.config import GuardConfig
from feedback_mta.store import db
from feedback_mta.store.models import utcnow

log = logs.get(__name__)


@dataclass(frozen=True)
class Verdict:
    #: ``ok``, ``warned`` or ``paused``.
    state: str
    #: Which lines were crossed, with the figures (``complaint rate 0.400% >= 0.300%``).
    reasons: tuple[str, ...] = ()


def verdict(figures: dict[str, Any], lines: GuardConfig) -> Verdict:
    """The advice for one account's figures (``actions.accounts.guard_figures``)."""
    sent = figures["sent"]
    if sent < lines.min_sent:
        return Verdict("ok")
    paused, warned = [], []
    for name, count, warn, pause in (
            ("complaint", figures["complaints"], lines.complaint_warn, lines.complaint_pause),
            ("hard-bounce", figures["hard_bounces"], lines.bounce_warn, lines.bounce_pause)):
        rate = count / sent
        if rate >= pause:
            paused.append(f"{name} rate {rate:.3%} >= {pause:.3%} ({count} of {sent})")
        elif rate >= warn:
            warned.append(f"{name} rate {rate:.3%} >= {warn:.3%} ({count} of {sent})")
    if paused:
        return Verdict("paused", tuple(paused + warned))
    if warned:
        return Verdict("warned", tuple(warned))
    return Verdict("ok")


def check(engine: Engine, lines: GuardConfig, now: datetime | None = None) -> int:
    """Judge every account; how many changed advice.

    The figures of all accounts are one read; only an account whose advice changes gets
    a write, in a transaction of its own, where ``advise`` locks its row and looks again.
    (One transaction over every account held SQLite's write lock, and on PostgreSQL
    every account's row, for the whole run: seconds with 10,000 accounts, while the
    intake and the processors waited.)"""
    now = now or utcnow()
    changed = 0
    with db.reader(engine).connect() as conn:
        if not db.try_lock(conn, "guard.check"):
            return 0  # another node is at it right now
        due = [(account_id, advice, figures)
               for account_id, sending, figures in every_guard_figures(conn, lines.window, now)
               if (advice := verdict(figures, lines)).state != sending and sending != "paused"]
        for account_id, advice, figures in due:
            with unit_of_work(engine, SCHEDULER) as uow:
                changed += uow.accounts.advise(account_id, advice.state, list(advice.reasons),
                                               figures)
    if changed:
        log.info("guard.checked", changed=changed)
    return changed
