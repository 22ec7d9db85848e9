"""The lead spam model's counts (``quality.spam``): a lead's features counted as it is
scored, and again when it is flagged or a person restores it (a label), in the transaction
of that change, so the next lead already benefits. Not an audit event of its own: the label is the
``lead.flagged_spam`` / ``lead.restored`` event.

The counts are written at the commit, a transaction's all in one statement (``Recorder.defer``):
every flag adds to the platform's count of the labels, one row, and on PostgreSQL the
first flag of a processing batch held that row's lock until the batch committed, so that
the batches of two workers ran one after the other. A read of the counts adds the
transaction's own, not written yet, to what it read (writing them first took the row locks
then: registrations committed together queued on one batch's)."""

from __future__ import annotations

from collections.abc import Iterable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session

from feedback_mta.actions.audit import Recorder, deferred_rows, deferred_writer
from feedback_mta.quality import spam
from feedback_mta.store import db
from feedback_mta.store.models import SpamFeature, table_of

_F = table_of(SpamFeature)

_COUNTED = ("seen", "spam", "ham", "auto")
# Built once (the statement runs for every new lead, on the driver's cursor:
# ``db.Prepared``), the lists each one parameter (``db.one_of``), whatever the number of
# features. The key and the counts only, fetched at once: a long lead reads some 90 rows.
_COUNTS = db.Prepared(sa.select(
    _F.c.account_id, _F.c.feature, *(_F.c[name] for name in _COUNTED)).where(
    db.one_of(_F.c.account_id, "accounts"), db.one_of(_F.c.feature, "features")))


def _upsert(dialect: str) -> sa.Insert:
    insert = (sqlite_insert if dialect == "sqlite" else pg_insert)(_F)
    return insert.on_conflict_do_update(
        index_elements=[_F.c.account_id, _F.c.feature],
        set_={"seen": _F.c.seen + insert.excluded.seen,
              "spam": _F.c.spam + insert.excluded.spam,
              "ham": _F.c.ham + insert.excluded.ham,
              "auto": _F.c.auto + insert.excluded.auto})


_UPSERTS = {dialect: _upsert(dialect) for dialect in ("sqlite", "postgresql")}
#: What ``learn`` defers to the commit (``Recorder.defer``).
_COUNTS_KIND = "spam_counts"


@deferred_writer(_COUNTS_KIND)
def _write_counts(session: Session, rows: list[dict]) -> None:
    """A transaction's counts, added up per (account, feature), in one statement, in one
    order everywhere: two transactions counting the same features (two nodes at once on
    PostgreSQL) take the row locks in the same order."""
    total: dict[tuple[int, str], dict] = {}
    for row in rows:
        key = (row["account_id"], row["feature"])
        if key not in total:
            total[key] = dict(row)
        else:
            for name in _COUNTED:
                total[key][name] += row[name]
    session.connection().execute(_UPSERTS[session.get_bind().dialect.name],
                                 [total[key] for key in sorted(total)])


class Learning:
    """The spam model's counts: read as a lead is scored, added to by a score and a label."""

    __slots__ = ("recorder", "session")

    def __init__(self, recorder: Recorder) -> None:
        self.recorder, self.session = recorder, recorder.session

    def counts(self, account_id: int, features: Iterable[str]
               ) -> tuple[dict[str, spam.Counts], dict[str, spam.Counts]]:
        """(the platform's, the account's) counts of these features (and of the labels)."""
        wanted = [*features, *spam.COUNTERS]
        totals: dict[tuple[int, str], list[int]] = {
            (owner, feature): [seen, spam_, ham, auto]
            for owner, feature, seen, spam_, ham, auto in _COUNTS.rows(
                self.session.connection(), {"accounts": [0, account_id], "features": wanted})}
        asked = set(wanted)
        for row in deferred_rows(self.session, _COUNTS_KIND):  # this transaction's own
            if row["account_id"] in (0, account_id) and row["feature"] in asked:
                total = totals.setdefault((row["account_id"], row["feature"]), [0, 0, 0, 0])
                for i, name in enumerate(_COUNTED):
                    total[i] += row[name]
        platform: dict[str, spam.Counts] = {}
        account: dict[str, spam.Counts] = {}
        for (owner, feature), (seen, spam_, ham, auto) in totals.items():
            counts = spam.Counts(seen, spam_, ham, auto)
            (platform if owner == 0 else account)[feature] = counts
        return platform, account

    def learn(self, account_id: int, features: Iterable[str], *, seen: int = 0,
              spam_: int = 0, ham: int = 0, auto: int = 0) -> None:
        """Add to the counts of these features (and the labels'), the platform's and the
        account's, at the commit."""
        self._add(account_id, {*features, spam.LABELS}, seen, spam_, ham, auto)

    def restored_from_system(self, account_id: int) -> None:
        """Count a person's restore of a lead the system flagged (``spam.AUTO_RESTORED``:
        the evidence of a false flag the threshold answers to), the platform's and the
        account's, at the commit."""
        self._add(account_id, {spam.AUTO_RESTORED}, 0, 0, 1, 0)

    def _add(self, account_id: int, features: set[str], seen: int, spam_: int, ham: int,
             auto: int) -> None:
        self.recorder.defer(_COUNTS_KIND, (
            {"account_id": a, "feature": f, "seen": seen, "spam": spam_, "ham": ham,
             "auto": auto}
            for a in {0, account_id} for f in features))
