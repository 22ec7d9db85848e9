"""Raw message retention: ``[retention] raw_days``, run by the scheduler (``retention.purge``).

A stored message is personal data (names, addresses, whatever a dealer wrote). Once it is
``processed`` or ``ignored`` and older than ``raw_days``, its bytes are emptied and
``purged_at`` set; the row (kind, outcome, hashes, size) and every audit event that cites
it stay, so duplicates are still recognised and ``contact show`` still says why. ``failed``
messages keep their bytes: ``inbox retry`` needs them, and an alert should have an admin
look at them long before. Batches keep each transaction short on a busy database.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from feedback_mta import logs
from feedback_mta.quality.spam import CAMPAIGN_WINDOW
from feedback_mta.store.models import (
    CommentBand,
    HookNonce,
    IdempotencyKey,
    InboundMessage,
    MessageState,
    ReviewLink,
    table_of,
    utcnow,
)

log = logs.get(__name__)

_T = table_of(InboundMessage)
_FINAL = (MessageState.PROCESSED.value, MessageState.IGNORED.value)


def purge(engine: Engine, raw_days: int, *, batch: int = 1000) -> int:
    """Empty the raw bytes of final messages processed more than ``raw_days`` ago."""
    if raw_days <= 0:
        return 0
    cutoff = utcnow() - timedelta(days=raw_days)
    total = 0
    while True:
        with engine.begin() as conn:
            ids = conn.execute(
                sa.select(_T.c.id)
                .where(_T.c.purged_at.is_(None), _T.c.processed_at < cutoff,
                       _T.c.state.in_(_FINAL))
                .order_by(_T.c.processed_at).limit(batch)).scalars().all()
            if not ids:
                break
            total += conn.execute(
                sa.update(_T).where(_T.c.id.in_(ids), _T.c.state.in_(_FINAL))
                .values(raw=b"", purged_at=utcnow())).rowcount
        if len(ids) < batch:
            break
    if total:
        log.info("retention.purged", messages=total, raw_days=raw_days)
    return total


#: How long an ``Idempotency-Key`` is remembered (what the API promises: a day).
IDEMPOTENCY_SECONDS = 86400


def forget_idempotency_keys(engine: Engine, now: datetime | None = None) -> int:
    """Forget API answers kept for their ``Idempotency-Key`` more than a day ago (and
    webhook nonces seen then, the comments' bands older than the campaign window, and
    sign-in links a day past their expiry)."""
    now = now or utcnow()
    cutoff = now - timedelta(seconds=IDEMPOTENCY_SECONDS)
    keys, nonces, bands = table_of(IdempotencyKey), table_of(HookNonce), table_of(CommentBand)
    with engine.begin() as conn:
        gone = conn.execute(sa.delete(keys).where(keys.c.created_at < cutoff)).rowcount
        # A nonce older than a day signs a request refused as stale long since.
        conn.execute(sa.delete(nonces).where(nonces.c.seen_at < cutoff))
        conn.execute(sa.delete(bands).where(
            bands.c.created_at < now - timedelta(seconds=CAMPAIGN_WINDOW)))
        links = table_of(ReviewLink)  # sign-in links a day past their expiry
        conn.execute(sa.delete(links).where(links.c.expires_at < cutoff))
    if gone:
        log.info("retention.idempotency_keys", forgotten=gone)
    return gone
