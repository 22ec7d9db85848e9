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
from tests.support import inbound_rows, message, seed


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


def test_a_batch_is_one_commit_with_duplicates_in_it_and_before_it(engine, cfg):
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


def test_a_batch_reads_its_contacts_in_one_statement(engine, cfg):
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
        engine, cfg, tmp_path):
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


def test_a_failed_handler_leaves_its_held_contact_to_the_next_message(engine, cfg,
                                                                     monkeypatch):
    """A handler that changed a contact of the batch and then failed: its change is not
    made (SAVEPOINT), and the contact shows the database's state again, so another
    message of the same batch for that contact still makes its own change."""
    s = seed(engine, cfg, contacts=2)
    real = process.HANDLERS[Kind.UNSUBSCRIBE]

    def acts_then_fails(ctx):
        outcome = real(ctx)
        if ctx.parsed.subject == "poison":
            raise RuntimeError("handler broke after acting")
        return outcome

    monkeypatch.setitem(process.HANDLERS, Kind.UNSUBSCRIBE, acts_then_fails)
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


def test_a_failing_handler_rolls_back_only_its_own_message(engine, cfg, monkeypatch):
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
    # The first try rolled back whole; the second ran each of the three in a SAVEPOINT
    # (taken when its handler writes: the batch's contacts are held, their changes wait
    # for the commit, so none here).
    assert len(commits) == 1 and len(savepoints) <= 3
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
