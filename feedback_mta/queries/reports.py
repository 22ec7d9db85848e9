"""Reports: one account's leads per day, week or source (``lead report``, ``GET
/v1/reports/leads``), and its last days as the review page charts them.

A lead flagged as spam, by whoever (the system, a dealer's reply, the API, the page), is
counted apart, in ``spam_leads``, and never in ``leads`` nor in the totals: a report shows
what the dealer really got. A restored lead counts as a lead again.

The database groups (bounded work whatever the number of leads): by the lead's UTC day,
written per dialect (``_utc_day``), or by its source; Python then folds days into weeks
and fills the days and weeks without a lead, so a report has a row for every period of its
window. "Source" is where a lead came from as we know it: the network of the form's
source IP (``Lead.source_net``, IPv4 /24, IPv6 /64), ``unknown`` without one.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from enum import StrEnum

import sqlalchemy as sa
from sqlmodel import Session

from feedback_mta import events
from feedback_mta.queries.accounts import require_account
from feedback_mta.store.models import Event, Lead, LeadStatus, SentCount, table_of

#: The window when none is asked for, and the longest one asked for (days).
DEFAULT_DAYS = 30
MAX_DAYS = 366
#: The sources a report names (the most leads first); the rest are one row, ``OTHER``.
MAX_SOURCES = 100
UNKNOWN, OTHER = "unknown", "other"


class By(StrEnum):
    DAY = "day"
    WEEK = "week"
    SOURCE = "source"


class BadWindow(ValueError):
    """A ``since`` outside what a report covers (the message says what is)."""


@dataclass(frozen=True)
class Row:
    #: The period's first day (``2026-07-01``; a week is named by its Monday) or the source.
    key: str
    #: Leads not flagged as spam.
    leads: int
    spam_leads: int


@dataclass(frozen=True)
class Report:
    account_id: int
    by: By
    since: datetime
    until: datetime
    rows: tuple[Row, ...]

    @property
    def leads(self) -> int:
        return sum(r.leads for r in self.rows)

    @property
    def spam_leads(self) -> int:
        return sum(r.spam_leads for r in self.rows)


@dataclass(frozen=True)
class Days:
    """One account's last days, one entry per UTC day (the review page's charts)."""

    days: tuple[str, ...]
    leads: tuple[int, ...]
    spam_leads: tuple[int, ...]
    complaints: tuple[int, ...]
    hard_bounces: tuple[int, ...]
    #: Messages the account said it sent that day (``account sent``); 0: not told.
    sent: tuple[int, ...]


def window(since: datetime | date | None, now: datetime) -> datetime:
    """The report's start: ``since`` (a date is its midnight, UTC; a time without zone is
    UTC), else ``DEFAULT_DAYS`` ago; ``BadWindow`` in the future or past ``MAX_DAYS``."""
    if since is None:
        return now - timedelta(days=DEFAULT_DAYS)
    if not isinstance(since, datetime):
        since = datetime(since.year, since.month, since.day, tzinfo=UTC)
    elif since.tzinfo is None:
        since = since.replace(tzinfo=UTC)
    # Compared first: far off, converting to UTC would overflow.
    if since > now:
        raise BadWindow("since: in the future")
    if now - since > timedelta(days=MAX_DAYS):
        raise BadWindow(f"since: at most {MAX_DAYS} days back")
    return since.astimezone(UTC)


def lead_report(session: Session, account_id: int, *, by: By = By.DAY,
                since: datetime | date | None = None, now: datetime | None = None) -> Report:
    """The account's leads from ``since`` (``window``) until now, per ``by``."""
    require_account(session, account_id)
    now = now or datetime.now(UTC)
    start = window(since, now)
    if by is By.SOURCE:
        rows = by_source(_counted(session, _leads_by(session, account_id, start, source=True)))
    else:
        days = _counted(session, _leads_by(session, account_id, start, source=False))
        rows = per_period(days, start.date(), now.date(), weekly=by is By.WEEK)
    return Report(account_id, by, start, now, rows)


def account_days(session: Session, account_id: int, days: int = DEFAULT_DAYS,
                 now: datetime | None = None) -> Days:
    """The account's last ``days`` UTC days (today the last): leads and spam leads,
    complaints and hard bounces (the account guard's two figures), and sends."""
    now = now or datetime.now(UTC)
    first = now.date() - timedelta(days=days - 1)
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    names = [(first + timedelta(days=i)).isoformat() for i in range(days)]
    leads = _counted(session, _leads_by(session, account_id, start, source=False))
    event = table_of(Event)
    day = _utc_day(session, event.c.at)
    feedback: dict[tuple[str, str], int] = {
        (str(d), str(action)): int(n) for d, action, n in session.execute(
            sa.select(day, event.c.action, sa.func.count())
            .where(event.c.account_id == account_id, event.c.at >= start,
                   event.c.action.in_((events.CONTACT_COMPLAINED, events.CONTACT_HARD_BOUNCED)))
            .group_by(day, event.c.action))}
    counts = table_of(SentCount)
    sent = {str(d): int(n) for d, n in session.execute(
        sa.select(counts.c.day, counts.c.count)
        .where(counts.c.account_id == account_id, counts.c.day >= names[0]))}
    return Days(
        days=tuple(names),
        leads=tuple(leads.get(d, (0, 0))[0] for d in names),
        spam_leads=tuple(leads.get(d, (0, 0))[1] for d in names),
        complaints=tuple(feedback.get((d, events.CONTACT_COMPLAINED), 0) for d in names),
        hard_bounces=tuple(feedback.get((d, events.CONTACT_HARD_BOUNCED), 0) for d in names),
        sent=tuple(sent.get(d, 0) for d in names))


# --- pure: periods and sources from counts --------------------------------------------------

def per_period(days: Mapping[str, tuple[int, int]], first: date, last: date,
               weekly: bool = False) -> tuple[Row, ...]:
    """One row per day (or ISO week, named by its Monday) from ``first`` to ``last``,
    those without a lead too; ``days``: ISO day -> (leads, spam leads)."""
    totals: dict[str, list[int]] = {}
    day = first
    while day <= last:
        totals.setdefault(_period(day, weekly), [0, 0])
        day += timedelta(days=1)
    for name, (leads, spam) in days.items():
        when = date.fromisoformat(name)
        if first <= when <= last:  # a lead stamped after ``last`` (a clock ahead): not
            key = _period(when, weekly)
            totals[key][0] += leads
            totals[key][1] += spam
    return tuple(Row(key, leads, spam) for key, (leads, spam) in totals.items())


def _period(day: date, weekly: bool) -> str:
    return (day - timedelta(days=day.weekday()) if weekly else day).isoformat()


def by_source(counts: Mapping[str, tuple[int, int]],
              limit: int = MAX_SOURCES) -> tuple[Row, ...]:
    """One row per source, the most leads (then spam leads) first; past ``limit``, the
    rest in one ``other`` row, so that the totals stay whole."""
    rows = sorted((Row(key, leads, spam) for key, (leads, spam) in counts.items()),
                  key=lambda r: (-r.leads, -r.spam_leads, r.key))
    if len(rows) <= limit:
        return tuple(rows)
    rest = rows[limit:]
    return (*rows[:limit], Row(OTHER, sum(r.leads for r in rest),
                               sum(r.spam_leads for r in rest)))


# --- the reads ------------------------------------------------------------------------------

def _utc_day(session: Session, column: sa.ColumnElement[datetime]) -> sa.ColumnElement[str]:
    """A timestamp's UTC day as ``YYYY-MM-DD``, in the database: SQLite keeps timestamps as
    UTC text (its first ten characters are the day), PostgreSQL as ``timestamptz``."""
    if session.get_bind().dialect.name == "postgresql":
        return sa.func.to_char(sa.func.timezone("UTC", column), "YYYY-MM-DD")
    return sa.func.substr(column, 1, 10)


def _leads_by(session: Session, account_id: int, start: datetime,
              source: bool) -> sa.Select[tuple[str, str, int]]:
    lead = table_of(Lead)
    key = (sa.func.coalesce(lead.c.source_net, UNKNOWN) if source
           else _utc_day(session, lead.c.created_at))
    return (sa.select(key, lead.c.status, sa.func.count())
            # Both statuses named: the (account, status, created) index serves each.
            .where(lead.c.account_id == account_id,
                   lead.c.status.in_([s.value for s in LeadStatus]),
                   lead.c.created_at >= start)
            .group_by(key, lead.c.status))


def _counted(session: Session, query: sa.Select[tuple[str, str, int]]
             ) -> dict[str, tuple[int, int]]:
    """key -> (leads, spam leads) from (key, status, count) rows."""
    return fold((str(key), str(status), int(n)) for key, status, n in session.execute(query))


def fold(rows: Iterable[tuple[str, str, int]]) -> dict[str, tuple[int, int]]:
    """(key, status, count) -> key: (leads, spam leads): a spam lead only ever in the
    second."""
    out: dict[str, tuple[int, int]] = {}
    for key, status, n in rows:
        leads, spam = out.get(key, (0, 0))
        out[key] = (leads, spam + n) if status == LeadStatus.SPAM else (leads + n, spam)
    return out


def report_rows(report: Report) -> list[dict[str, object]]:
    """The rows as ``lead report --json`` prints them and the API answers them."""
    return [{"key": r.key, "leads": r.leads, "spam_leads": r.spam_leads} for r in report.rows]
