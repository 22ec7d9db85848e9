"""The one audit recorder every action writes through.

``record`` writes an ``Event`` row (who, what, why, from which inbound message) in the
transaction of the change itself, and queues the event's log line; ``emit_logs`` writes
those lines once the transaction committed, and hands each event to the listeners (the
metrics count complaints per account there). A change that rolls back leaves neither a
row nor a line.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session

from feedback_mta import logs
from feedback_mta.store.models import Event

log = logs.get(__name__)


class ActionError(Exception):
    """An action that cannot be done as asked (the message says why)."""


class NotFound(ActionError):
    pass


class Invalid(ActionError):
    pass


@dataclass(frozen=True)
class Actor:
    """Who acts: ``cli``, ``email:<sender>``, ``scheduler``, ``system``; and by which way."""

    name: str
    via: str = "cli"


CLI = Actor("cli", "cli")
SYSTEM = Actor("system", "auto")
SCHEDULER = Actor("scheduler", "auto")

#: Called with (event name, fields) for every committed event, after its log line.
Listener = Callable[[str, dict[str, Any]], None]
_LISTENERS: list[Listener] = []


def listen(listener: Listener) -> None:
    """Hear every committed event (the service's metrics do); once per listener."""
    if listener not in _LISTENERS:
        _LISTENERS.append(listener)


@dataclass
class Recorder:
    """A transaction's actions: its session, who acts, and what it recorded so far."""

    session: Session
    actor: Actor
    inbound_message_id: int | None = None
    _logged: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    #: Outbound mail queued in this transaction, to hand to the sender after the commit.
    queued_mail: list[int] = field(default_factory=list)

    def record(self, action: str, subject_type: str, subject_id: int | None,
               account_id: int | None, reason: str | None = None, **data: Any) -> Event:
        """Write an audit event now and queue its log line for after the commit."""
        event = Event(account_id=account_id, actor=self.actor.name, action=action,
                      subject_type=subject_type, subject_id=subject_id,
                      inbound_message_id=self.inbound_message_id, reason=reason,
                      data=data)
        self.session.add(event)
        fields: dict[str, Any] = {f"{subject_type}_id": subject_id, "account_id": account_id,
                                  "actor": self.actor.name, "via": self.actor.via}
        if reason:
            fields["reason"] = reason
        if self.inbound_message_id is not None:
            fields["inbound_message_id"] = self.inbound_message_id
        fields.update(data)
        self._logged.append((action, fields))
        return event

    def lock(self, row: Any) -> None:
        """Re-read ``row`` under a row lock before a check-then-change.

        Two workers on PostgreSQL (read committed) that opt out the same contact at once
        would otherwise both see it mailable and both record the change; with the lock the
        second one waits and sees the first one's commit. SQLite writers hold the database
        lock from ``BEGIN IMMEDIATE`` on, so there is nothing to do there.
        """
        if self.session.get_bind().dialect.name == "sqlite":
            return
        self.session.flush()
        self.session.refresh(row, with_for_update=True)

    def note(self, action: str, **fields: Any) -> None:
        """A log line for after the commit that is not an audit event (``mail.queued``)."""
        self._logged.append((action, fields))

    def emit_logs(self) -> None:
        """After the commit: each event's log line, then the listeners."""
        for action, fields in self._logged:
            log.info(action, **fields)
            for listener in _LISTENERS:
                listener(action, fields)
        self._logged.clear()
