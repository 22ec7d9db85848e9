"""The lead spam model counted again from the leads themselves (``quality.spam``).

The counts grow as leads are scored and as people flag and restore them; a daily full
count from the leads corrects what drifted (a lead deleted with its contact, a flag undone
twice). Labels are what holds now: a lead a person flagged and that is still spam, a lead
a person restored and that is still active, a lead the system flagged and nobody restored.
On PostgreSQL the run holds an advisory lock and replaces the counts in one transaction,
so two nodes never count twice.
"""

from __future__ import annotations

from collections import Counter

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from feedback_mta import events, logs
from feedback_mta.actions import SCHEDULER, unit_of_work
from feedback_mta.quality import spam
from feedback_mta.store import db
from feedback_mta.store.models import Contact, Event, Lead, LeadStatus, SpamFeature, table_of

log = logs.get(__name__)

_F, _L, _C, _E = (table_of(m) for m in (SpamFeature, Lead, Contact, Event))


def retrain(engine: Engine) -> int | None:
    """Count every lead again; how many leads were counted (None: another node is at it)."""
    with unit_of_work(engine, SCHEDULER) as uow:
        conn = uow.session.connection()
        if not db.try_lock(conn, "spam.retrain"):
            return None
        restored = set(conn.execute(sa.select(_E.c.subject_id).where(
            _E.c.action == events.LEAD_RESTORED, _E.c.via != "auto")).scalars())
        # Restored after the system flagged it: the threshold's evidence of a false flag
        # (a person undoing their own flag is not).
        flagged_by_system = set(conn.execute(sa.select(_E.c.subject_id).where(
            _E.c.action == events.LEAD_FLAGGED_SPAM, _E.c.via == "auto")).scalars())
        counts: Counter[tuple[int, str, str]] = Counter()
        leads = 0
        for row in conn.execute(sa.select(
                _L.c.id, _L.c.account_id, _L.c.comments, _L.c.spam_reasons, _L.c.status,
                _L.c.flagged_via, _C.c.email).join(_C, _C.c.id == _L.c.contact_id)):
            leads += 1
            flagged = row.status == LeadStatus.SPAM and row.flagged_via not in (None, "auto")
            auto = row.status == LeadStatus.SPAM and row.flagged_via == "auto"
            kept = row.status == LeadStatus.ACTIVE and row.id in restored
            for feature in {*spam.features(row.comments, row.email, row.spam_reasons or ()),
                            spam.LABELS}:
                for account in {0, row.account_id}:
                    counts[(account, feature, "seen")] += 1
                    counts[(account, feature, "spam")] += flagged
                    counts[(account, feature, "ham")] += kept
                    counts[(account, feature, "auto")] += auto
            if kept and row.id in flagged_by_system:
                for account in {0, row.account_id}:
                    counts[(account, spam.AUTO_RESTORED, "seen")] += 0
                    counts[(account, spam.AUTO_RESTORED, "ham")] += 1
        keys = {(a, f) for a, f, _ in counts}
        conn.execute(sa.delete(_F))
        if keys:
            conn.execute(sa.insert(_F), [
                {"account_id": a, "feature": f, "seen": counts[(a, f, "seen")],
                 "spam": counts[(a, f, "spam")], "ham": counts[(a, f, "ham")],
                 "auto": counts[(a, f, "auto")]}
                for a, f in sorted(keys)])
    log.info("spam.retrained", leads=leads, features=len(keys))
    return leads
