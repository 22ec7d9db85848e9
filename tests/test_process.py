"""``process_batch``: one transaction for many messages, without one spoiling the others.

Offline (no SMTP): messages are stored through the real intake into a real database, then
processed in one batch, the way the Processor does after a group commit.
"""

from __future__ import annotations

import json
import sqlite3

import pytest
import sqlalchemy as sa
from sqlalchemy import event

from feedback_mta import config as config_mod
from feedback_mta.addresses import AddressBook
from feedback_mta.edge.intake import Arrival, Intake
from feedback_mta.handlers.base import Settings
from feedback_mta.reading.classify import Kind
from feedback_mta.reading.hooks.base import dedupe_key
from feedback_mta.service import process
from feedback_mta.service.process import process_batch
from feedback_mta.store import db
from feedback_mta.store.models import Contact, Event
from tests.conftest import write_config
from tests.support import inbound_rows, message, seed, wait_until


def _store(engine, arrivals: list[Arrival]) -> list[int]:
    intake = Intake(engine)
    intake.start()
    try:
        return [f.result(10) for f in [intake.submit(a) for a in arrivals]]
    finally:
        intake.stop()


def _statuses(engine) -> list[str]:
    with engine.connect() as conn:
        return list(conn.execute(sa.select(Contact.status).order_by(Contact.id)).scalars())


def _commits(engine) -> list[int]:
    seen: list[int] = []
    event.listen(engine, "commit", lambda conn: seen.append(1))
    return seen


def _savepoints(engine) -> list[str]:
    """The SAVEPOINTs taken from now on (SQLite's and PostgreSQL's dialects alike)."""
    seen: list[str] = []
    event.listen(engine, "savepoint", lambda conn, name: seen.append(name))
    return seen


@pytest.fixture
def one_transaction(monkeypatch) -> None:
    """SQLite's batch ends its transaction after ``TRANSACTION_SECONDS`` (10 ms): on a busy
    machine a test's batch then became two, and its counts of statements and commits
    failed. The tests that count them run the batch as one transaction."""
    monkeypatch.setattr(process, "TRANSACTION_SECONDS", float("inf"))


def test_a_batch_is_one_commit_with_duplicates_in_it_and_before_it(engine, cfg, one_transaction):
    s = seed(engine, cfg, contacts=3)
    book = AddressBook.from_config(cfg)
    first = message(subject="unsubscribe", message_id="a@client.test")
    [earlier] = _store(engine, [Arrival(first, "", (s.unsubscribe(s.contact_ids[0]),))])
    assert process_batch(engine, book, [earlier])[earlier].reason == "opted out"

    again = message(subject="unsubscribe", body="twice", message_id="b@client.test")
    ids = _store(engine, [
        Arrival(first, "", (s.unsubscribe(s.contact_ids[0]),)),   # copy of the earlier one
        Arrival(again, "", (s.unsubscribe(s.contact_ids[1]),)),
        Arrival(again, "", (s.unsubscribe(s.contact_ids[1]),)),   # copy in the same batch
        Arrival(message(), "", (s.unsubscribe(s.contact_ids[2]),)),
    ])
    commits, savepoints = _commits(engine), _savepoints(engine)
    outcomes = process_batch(engine, book, ids)
    assert len(commits) == 1
    assert savepoints == []  # no handler raised: none needed
    assert [(outcomes[i].state.value, outcomes[i].reason) for i in ids] == [
        ("ignored", "duplicate"), ("processed", "opted out"), ("ignored", "duplicate"),
        ("processed", "opted out")]
    rows = {r["id"]: r for r in inbound_rows(engine)}
    assert rows[ids[0]]["duplicate_of"] == earlier
    assert rows[ids[2]]["duplicate_of"] == ids[1]
    assert _statuses(engine) == ["opted_out"] * 3
    # Processed already: a second run claims nothing and changes nothing.
    assert process_batch(engine, book, ids) == {}


def test_a_batch_reads_its_contacts_in_one_statement(engine, cfg, one_transaction):
    """Each message's contact is read before the handlers run, all in one SELECT (one round
    trip on PostgreSQL); a contact deleted since its token was made is looked for alone
    and not found, and its message changes nothing."""
    s = seed(engine, cfg, contacts=4)
    book = AddressBook.from_config(cfg)
    with engine.begin() as conn:
        conn.execute(sa.delete(Contact).where(Contact.id == s.contact_ids[3]))
    ids = _store(engine, [Arrival(message(body=f"stop {cid}"), "", (s.unsubscribe(cid),))
                          for cid in s.contact_ids])
    reads: list[str] = []

    def read(conn, cursor, statement: str, *_) -> None:
        if statement.lstrip().upper().startswith("SELECT") and "FROM contact" in statement:
            reads.append(statement)

    event.listen(engine, "before_cursor_execute", read)
    outcomes = process_batch(engine, book, ids)
    assert [outcomes[i].reason for i in ids] == ["opted out"] * 3 + ["unknown contact"]
    assert len(reads) == 2, reads  # the batch's four ids, then the missing one alone
    assert _statuses(engine) == ["opted_out"] * 3


def _bounce(n: int, address: str) -> Arrival:
    """A Mailgun ``failed`` (permanent) event for ``address``, as ``/hooks/mailgun`` stores
    it once its signature was verified."""
    body = json.dumps({"event-data": {
        "id": f"ev{n}", "event": "failed", "severity": "permanent", "reason": "bounce",
        "recipient": address, "delivery-status": {"code": 550, "message": "5.1.1 unknown"},
    }}).encode()
    return Arrival(body, "", (), protocol="http", provider="mailgun",
                   key=dedupe_key("mailgun", f"ev{n}"))


def test_a_batch_of_esp_bounces_takes_its_contacts_and_changes_them_at_once(
        engine, cfg, tmp_path, one_transaction):
    """An ESP's events name their contacts by address: the batch reads them all in one
    SELECT (locked until the commit) and makes them unmailable in one UPDATE (one
    executemany) at the commit, on PostgreSQL two round trips a batch, not two a message
    (which left PostgreSQL's processing seconds behind a faster intake). A contact
    bounced twice in the batch is changed once; an unknown address is looked up alone."""
    s = seed(engine, cfg, contacts=4)
    settings = Settings.from_config(config_mod.load(write_config(
        tmp_path / "hooks.toml", cfg.database.url,
        webhooks={"mailgun": {"signing_key": "k" * 16, "account": s.account_id}})))
    addresses = [f"lead{i}@people.test" for i in range(4)]
    ids = _store(engine, [_bounce(i, a) for i, a in
                          enumerate([*addresses, addresses[1], "nobody@people.test"])])
    statements: list[tuple[str, bool]] = []

    def seen(conn, cursor, statement: str, parameters, context, executemany) -> None:
        if " contact" in statement:
            statements.append((" ".join(statement.split()[:2]), executemany))

    event.listen(engine, "before_cursor_execute", seen)
    outcomes = process_batch(engine, s.book, ids, settings)
    assert [outcomes[i].reason for i in ids] == ["hard bounce"] * 5 + ["unattributed"]
    assert statements == [("SELECT contact.id,", False),  # the batch's five, then the unknown
                          ("SELECT contact.id,", False), ("UPDATE contact", True)], statements
    with engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).where(
            Contact.undeliverable_at.is_not(None))).scalar() == 4
        assert conn.execute(sa.select(sa.func.count()).where(
            Event.action == "contact.undeliverable")).scalar() == 4


def test_a_batchs_changes_of_its_contacts_are_one_update_per_kind_of_change(
        engine, cfg, tmp_path, one_transaction):
    """Opt-outs and bounces interleaved in a batch: the held contacts' changes go to the
    database at the commit as one executemany per statement, not one per run of the same
    statement; a contact changed both ways keeps the order of its changes."""
    s = seed(engine, cfg, contacts=5)
    settings = Settings.from_config(config_mod.load(write_config(
        tmp_path / "hooks.toml", cfg.database.url,
        webhooks={"mailgun": {"signing_key": "k" * 16, "account": s.account_id}})))
    c = s.contact_ids
    ids = _store(engine, [
        Arrival(message(body="stop 0"), "", (s.unsubscribe(c[0]),)),
        _bounce(1, "lead1@people.test"),
        Arrival(message(body="stop 2"), "", (s.unsubscribe(c[2]),)),
        _bounce(3, "lead3@people.test")])
    updates: list[bool] = []

    def seen(conn, cursor, statement: str, parameters, context, executemany) -> None:
        if statement.startswith("UPDATE contact"):
            updates.append(executemany)

    event.listen(engine, "before_cursor_execute", seen)
    outcomes = process_batch(engine, s.book, ids, settings)
    assert [outcomes[i].reason for i in ids] == ["opted out", "hard bounce"] * 2
    assert updates == [True, True], updates
    assert _statuses(engine) == ["opted_out", "active", "opted_out", "active", "active"]
    with engine.connect() as conn:
        bounced = conn.execute(sa.select(Contact.id).where(
            Contact.undeliverable_at.is_not(None)).order_by(Contact.id)).scalars().all()
    assert bounced == [c[1], c[3]]

    # One contact opted out and bounced in one batch: both changes, in their order.
    updates.clear()
    ids = _store(engine, [Arrival(message(body="stop 4"), "", (s.unsubscribe(c[4]),)),
                          _bounce(5, "lead4@people.test")])
    outcomes = process_batch(engine, s.book, ids, settings)
    assert [outcomes[i].reason for i in ids] == ["opted out", "hard bounce"]
    assert len(updates) == 2, updates  # each change alone, in the order made
    with engine.connect() as conn:
        row = conn.execute(sa.select(Contact.status, Contact.undeliverable_at).where(
            Contact.id == c[4])).one()
    assert row.status == "opted_out" and row.undeliverable_at is not None


def _poison(monkeypatch, how: str) -> None:
    """The unsubscribe handler, which for a message with subject ``poison`` acts and then
    fails: ``raises``, or ``at flush``: it adds a row that breaks a constraint, and its
    error comes at the flush of its changes (its SAVEPOINT's release), after that flush
    wrote the held rows' changes waiting for the commit."""
    from feedback_mta.store.models import Tag
    real = process.HANDLERS[Kind.UNSUBSCRIBE]

    def acts_then_fails(ctx):
        outcome = real(ctx)
        if ctx.parsed.subject == "poison":
            if how == "raises":
                raise RuntimeError("handler broke after acting")
            ctx.uow.session.add(Tag(contact_id=ctx.classification.recipient.object_id,
                                    name=None))  # NOT NULL
        return outcome

    monkeypatch.setitem(process.HANDLERS, Kind.UNSUBSCRIBE, acts_then_fails)


@pytest.mark.parametrize("how", ["raises", "at flush"])
def test_a_failed_handler_leaves_its_held_contact_to_the_next_message(engine, cfg,
                                                                     monkeypatch, how):
    """A handler that changed a contact of the batch and then failed: its change is not
    made (SAVEPOINT), and the contact shows the database's state again, so another
    message of the same batch for that contact still makes its own change (also when
    the failed one's flush had written its change in its SAVEPOINT)."""
    s = seed(engine, cfg, contacts=2)
    _poison(monkeypatch, how)
    target = s.contact_ids[0]
    ids = _store(engine, [
        Arrival(message(subject="poison", message_id="p@client.test"), "",
                (s.unsubscribe(target),)),
        Arrival(message(subject="fine", message_id="f@client.test"), "",
                (s.unsubscribe(target),))])
    outcomes = process_batch(engine, s.book, ids)
    assert [outcomes[i].state.value for i in ids] == ["failed", "processed"]
    assert outcomes[ids[1]].reason == "opted out"
    assert _statuses(engine) == ["opted_out", "active"]


def test_a_handler_failing_at_its_flush_keeps_the_batch_s_other_changes(engine, cfg,
                                                                        monkeypatch):
    """The held contacts' changes wait for the commit or the next flush; a handler whose
    own flush fails in its SAVEPOINT must not take the earlier messages' changes with it
    (their events are kept, so the changes must be too)."""
    s = seed(engine, cfg, contacts=2)
    _poison(monkeypatch, "at flush")
    ids = _store(engine, [
        Arrival(message(subject="fine", message_id="f@client.test"), "",
                (s.unsubscribe(s.contact_ids[0]),)),
        Arrival(message(subject="poison", message_id="p@client.test"), "",
                (s.unsubscribe(s.contact_ids[1]),))])
    savepoints = _savepoints(engine)
    outcomes = process_batch(engine, s.book, ids)
    assert [outcomes[i].state.value for i in ids] == ["processed", "failed"]
    assert savepoints  # the failed one's, rolled back with the UPDATE its flush wrote
    assert outcomes[ids[0]].reason == "opted out"
    with engine.connect() as conn:
        opted_out = list(conn.execute(sa.select(Event.subject_id).where(
            Event.action == "contact.opted_out")).scalars())
    assert opted_out == [s.contact_ids[0]]
    assert _statuses(engine) == ["opted_out", "active"]


def test_a_failing_handler_rolls_back_only_its_own_message(engine, cfg, one_transaction,
                                                           monkeypatch):
    s = seed(engine, cfg, contacts=3)
    book = AddressBook.from_config(cfg)
    real = process.HANDLERS[Kind.UNSUBSCRIBE]
    poisoned = s.contact_ids[1]

    def acts_then_fails(ctx):
        outcome = real(ctx)  # the opt-out and its audit event are written ...
        if ctx.parsed.subject == "poison":
            raise RuntimeError("handler broke after acting")  # ... and must be undone
        return outcome

    monkeypatch.setitem(process.HANDLERS, Kind.UNSUBSCRIBE, acts_then_fails)
    ids = _store(engine, [
        Arrival(message(subject="fine", message_id=f"m{i}@client.test"), "",
                (s.unsubscribe(cid),)) if cid != poisoned else
        Arrival(message(subject="poison", message_id="p@client.test"), "",
                (s.unsubscribe(cid),))
        for i, cid in enumerate(s.contact_ids)])
    commits, savepoints = _commits(engine), _savepoints(engine)
    outcomes = process_batch(engine, book, ids)
    assert [outcomes[i].state.value for i in ids] == ["processed", "failed", "processed"]
    # The first try rolled back whole; the second ran each of the three in a SAVEPOINT,
    # which SQLAlchemy emits when its handler writes: the batch's contacts are held,
    # their changes wait for the commit, so none here (the rollback is ``discard``'s
    # alone; ``test_a_handler_failing_at_its_flush_keeps_the_batch_s_other_changes`` rolls
    # back written ones).
    assert len(commits) == 1 and savepoints == []
    assert {r["attempts"] for r in inbound_rows(engine)} == {1}
    assert _statuses(engine) == ["opted_out", "active", "opted_out"]
    failed = next(r for r in inbound_rows(engine) if r["id"] == ids[1])
    assert failed["error"] == "RuntimeError: handler broke after acting"
    with engine.connect() as conn:
        subjects = conn.execute(sa.select(Event.subject_id)
                                .where(Event.action == "contact.opted_out")).scalars().all()
    assert sorted(subjects) == [s.contact_ids[0], s.contact_ids[2]]


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_database_error_leaves_the_whole_batch_received(engine, cfg, tmp_path):
    s = seed(engine, cfg, contacts=2)
    book = AddressBook.from_config(cfg)
    ids = _store(engine, [Arrival(message(message_id=f"x{i}@c.test"), "", (s.unsubscribe(c),))
                          for i, c in enumerate(s.contact_ids)])
    impatient = db.create_engine(config_mod.load(write_config(
        tmp_path / "short.toml", cfg.database.url, database={"busy_timeout": "0.2s"}),
        env={}).database)
    holder = sqlite3.connect(cfg.database.url.removeprefix("sqlite:///"))
    holder.execute("BEGIN IMMEDIATE")  # another writer holds the lock past busy_timeout
    try:
        with pytest.raises(sa.exc.OperationalError):
            process_batch(impatient, book, ids)
    finally:
        holder.rollback()
        holder.close()
        impatient.dispose()
    assert {r["state"] for r in inbound_rows(engine)} == {"received"}
    assert _statuses(engine) == ["active", "active"]
    outcomes = process_batch(engine, book, ids)  # and once the lock is gone, all of it
    assert {o.reason for o in outcomes.values()} == {"opted out"}


def test_a_held_contact_still_takes_new_leads_and_tags(engine, cfg):
    """A batch holds its contacts as its UPDATEs would (``FOR NO KEY UPDATE``), not with
    ``FOR UPDATE``: a registration's new lead (or a tag) for one of them checks its foreign
    key with ``FOR KEY SHARE``, which ``FOR UPDATE`` would make wait for the whole batch."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL's (SQLite's writer holds the whole database)")
    from feedback_mta.actions import AuditedSession
    from feedback_mta.actions.contacts import preload_contacts
    from feedback_mta.store.models import Tag, table_of, utcnow
    s = seed(engine, cfg, contacts=2)
    with AuditedSession(engine) as session:
        preload_contacts(session, [s.contact_ids[0]])
        with engine.connect() as other:
            other.execute(sa.text("SET lock_timeout = '2s'"))
            other.execute(sa.insert(table_of(Tag)).values(
                contact_id=s.contact_ids[0], name="registered", created_at=utcnow()))
            other.rollback()
        session.rollback()


def _waiting_for_a_lock(engine) -> bool:
    """Whether a session of the test's PostgreSQL database waits for a lock now."""
    with engine.connect() as conn:
        return bool(conn.execute(sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
            "AND datname = current_database()")).scalar())


@pytest.mark.parametrize("job", ["review", "consent", "remind"])
def test_the_deadline_jobs_lock_contacts_in_the_order_a_batch_does(engine, cfg, job):
    """A processing batch locks its contacts in id order (``preload_contacts``). The jobs
    that opt out contacts whose deadline passed, or name those near it in a digest, take
    theirs in that order too, whatever order the deadlines come in: a job that took a
    later id first, then waited on an earlier one a batch holds, while the batch waited on
    the later one, was a deadlock (PostgreSQL aborts one of the two after its
    ``deadlock_timeout``)."""
    if engine.dialect.name != "postgresql":
        pytest.skip("row locks: PostgreSQL's (SQLite's writer holds the whole database)")
    import threading
    from datetime import timedelta

    from feedback_mta.actions import AuditedSession
    from feedback_mta.actions.contacts import preload_contacts
    from feedback_mta.jobs import consent, review
    from feedback_mta.quality.verdict import SUSPECTED_TAG
    from feedback_mta.store.models import Tag, table_of, utcnow
    s = seed(engine, cfg, contacts=2)
    low, high = sorted(s.contact_ids)
    now = utcnow()
    contacts = table_of(Contact)
    with engine.begin() as conn:
        for contact_id, due in ((high, now - timedelta(hours=2)), (low, now - timedelta(hours=1))):
            if job == "remind":  # a suspected contact whose review deadline is near
                due += timedelta(hours=2, seconds=cfg.review.remind_before / 2)
            if job != "consent":  # a suspected contact past (or near) its review deadline
                conn.execute(sa.update(contacts).where(contacts.c.id == contact_id)
                             .values(review_deadline=due))
                conn.execute(sa.insert(table_of(Tag)).values(
                    contact_id=contact_id, name=SUSPECTED_TAG, created_at=now))
            else:  # a pending contact past its confirmation deadline
                conn.execute(sa.update(contacts).where(contacts.c.id == contact_id)
                             .values(status="pending", confirm_by=due))
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            if job == "remind":  # both named in the account's one digest
                review.remind_due(engine, cfg, AddressBook.from_config(cfg), now)
                with engine.connect() as conn:
                    outcome["done"] = conn.execute(sa.select(sa.func.count()).where(
                        contacts.c.reminded_at.is_not(None))).scalar()
            else:
                expire = review.expire_due if job == "review" else consent.expire_due
                outcome["done"] = expire(engine, now)
        except Exception as exc:  # a deadlock's victim, on the old order
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    with AuditedSession(engine) as session:
        preload_contacts(session, [low])  # a batch holding the earlier id
        thread.start()
        wait_until(lambda: _waiting_for_a_lock(engine), 10, "the job waiting for the held contact")
        session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
        preload_contacts(session, [high])  # ... and then the later one
        session.rollback()
    thread.join(10)
    assert outcome == {"done": 2}


def test_an_import_locks_contacts_in_the_order_a_batch_does(engine, cfg):
    """``contact import`` locks every contact it may change (the account's own, and the
    other accounts' with the same addresses, which it suspects too) in one statement, in
    id order, as a processing batch does: taken one by one as the rows came, an import
    that held a later contact and waited on an earlier one a batch held, while the batch
    waited on the later one, was a deadlock on PostgreSQL. Now the import waits, holding
    none of the batch's, and both commit. (SQLite has one writer: the same import, after
    the batch, comes to the same.)"""
    import threading

    from feedback_mta.actions import CLI, SYSTEM, AuditedSession, UnitOfWork, unit_of_work
    from feedback_mta.actions.consent import ConsentIn
    from feedback_mta.actions.contacts import preload_contacts
    from feedback_mta.quality.verdict import Level
    from feedback_mta.store.models import table_of
    ids: dict[tuple[str, str], int] = {}
    with unit_of_work(engine, CLI) as uow:
        dealers = {name: uow.accounts.add(f"Dealer {name}").id for name in "BCA"}
        for dealer, first, last in (("B", "Bob", "Stone"), ("C", "Carla", "Diaz")):
            for email in ("early@people.test", "late@people.test"):
                contact, _ = uow.contacts.add(dealers[dealer], email, first, last)
                ids[dealer, email] = contact.id
    low, high = ids["B", "early@people.test"], ids["B", "late@people.test"]
    assert low < high
    # A third name for each address: the other accounts' contacts with it are suspected
    # (``cross_account_threshold``), the later address's first, as the file has it.
    rows = [(1, {"email": "late@people.test", "first": "Dora", "last": "Fox"}),
            (2, {"email": "early@people.test", "first": "Dora", "last": "Fox"})]
    outcome: dict[str, object] = {}

    def run() -> None:
        try:
            with unit_of_work(engine, CLI) as uow:
                done = uow.registration.import_contacts(cfg, dealers["A"], rows,
                                                        ConsentIn("import"))
            outcome["done"] = dict(done.counts)
        except Exception as exc:  # a deadlock's victim, on the old order
            outcome["error"] = exc

    thread = threading.Thread(target=run)
    postgres = engine.dialect.name == "postgresql"
    with AuditedSession(engine, expire_on_commit=False) as session:
        uow = UnitOfWork(session, SYSTEM)
        preload_contacts(session, [low])  # a batch holding the earlier id
        if postgres:
            thread.start()
            wait_until(lambda: _waiting_for_a_lock(engine), 10,
                       "the import waiting for the held contact")
            session.execute(sa.text("SET LOCAL lock_timeout = '5s'"))
        preload_contacts(session, [high])  # ... and then the later one
        for contact_id in (low, high):
            uow.contacts.mark_undeliverable(uow.contacts.get(contact_id), "mailbox full")
        session.commit()
    if postgres:
        thread.join(10)
    else:
        run()
    assert outcome == {"done": {"created": 2, "existing": 0, "suspected": 2, "pending": 2}}
    contacts = table_of(Contact)
    with engine.connect() as conn:
        got = {row.id: row for row in conn.execute(sa.select(contacts).where(
            contacts.c.id.in_(list(ids.values()))))}
    assert {got[i].quality for i in ids.values()} == {Level.SUSPECTED.value}
    assert [got[i].undeliverable_reason for i in sorted(ids.values())] == [
        "mailbox full", "mailbox full", None, None]
