"""The one place that changes accounts, users, contacts and leads.

Every change writes an ``Event`` row (who, what, why, from which inbound message) in the
same transaction as the change, and a log line with the same stable name once it is
committed (``audit``; the names are in ``events``). The message handlers, the scheduled
jobs and the command line all come through here, so the audit trail is complete by
construction.

One module per area (``accounts``, ``contacts``, ``leads``, ``quality``, ``feedback``,
``mail``, ``inbox``, ``registration``, ``platform``, ``review``, ``learning``,
``behaviour``), each a set of methods on the one
``Recorder``; ``Actions`` is all of them over one transaction. Operations are idempotent:
opting out an opted-out contact changes nothing and records nothing, so a message
processed twice (or a scheduler run twice) changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy.engine import Engine
from sqlmodel import Session

from feedback_mta.actions.accounts import normalize_email
from feedback_mta.actions.audit import (
    CLI,
    SCHEDULER,
    SYSTEM,
    ActionError,
    Actor,
    Invalid,
    NotFound,
    listen,
    write_events,
)
from feedback_mta.actions.feedback import FeedbackActions
from feedback_mta.actions.inbox import InboxActions
from feedback_mta.actions.mail import MailActions
from feedback_mta.actions.platform import PlatformActions
from feedback_mta.actions.registration import RegistrationActions
from feedback_mta.actions.review import ReviewActions
from feedback_mta.addresses import notification_message_id

__all__ = ["CLI", "SCHEDULER", "SYSTEM", "ActionError", "Actions", "Actor", "Invalid",
           "NotFound", "listen", "normalize_email", "notification_message_id", "unit_of_work",
           "write_events"]


class Actions(RegistrationActions, FeedbackActions, ReviewActions, MailActions, InboxActions,
              PlatformActions):
    """Every action, over one session (one transaction)."""


@contextmanager
def unit_of_work(engine: Engine, actor: Actor,
                 inbound_message_id: int | None = None) -> Iterator[Actions]:
    """A transaction for a batch of actions: commit, then log what was done."""
    with Session(engine, expire_on_commit=False) as session:
        actions = Actions(session, actor, inbound_message_id)
        yield actions
        session.commit()
        actions.emit_logs()
