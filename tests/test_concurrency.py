"""Two transactions that change the same row at once decide one after the other.

Several workers share one database; on PostgreSQL (read committed) two of them may act on
the same contact or lead at the same moment. Each check-then-change action re-reads its row
under a lock, or makes its change with one conditional UPDATE, so the second waits for the
first's commit and then sees it: one change, one event, never two.
"""

from __future__ import annotations

import threading

import pytest
from sqlmodel import Session, select

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.store.models import Event
from tests.support import seed


@pytest.mark.parametrize("change", ["opt_out", "mark_undeliverable", "flag_spam"])
def test_the_second_of_two_concurrent_changes_sees_the_first(engine, cfg, change):
    s = seed(engine, cfg, contacts=1)
    second: list[bool] = []

    def act(uow):
        if change == "opt_out":
            return uow.contacts.opt_out(uow.contacts.get(s.contact_ids[0]), "unsubscribe")
        if change == "mark_undeliverable":
            return uow.contacts.mark_undeliverable(uow.contacts.get(s.contact_ids[0]), "5.1.1")
        return uow.leads.flag_spam(uow.leads.get(s.lead_id))

    def second_worker():
        with unit_of_work(engine, CLI) as uow:
            second.append(act(uow))

    with unit_of_work(engine, CLI) as uow:
        assert act(uow) is True
        # The first transaction holds its change uncommitted while the second one starts.
        worker = threading.Thread(target=second_worker)
        worker.start()
        worker.join(0.5)
    worker.join(30)
    assert not worker.is_alive()
    assert second == [False]
    name = {"opt_out": "contact.opted_out", "mark_undeliverable": "contact.undeliverable",
            "flag_spam": "lead.flagged_spam"}[change]
    with Session(engine) as session:
        assert len(session.exec(select(Event).where(Event.action == name)).all()) == 1


def test_event_ids_follow_commit_order(engine, cfg):
    """The feed and the webhooks read events by id: a reader that saw event N must never
    find an event below N later. A transaction whose events are being written holds the
    others' event writes until it commits, so the later commit gets the higher id."""
    from feedback_mta.actions.audit import write_events

    s = seed(engine, cfg, contacts=2)
    committed: list[str] = []

    def second_worker():
        with unit_of_work(engine, CLI) as uow:
            uow.contacts.opt_out(uow.contacts.get(s.contact_ids[1]), "unsubscribe")
        committed.append("second")

    with unit_of_work(engine, CLI) as uow:
        uow.contacts.opt_out(uow.contacts.get(s.contact_ids[0]), "unsubscribe")
        write_events(uow.session)  # inserted (an id taken), not committed yet
        worker = threading.Thread(target=second_worker)
        worker.start()
        worker.join(0.5)
        assert committed == []  # waits for us
        committed.append("first")
    worker.join(30)
    assert committed == ["first", "second"]
    with Session(engine) as session:
        rows = session.exec(select(Event).where(Event.action == "contact.opted_out")
                            .order_by(Event.id)).all()
    assert [r.subject_id for r in rows] == list(s.contact_ids[:2])


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_flags_in_two_open_transactions_do_not_wait_for_each_other(engine, cfg):
    """Every flag adds to the platform's count of the labels, one row. The counts are
    written at the commit, so a transaction that flagged a lead and goes on with other
    messages does not hold that row against another worker flagging another lead; and
    a handler rolled back takes its counts with it."""
    from feedback_mta.quality import spam
    from feedback_mta.store.models import SpamFeature

    s = seed(engine, cfg, contacts=1)
    with unit_of_work(engine, CLI) as uow:
        other = uow.leads.add(s.book, s.account_id, "lead9@people.test", "Cy", "Ng",
                              "192.0.2.9").id
    done: list[bool] = []

    def second_worker():
        with unit_of_work(engine, CLI) as uow:
            assert uow.leads.flag_spam(uow.leads.get(other))
        done.append(True)

    with unit_of_work(engine, CLI) as uow:
        assert uow.leads.flag_spam(uow.leads.get(s.lead_id))
        worker = threading.Thread(target=second_worker)
        worker.start()
        worker.join(10)
        assert done == [True]  # committed while this one is still open
        undone = type(uow)(uow.session, CLI)  # a handler's, in the same batch
        undone.learning.learn(s.account_id, ["x"], spam_=5)
        undone.recorder.discard()  # ... that failed: its counts go with its events
    with Session(engine) as session:
        labels = session.exec(select(SpamFeature).where(
            SpamFeature.account_id == 0, SpamFeature.feature == spam.LABELS)).one()
    assert labels.spam == 2


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_registrations_committed_together_hold_no_count_row_before_the_commit(engine, cfg):
    """Registrations committed together (``actions.together``) score one after the other
    in one transaction: the second reads the spam model's counts with the first's added,
    without writing them first (which took the platform's rows, every registration's, for
    the rest of the batch), so another worker's registration commits meanwhile; and the
    counts at the end are all three."""
    from feedback_mta.actions import UnitOfWork
    from feedback_mta.actions.registration import read_comments
    from feedback_mta.quality import spam
    from feedback_mta.store.models import SpamFeature

    s = seed(engine, cfg, contacts=1)
    comments = read_comments(cfg, "please call me")
    done: list[bool] = []

    def register(uow, email):
        return uow.registration.add_lead(cfg, s.account_id, email, "Ann", "Lee",
                                         "192.0.2.1", comments)

    def other_worker():
        with unit_of_work(engine, CLI) as uow:
            register(uow, "other@people.test")
        done.append(True)

    with unit_of_work(engine, CLI) as uow:
        register(uow, "first@people.test")
        second = UnitOfWork(uow.session, CLI)  # the next request of the batch
        seen = second.learning.counts(s.account_id, [])[0][spam.LABELS].seen
        register(second, "second@people.test")
        worker = threading.Thread(target=other_worker)
        worker.start()
        worker.join(10)
        assert done == [True]  # committed while the batch is still open
    assert seen >= 1  # the first registration's count, not written yet, was read
    with Session(engine) as session:
        labels = session.exec(select(SpamFeature).where(
            SpamFeature.account_id == 0, SpamFeature.feature == spam.LABELS)).one()
    assert labels.seen == seen + 2
