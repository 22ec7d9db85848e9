"""``feedback-mta classify``: the contact check run over every existing contact.

Cross-account counts are computed once for every address in enough accounts, not per
contact, so a million contacts take minutes, not hours.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, select

from feedback_mta import logs
from feedback_mta.actions import Actor, unit_of_work
from feedback_mta.actions.quality import policy, source_ips, verdict_for
from feedback_mta.config import Config
from feedback_mta.quality.verdict import Level, name_key
from feedback_mta.store import db
from feedback_mta.store.models import Contact, Lead, table_of, utcnow

log = logs.get(__name__)

_C = table_of(Contact)


def classify_all(engine: Engine, config: Config, *, account: int | None = None, actor: Actor,
                 progress: Callable[[int], None] | None = None, batch: int = 500) -> dict[str, Any]:
    """Check every contact (of one account, or all) as if it arrived now; a summary."""
    now = utcnow()
    levels: Counter = Counter()
    reasons: Counter = Counter()
    changed = checked = 0
    with Session(db.reader(engine)) as session:
        pol = policy(session, config)
        total = session.exec(select(sa.func.count()).select_from(Contact).where(
            *(() if account is None else (Contact.account_id == account,)))).one()
        conn = session.connection()
        multi = list(conn.execute(sa.select(_C.c.email).group_by(_C.c.email).having(
            sa.func.count(sa.distinct(_C.c.account_id))
            >= pol.cross_account_threshold)).scalars())
        names: dict[str, set[str]] = defaultdict(set)
        for start in range(0, len(multi), 500):
            for email, first, last in conn.execute(
                    sa.select(_C.c.email, _C.c.first_name, _C.c.last_name)
                    .where(_C.c.email.in_(multi[start:start + 500]))):
                names[email].add(name_key(first, last))
    deadline = now + timedelta(seconds=config.review.period)
    last_id = 0
    while True:
        with unit_of_work(engine, actor) as uow:
            query = select(Contact).where(col(Contact.id) > last_id)
            if account is not None:
                query = query.where(Contact.account_id == account)
            contacts = uow.session.exec(query.order_by(col(Contact.id)).limit(batch)).all()
            if not contacts:
                break
            ids = [c.id for c in contacts if c.id is not None]
            lead_ips: dict[int, list[str]] = defaultdict(list)
            leads = table_of(Lead)
            for cid, ip in uow.session.connection().execute(
                    sa.select(leads.c.contact_id, leads.c.source_ip).where(
                        leads.c.contact_id.in_(ids), leads.c.source_ip.is_not(None))):
                lead_ips[cid].append(ip)
            for contact in contacts:
                verdict = verdict_for(contact, pol,
                                      source_ips(contact, lead_ips[contact.id or 0]),
                                      len(names.get(contact.email, ())))
                changed += uow.quality.apply(contact, verdict, deadline)
                levels[verdict.level.value] += 1
                reasons.update(verdict.reasons)
            checked += len(contacts)
            last_id = ids[-1]
        if progress is not None:
            progress(len(contacts))
    summary = {"checked": checked, "total": total, "changed": changed,
               **{level.value: levels.get(level.value, 0) for level in Level},
               "reasons": dict(reasons.most_common())}
    log.info("review.classified", account_id=account, **{k: v for k, v in summary.items()
                                                          if k != "reasons"})
    return summary
