"""The outbox repaired by hand (``feedback-mta outbox``): failed mail put back in the queue
once its cause is fixed, and old mail that is done with (sent, failed, expired) dropped.
Each is an audit event, as every other change is; a running server's ``outbox.flush``
sends what was put back."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from feedback_mta import events
from feedback_mta.actions.audit import Invalid, NotFound, Recorder
from feedback_mta.store.models import OutboundMessage, OutboundState, table_of, utcnow

_T = table_of(OutboundMessage)
#: The states a mail ends in: only these are ever purged.
DONE = (OutboundState.SENT, OutboundState.FAILED, OutboundState.EXPIRED)


class Outbox:
    """Outbound mail put back in the queue, or purged."""

    __slots__ = ("recorder", "session")

    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.session = recorder, recorder.session

    def _check_failed(self, mail_ids: Sequence[int]) -> list[int]:
        """The named ids, once each, all failed; else ``NotFound`` / ``Invalid`` naming the
        first that is not."""
        states = {row.id: row.state for row in self.session.execute(
            sa.select(_T.c.id, _T.c.state).where(_T.c.id.in_(list(mail_ids))))}
        for mail_id in mail_ids:
            if mail_id not in states:
                raise NotFound(f"no outbound mail {mail_id}")
            if states[mail_id] != OutboundState.FAILED:
                raise Invalid(f"outbound mail {mail_id} is {states[mail_id]}, not failed")
        return list(dict.fromkeys(mail_ids))

    def retry(self, mail_ids: Sequence[int], *, every: bool = False,
              now: datetime | None = None) -> list[int]:
        """Put failed mail back in the queue, due now, with its attempts counted afresh;
        the ids done. With ``every``, all failed mail."""
        ids = (self._check_failed(mail_ids) if not every else list(self.session.execute(
            sa.select(_T.c.id).where(_T.c.state == OutboundState.FAILED.value)).scalars()))
        if not ids:
            return []
        done = self.session.execute(
            sa.update(_T).where(_T.c.id.in_(ids), _T.c.state == OutboundState.FAILED.value)
            .values(state=OutboundState.QUEUED.value, attempts=0,
                    next_attempt_at=now or utcnow(), last_error=None)
            .returning(_T.c.id, _T.c.purpose)).all()
        for mail_id, purpose in sorted(done):
            self.recorder.record(events.MAIL_RETRIED, "outbound_message", mail_id, None,
                                 purpose=purpose)
        return sorted(mail_id for mail_id, _ in done)

    def purge(self, before: datetime) -> dict[str, int]:
        """Drop the mail made before then that is done with (sent, failed or expired);
        how many of each. Queued mail is never dropped."""
        gone = self.session.execute(
            sa.delete(_T).where(_T.c.created_at < before,
                                _T.c.state.in_([s.value for s in DONE]))
            .returning(_T.c.state)).scalars().all()
        counts = {state.value: gone.count(state.value) for state in DONE}
        if gone:
            self.recorder.record(events.MAIL_PURGED, "outbound_message", None, None,
                                 purged=len(gone), before=before.isoformat(),
                                 counts=counts)
        return counts
