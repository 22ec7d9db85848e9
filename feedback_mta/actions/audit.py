"""The one audit recorder every action writes through.

``record`` makes an ``Event`` (who, what, why, from which inbound message) for the
transaction of the change itself; ``write_events`` inserts a transaction's events just
before its commit, and ``emit_logs`` writes their log lines once it committed and hands
each event to the listeners (metrics, the webhook sender). A change that rolls back leaves
neither a row nor a line.

Why the events wait for the commit: the event feed and the webhooks read events by id, and
a reader that saw event 11 must never find an event 10 later. PostgreSQL hands out ids when
rows are inserted, not when they commit, so ``write_events`` takes one advisory lock for
the last moment of the transaction: ids are given in commit order, and the lock is held
for an insert and a commit, not for the whole change. (SQLite writers hold the database
lock from ``BEGIN IMMEDIATE`` on: commit order is id order already.)
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from itertools import groupby
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import SessionTransaction
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session

from feedback_mta import logs
from feedback_mta.store.models import Event, event_fields, table_of, utcnow

log = logs.get(__name__)


class ActionError(Exception):
    """An action that cannot be done as asked (the message says why)."""


class NotFound(ActionError):
    pass


class Conflict(ActionError):
    """Refused because of the state of what it acts on (the API's 409), not the input: a
    complaint's opt-out is never lifted."""


class Invalid(ActionError):
    """Input refused; ``field`` names what was wrong (the API's 422 says it in ``errors``)."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Actor:
    """Who acts: ``cli``, ``email:<sender>``, ``scheduler``, ``system``; and by which way."""

    name: str
    via: str = "cli"


CLI = Actor("cli", "cli")
SYSTEM = Actor("system", "auto")
SCHEDULER = Actor("scheduler", "auto")

#: The session's events not inserted yet (``write_events``), shared by its recorders.
_PENDING = "feedback_mta.pending_events"
#: The session's deferred rows (``defer``): kind -> [(recorder's id, row)].
_DEFERRED = "feedback_mta.deferred_rows"
#: kind -> what writes a transaction's deferred rows of that kind, before its events.
_WRITERS: dict[str, Callable[[Session, list[Any]], None]] = {}
#: pg_advisory_xact_lock key of event writers: "fmta" as a 32-bit number.
EVENT_LOCK = 0x666D7461
#: Identity keys of the rows this transaction read under a lock it holds to its end (``hold``).
_HELD = "feedback_mta.held_rows"
#: The deferred rows' kind of ``Recorder.change`` on a held row: (statement, parameters).
_CHANGES = "held-changes"


@dataclass(frozen=True)
class Change:
    """A change ``Recorder.change`` makes to one row: ``statement``, an UPDATE whose WHERE
    says when it is still to be made (bound: ``b_id``, and ``b_<column>`` for each value
    it sets), and ``applies``, the same test in Python, for a row the transaction holds
    locked (``hold``) and so knows as it is."""

    statement: sa.Update
    applies: Callable[[Any], bool]


@dataclass(eq=False, slots=True)
class Recorded:
    """An audit event recorded in a transaction: an ``Event`` row once inserted, when it
    gets its ``id``. Plain data, not an ORM object: a transaction's events are inserted
    in one statement (``write_events``), where the ORM's unit of work cost a fifth of a
    busy processor's time."""

    action: str
    subject_type: str
    subject_id: int | None
    account_id: int | None
    actor: str
    via: str | None
    inbound_message_id: int | None
    reason: str | None
    data: dict[str, Any]
    at: datetime = field(default_factory=utcnow)
    id: int | None = None

    def fields(self) -> dict[str, Any]:
        """As ``Event.fields``: the event as its log line, the feed and webhooks show it."""
        return event_fields(self)

    def row(self) -> dict[str, Any]:
        return {"at": self.at, "account_id": self.account_id, "actor": self.actor,
                "action": self.action, "subject_type": self.subject_type,
                "subject_id": self.subject_id, "inbound_message_id": self.inbound_message_id,
                "reason": self.reason, "data": self.data, "via": self.via}


_EVENTS = table_of(Event)
_INSERT = sa.insert(_EVENTS).returning(_EVENTS.c.id, sort_by_parameter_order=True)
#: SQLite's: one executemany, no RETURNING. With ``sort_by_parameter_order`` SQLAlchemy
#: inserts SQLite's rows one statement each (its RETURNING order is not promised), which
#: cost a tenth of a busy processor's time; the ids are known without it (``write_events``).
_INSERT_MANY = sa.insert(_EVENTS)
_LAST_ROWID = sa.text("SELECT last_insert_rowid()")


def pending_events(session: Session) -> list[Recorded]:
    """Events recorded in this transaction and not yet inserted."""
    pending: list[Recorded] = session.info.setdefault(_PENDING, [])
    return pending


def deferred_writer(kind: str) -> Callable[[Callable[[Session, list[Any]], None]], Any]:
    """Register what writes the rows of ``kind`` that recorders ``defer``: at the commit,
    before the events (so on PostgreSQL the row locks they take come before the event
    lock, as the other changes' do)."""
    def register(writer: Callable[[Session, list[Any]], None]) -> Any:
        _WRITERS[kind] = writer
        return writer
    return register


def deferred_rows(session: Session, kind: str) -> list[Any]:
    """The transaction's rows of ``kind`` not written yet (``defer``): a reader of what
    they change adds them to what it read, and takes no row lock before the commit."""
    return [row for _, row in session.info.get(_DEFERRED, {}).get(kind, ())]


def write_deferred(session: Session, kind: str | None = None) -> None:
    """Write the transaction's deferred rows (of ``kind``, or all) now."""
    deferred: dict[str, list[tuple[int, Any]]] = session.info.get(_DEFERRED, {})
    for name in [kind] if kind is not None else sorted(deferred):
        rows = deferred.pop(name, None)
        if rows:
            _WRITERS[name](session, [row for _, row in rows])


def write_events(session: Session) -> None:
    """Insert the transaction's events, in the order they were recorded, right before the
    commit (see the module's docstring for why); the deferred rows first. Every session's
    commit calls it."""
    if session.in_nested_transaction():
        return  # a SAVEPOINT released (SQLAlchemy calls this hook then too): not yet
    write_deferred(session)
    pending: list[Recorded] | None = session.info.pop(_PENDING, None)
    if not pending:
        return
    rows = [event.row() for event in pending]
    ids: Iterable[int]
    if session.get_bind().dialect.name == "sqlite":
        # The transaction holds the database's write lock (``BEGIN IMMEDIATE``) and gives
        # no ids itself: each row gets the largest rowid so far plus one, so the rows of
        # one executemany have consecutive ids, the last one's ``last_insert_rowid()``.
        conn = session.connection()
        conn.execute(_INSERT_MANY, rows)
        last = conn.execute(_LAST_ROWID).scalar_one()
        ids = range(last - len(rows) + 1, last + 1)
    else:
        # The transaction's own changes first, with the row locks they take: a writer
        # that holds the event lock then only inserts and commits, and never waits for
        # a row another one, waiting for the event lock, holds (a deadlock).
        session.flush()
        session.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": EVENT_LOCK})
        ids = session.execute(_INSERT, rows).scalars()
    for event, event_id in zip(pending, ids, strict=True):
        event.id = event_id


def hold(session: Session, rows: Iterable[Any]) -> None:
    """Note ORM rows this transaction read under a lock it holds until it ends (on
    PostgreSQL ``SELECT ... FOR NO KEY UPDATE``; SQLite's writer holds the whole database from
    ``BEGIN IMMEDIATE`` on): nobody else can change them meanwhile, so what they show is
    what the database has, and ``Recorder.change`` decides on them without a statement and
    writes its UPDATEs at the commit, the transaction's all at once (on PostgreSQL, one
    round trip instead of one a change). The rows are kept until the transaction ends: the
    session's identity map alone would let them go, and a later ``get`` would read them
    again."""
    session.info.setdefault(_HELD, {}).update((sa.inspect(row).key, row) for row in rows)


def remember_by_address(session: Session, key: str, rows: Iterable[Any]) -> None:
    """Keep rows read ahead (a batch's contacts, its reply senders' users) by their
    (``account_id``, ``email``) under ``key`` of ``session.info``, for ``remembered``."""
    session.info.setdefault(key, {}).update(((r.account_id, r.email), r) for r in rows)


def remembered(session: Session, key: str, account_id: int, email: str) -> Any | None:
    """The row ``remember_by_address`` kept with this account and (normalized) address,
    if it still has them and is still in the session: a hint, never an answer (None:
    the caller reads it)."""
    row = session.info.get(key, {}).get((account_id, email))
    if (row is not None and row.account_id == account_id and row.email == email
            and row in session and row not in session.deleted):
        return row
    return None


def _held(session: Session, row: Any) -> bool:
    held: dict[Any, Any] | None = session.info.get(_HELD)
    return held is not None and sa.inspect(row).key in held


@deferred_writer(_CHANGES)
def _write_changes(session: Session, changes: list[tuple[sa.Update, dict[str, Any], Any]]
                   ) -> None:
    """The held rows' changes: each statement's in one executemany, in the order the
    statements first came. Each row was locked and found still to change, so each matches,
    and each UPDATE changes its own row only: the order among rows does not matter, and a
    row's changes keep theirs. A row changed by two statements (opted out, then made
    undeliverable: both set ``updated_at``) keeps the order among them too: then each
    run of one statement is one executemany, in the order they were made."""
    if len({(id(row), id(update)) for update, _, row in changes}) == len(
            {id(row) for _, _, row in changes}):  # one statement a row: each's together
        first: dict[int, int] = {}
        for n, (update, _, _) in enumerate(changes):
            first.setdefault(id(update), n)
        changes = sorted(changes, key=lambda change: first[id(change[0])])
    conn = session.connection()
    for _, same in groupby(changes, key=lambda change: id(change[0])):
        run = list(same)
        conn.execute(run[0][0], [params for _, params, _ in run])


def _changes_first(session: Session, *_: Any) -> None:
    """The held rows' deferred changes, written now if there are any: before a flush of
    the ORM's own changes (a row changed both ways, made undeliverable then mailable
    again, ends as the last change says) and before a SAVEPOINT begins."""
    if session.info.get(_DEFERRED, {}).get(_CHANGES):
        write_deferred(session, _CHANGES)


def _end_holding(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the locks go with the whole transaction
        session.info.pop(_HELD, None)


def _forget_events(session: Session, transaction: Any) -> None:
    if transaction.parent is None:  # the whole transaction; a SAVEPOINT's ``discard``s
        session.info.pop(_PENDING, None)
        session.info.pop(_DEFERRED, None)


class AuditedSession(Session):
    """A session whose transactions may record: ``write_events`` inserts what they recorded
    just before each commit, and a rollback of the whole transaction forgets it. (A
    SAVEPOINT rolled back takes only its recorder's: ``Recorder.discard``.)

    The hooks are on this class, not on every SQLModel ``Session`` of the process: the
    reads, the webhook senders' bookkeeping and a program that embeds the service open
    plain sessions, and pay for nothing of ours."""

    def begin_nested(self) -> SessionTransaction:
        """A SAVEPOINT, the held rows' changes made so far written first, outside it: a
        flush in it writes them (``_changes_first``), and its rollback would then undo
        changes whose events, another recorder's, are kept."""
        _changes_first(self)
        return super().begin_nested()


sa.event.listen(AuditedSession, "before_commit", write_events)
sa.event.listen(AuditedSession, "after_soft_rollback", _forget_events)
sa.event.listen(AuditedSession, "before_flush", _changes_first)
sa.event.listen(AuditedSession, "after_transaction_end", _end_holding)

#: Called with (event name, fields) for every committed event, after its log line.
Listener = Callable[[str, dict[str, Any]], None]
_LISTENERS: list[Listener] = []


def listen(listener: Listener) -> None:
    """Hear every committed event (the service's metrics do); once per listener."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


def unlisten(listener: Listener) -> None:
    """Stop hearing events: a component that stops (a webhook sender) lets go of them, so
    a service started again in the same process is not told through a stopped one."""
    if listener in _LISTENERS:
        _LISTENERS.remove(listener)


@dataclass
class Recorder:
    """What a transaction records: its session, who acts, and what it recorded so far.

    One per unit of work, given to each of its areas: so ``acting_as`` holds for every
    area at once, and ``discard`` forgets what any of them recorded."""

    session: Session
    actor: Actor
    inbound_message_id: int | None = None
    _logged: list[tuple[str, dict[str, Any] | Recorded]] = field(default_factory=list)
    #: Outbound mail queued in this transaction, to hand to the sender after the commit.
    queued_mail: list[int] = field(default_factory=list)
    #: (row, attribute names) of each change this recorder made to a held row.
    _held_changes: list[tuple[Any, list[str]]] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not isinstance(self.session, AuditedSession):
            # A plain session would commit the changes and drop their events.
            raise TypeError("record in an AuditedSession (actions.unit_of_work opens one)")

    def record(self, action: str, subject_type: str, subject_id: int | None,
               account_id: int | None, reason: str | None = None, **data: Any) -> Recorded:
        """Record an audit event in this transaction (inserted by ``write_events``) and
        queue its log line for after the commit."""
        event = Recorded(action, subject_type, subject_id, account_id, self.actor.name,
                         self.actor.via, self.inbound_message_id, reason, data)
        pending_events(self.session).append(event)
        self._logged.append((action, event))
        return event

    @contextmanager
    def acting_as(self, actor: Actor) -> Iterator[None]:
        """Record as ``actor`` meanwhile: the system's own decision inside someone's
        transaction (a lead flagged by its score as the platform registers it)."""
        previous, self.actor = self.actor, actor
        try:
            yield
        finally:
            self.actor = previous

    def defer(self, kind: str, rows: Iterable[Any]) -> None:
        """Rows for the writer of ``kind`` (``deferred_writer``) to write at the commit, all
        of the transaction's at once: for changes to rows that every transaction touches
        (the spam model's counts), whose row locks are then held for the commit only."""
        deferred = self.session.info.setdefault(_DEFERRED, {}).setdefault(kind, [])
        deferred.extend((id(self), row) for row in rows)

    def discard(self) -> None:
        """Forget what this recorder recorded: its part of the transaction rolled back."""
        for row, names in self._held_changes:
            # Not made after all, whether still waiting or written by a flush in the
            # SAVEPOINT that rolled back: the row shows the database's again.
            self.session.expire(row, names)
        self._held_changes.clear()
        mine = {id(item) for _, item in self._logged}
        pending = pending_events(self.session)
        pending[:] = [event for event in pending if id(event) not in mine]
        for rows in self.session.info.get(_DEFERRED, {}).values():
            rows[:] = [(owner, row) for owner, row in rows if owner != id(self)]
        self._logged.clear()
        self.queued_mail.clear()

    def lock(self, row: Any) -> None:
        """Re-read ``row`` under a row lock before a check-then-change.

        Two workers on PostgreSQL (read committed) that opt out the same contact at once
        would otherwise both see it mailable and both record the change; with the lock the
        second one waits and sees the first one's commit. SQLite writers hold the database
        lock from ``BEGIN IMMEDIATE`` on, so there is nothing to do there.
        """
        if self.session.get_bind().dialect.name == "sqlite" or _held(self.session, row):
            return
        self.session.flush()
        self.session.refresh(row, with_for_update=True)

    def change(self, row: Any, change: Change, **values: Any) -> bool:
        """Make ``change`` to ``row`` with ``values``; True when it was made, and ``row``
        then holds ``values`` as committed ones, so that no flush writes them again.

        The statement is the check and the row lock at once: of two transactions making
        one change (two nodes opting out one contact), the second waits for the first and
        finds it made (PostgreSQL evaluates the WHERE again on the row it waited for;
        SQLite has one writer). The hot changes of the message handlers use it: it costs
        a fraction of changing the object and flushing it through the ORM's unit of work
        after a ``lock`` read. A row the transaction holds (``hold``: the processor's
        batch reads its contacts so) is checked in Python instead, and its UPDATE waits
        for the commit, or for the next flush of the ORM's own changes."""
        params = {"b_id": row.id, **{f"b_{key}": value for key, value in values.items()}}
        if _held(self.session, row):
            if not change.applies(row):
                return False
            self.defer(_CHANGES, [(change.statement, params, row)])
            self._held_changes.append((row, list(values)))
        else:
            self.session.flush()  # the row's own pending changes go first, as they would
            if not self.session.connection().execute(change.statement, params).rowcount:
                # Made already (maybe by another node meanwhile): the object shows it as
                # it is, also to a caller that reads it once the session is closed.
                self.session.refresh(row, attribute_names=list(values))
                return False
        for key, value in values.items():
            set_committed_value(row, key, value)
        return True

    def note(self, action: str, **fields: Any) -> None:
        """A log line for after the commit that is not an audit event (``mail.queued``)."""
        self._logged.append((action, fields))

    def emit_logs(self) -> None:
        """After the commit: each event's log line, then the listeners."""
        for action, item in self._logged:
            fields = item if isinstance(item, dict) else {**item.fields(), "event_id": item.id}
            log.info(action, **fields)
            hear(action, fields)
        self._logged.clear()


def hear(action: str, fields: dict[str, Any]) -> None:
    """Tell the listeners of a committed event: one of this process's, or one that the
    processing process relayed (``service.processing``)."""
    for listener in _LISTENERS:
        listener(action, fields)
