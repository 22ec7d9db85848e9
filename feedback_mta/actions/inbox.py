"""Stored inbound messages put back to ``received``: failed ones to retry, ignored ones to
reprocess (a reply refused before its sender was given the role). A running server (or its
sweep) processes them again; each requeue is an audit event."""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from feedback_mta import events
from feedback_mta.actions.audit import Invalid, NotFound, Recorder
from feedback_mta.store.models import InboundMessage, MessageState, table_of

_T = table_of(InboundMessage)


class Inbox:
    """Stored inbound messages put back to be processed again."""

    __slots__ = ("recorder", "session")

    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.session = recorder, recorder.session

    def requeue(self, message_ids: Sequence[int], *, state: MessageState,
                every: bool = False) -> list[int]:
        """Put messages in ``state`` (failed or ignored) back to ``received``; the ids done.

        Named ids must exist and be in that state (``NotFound`` / ``Invalid`` name the first
        that is not); with ``every``, all messages in that state. Ignored duplicates stay
        ignored: the copy of a message that acted must not act again."""
        if state not in (MessageState.FAILED, MessageState.IGNORED):
            raise Invalid(f"only failed or ignored messages can be requeued, not {state}")
        query = sa.select(_T.c.id, _T.c.state, _T.c.reason, _T.c.raw)
        if not every:
            rows = {r.id: r for r in self.session.execute(
                query.where(_T.c.id.in_(list(message_ids))))}
            for message_id in message_ids:
                row = rows.get(message_id)
                if row is None:
                    raise NotFound(f"no inbound message {message_id}")
                if row.state != state.value:
                    raise Invalid(f"inbound message {message_id} is {row.state}, not "
                                  f"{state.value}")
                if row.reason == "duplicate":
                    raise Invalid(f"inbound message {message_id} is a duplicate of another; "
                                  "reprocess that one")
                if not row.raw:
                    raise Invalid(f"inbound message {message_id} has no raw bytes any more "
                                  "(purged by [retention] raw_days)")
            ids = list(dict.fromkeys(message_ids))
        else:
            ids = list(self.session.execute(sa.select(_T.c.id).where(
                _T.c.state == state.value,
                sa.or_(_T.c.reason.is_(None), _T.c.reason != "duplicate"))).scalars())
        if not ids:
            return []
        done = list(self.session.execute(
            sa.update(_T).where(_T.c.id.in_(ids), _T.c.state == state.value)
            .values(state=MessageState.RECEIVED.value, processed_at=None, reason=None,
                    error=None, dedupe_key=None).returning(_T.c.id)).scalars())
        for message_id in sorted(done):
            self.recorder.record(events.INBOX_REQUEUED, "inbound_message", message_id, None,
                                 previous_state=state.value)
        return sorted(done)
