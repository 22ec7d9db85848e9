"""A registration (``POST /v1/leads``) in prepared Core statements makes what the ORM's
actions made, row for row and event for event; the registrations' API key is remembered
for ``KEY_CACHE_SECONDS``, forgotten at once when revoked in this process.
"""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from feedback_mta.actions import Actor, UnitOfWork, unit_of_work
from feedback_mta.actions.quality import policy
from feedback_mta.actions.registration import flagging, read_comments
from feedback_mta.addresses import AddressBook
from feedback_mta.config import load
from feedback_mta.http.auth import KEY_CACHE_SECONDS
from feedback_mta.store import tables
from feedback_mta.store.models import ApiKey, Event, utcnow
from feedback_mta.store.states import ConsentMethod
from tests.conftest import write_config
from tests.test_api import Api
from tests.test_cli import ok_json


@pytest.fixture
def api(tmp_path, database_url, server_factory):
    """``test_api``'s: a server with its HTTP listener, two accounts, their keys."""
    from feedback_mta.store import db

    path = write_config(tmp_path / "api.toml", database_url, http={"listen": "127.0.0.1:0"})
    engine = db.create_engine(load(path, env={}).database)
    server = server_factory(path)
    yield Api(server, engine, path)
    engine.dispose()


#: Who the API's registrations act as: the first key (``Api``'s, of its first account).
AS_THE_API = Actor("api:key1", "api")
#: Made by each path: what differs is ids, times and the address.
_APART = {"id", "contact_id", "email", "notification_message_id", "created_at", "updated_at",
          "consent_at", "confirm_by", "flagged_at", "review_deadline", "opted_out_at"}


def _orm_registration(uow: UnitOfWork, cfg, account: int, email: str, body: dict) -> int:
    """A registration as ``Registration.add_lead`` made it before it was written in Core:
    the areas' ORM actions, one after the other."""
    reg = uow.registration
    comments = read_comments(cfg, body.get("comments", ""))
    contact, created = uow.contacts.add(account, email, body["first"], body["last"],
                                        body.get("ip"))
    reg.record_consent(cfg, contact, created, None, ConsentMethod.API)
    lead = uow.leads.add_for(AddressBook.from_config(cfg), contact, body.get("ip"),
                             comments.text)
    verdict = uow.quality.screen(contact, policy(uow.session, cfg), cfg.review.period)
    reg.score_lead(lead, contact, verdict, flagging(cfg), comments)
    assert lead.id is not None
    return lead.id


def _made(api, lead_id: int) -> tuple[dict, dict, list[tuple]]:
    with api.engine.connect() as conn:
        lead = conn.execute(sa.select(tables.lead).where(tables.lead.c.id == lead_id)).one()
        contact = conn.execute(sa.select(tables.contact).where(
            tables.contact.c.id == lead.contact_id)).one()
        trail = conn.execute(sa.select(Event.__table__).where(sa.or_(
            sa.and_(Event.subject_type == "lead", Event.subject_id == lead_id),
            sa.and_(Event.subject_type == "contact", Event.subject_id == contact.id)))
            .order_by(Event.id)).all()

    def keep(row: sa.Row) -> dict:
        return {k: v for k, v in row._mapping.items() if k not in _APART}

    events = [(e.action, e.subject_type, e.actor, e.via, e.reason,
               {k: v for k, v in e.data.items() if k not in _APART}) for e in trail]
    return keep(lead), keep(contact), events


def test_a_registration_makes_the_rows_and_events_the_orm_actions_made(api):
    """Plain, flagged as it arrives (its words), suspected (its network), known bad (its
    name), a second lead of a known contact: the API's registration and the areas' ORM
    actions make the same lead and contact rows (but ids, times and the address) and the
    same audit events, in the same order."""
    cfg = load(api.path, env={})
    ok_json(api.path, "network", "add", "198.51.100.0/24")
    bodies = [
        {"first": "Ann", "last": "Lee", "ip": "192.0.2.1", "comments": "please call me"},
        {"first": "Bo", "last": "Li", "ip": "192.0.2.9",
         "comments": "CHEAP VIAGRA!!! buy now http://spam.example/x http://spam.example/y "
                     "casino bitcoin loans $$$ click here"},
        {"first": "Cy", "last": "Ng", "ip": "198.51.100.7", "comments": "a quote please"},
        {"first": "asdfgh", "last": "qwerty", "ip": "192.0.2.3", "comments": "hello"},
    ]
    for n, body in enumerate(bodies):
        answer = api.client.post("/v1/leads", json={**body, "email": f"api{n}@people.test"})
        assert answer.status_code == 201, answer.text
        with unit_of_work(api.engine, AS_THE_API) as uow:
            orm_id = _orm_registration(uow, cfg, api.account, f"orm{n}@people.test", body)
        assert _made(api, answer.json()["id"]) == _made(api, orm_id), body
    # A known contact's second lead: screened again, its names as stored.
    again = api.client.post("/v1/leads", json={**bodies[0], "email": "api0@people.test"})
    with unit_of_work(api.engine, AS_THE_API) as uow:
        orm_id = _orm_registration(uow, cfg, api.account, "orm0@people.test", bodies[0])
    assert _made(api, again.json()["id"]) == _made(api, orm_id)
    flagged = api.events("lead.flagged_spam")
    assert len(flagged) >= 2 and {e["via"] for e in flagged} == {"auto"}


def _contact_made(api, contact_id: int) -> tuple[dict, list[tuple]]:
    with api.engine.connect() as conn:
        contact = conn.execute(sa.select(tables.contact).where(
            tables.contact.c.id == contact_id)).one()
        trail = conn.execute(sa.select(Event.__table__).where(
            Event.subject_type == "contact", Event.subject_id == contact_id)
            .order_by(Event.id)).all()
        tags = conn.execute(sa.select(tables.tag.c.name).where(
            tables.tag.c.contact_id == contact_id)).scalars().all()
    return ({k: v for k, v in contact._mapping.items() if k not in _APART}, [
        (e.action, e.actor, e.via, e.reason, {k: v for k, v in e.data.items()
                                               if k not in _APART}) for e in trail] + tags)


def test_a_contact_added_over_the_api_is_the_one_the_orm_actions_made(api):
    """``POST /v1/contacts``: the same contact row, tags and events as ``Contacts.add``,
    ``record_consent`` and ``Quality.screen``, for a plain, a suspected and a known-bad
    contact, and its answer is ``contact show``'s fields."""
    cfg = load(api.path, env={})
    ok_json(api.path, "network", "add", "198.51.100.0/24")
    for n, (first, last, ip) in enumerate([("Ann", "Lee", "192.0.2.1"),
                                           ("Cy", "Ng", "198.51.100.7"),
                                           ("asdfgh", "qwerty", None)]):
        body = {"email": f"api{n}@people.test", "first": first, "last": last, "ip": ip}
        answer = api.client.post("/v1/contacts", json=body)
        assert answer.status_code == 201, answer.text
        with unit_of_work(api.engine, AS_THE_API) as uow:
            contact, created = uow.contacts.add(api.account, f"orm{n}@people.test", first,
                                                last, ip)
            uow.registration.record_consent(cfg, contact, created, None, ConsentMethod.API)
            uow.quality.screen(contact, policy(uow.session, cfg), cfg.review.period)
        assert _contact_made(api, answer.json()["id"]) == _contact_made(api, contact.id)
        shown = api.client.get(f"/v1/contacts/{answer.json()['id']}").json()
        assert {k: shown[k] for k in answer.json() if k != "created"} == {
            k: v for k, v in answer.json().items() if k != "created"}


def test_a_registration_s_key_is_remembered_for_a_few_seconds_and_forgotten_when_revoked(api):
    """A key revoked elsewhere (another node, a command on another machine: here, its row
    changed behind the server's back) stops registering within ``KEY_CACHE_SECONDS``,
    not at once: the registrations do not read it each time. One revoked through the
    actions of this process (``key revoke``) stops at once."""
    lead = {"email": "ann@people.test", "first": "Ann", "last": "Lee"}
    assert api.client.post("/v1/leads", json=lead).status_code == 201
    keys = ApiKey.__table__
    with api.engine.begin() as conn:
        conn.execute(sa.update(keys).where(keys.c.id == 1).values(revoked_at=utcnow()))
    revoked = time.monotonic()
    assert api.client.post("/v1/leads", json=lead).status_code == 201  # remembered
    while api.client.post("/v1/leads", json=lead).status_code != 401:
        assert time.monotonic() - revoked < KEY_CACHE_SECONDS + 5
        time.sleep(0.2)

    other = api.as_(api.other_key)
    assert other.post("/v1/leads", json=lead).status_code == 201
    assert ok_json(api.path, "key", "revoke", "2")["changed"] is True
    assert other.post("/v1/leads", json=lead).status_code == 401


# -- registrations committed together: SAVEPOINTs only when a work raised ------------------

def _one_batch(engine, works) -> tuple[list, list[str]]:
    """``works`` (each a registration's unit of work, or an exception its ``Prepare``
    raises) handed to a started ``Together`` of one writer while that writer waits in the
    ``Prepare`` of a request before them, so that they are committed as one batch: each
    one's result or error, and the statements the batch ran."""
    import asyncio
    import threading

    from feedback_mta.actions.together import Together

    together = Together(engine, threads=1)
    statements: list[str] = []
    taken, go = threading.Event(), threading.Event()

    def gate():
        taken.set()
        go.wait(10)
        return lambda uow: None

    def prepare(work):
        def made():
            if isinstance(work, Exception):
                raise work
            return work
        return made

    async def send() -> list:
        first = asyncio.ensure_future(together.run(AS_THE_API, gate))
        while not taken.is_set():
            await asyncio.sleep(0.01)
        futures = [asyncio.ensure_future(together.run(AS_THE_API, prepare(w))) for w in works]
        await asyncio.sleep(0.2)  # all queued behind the first
        sa.event.listen(engine, "before_cursor_execute",
                        lambda *a: statements.append(a[2].split()[0].upper()))
        go.set()
        await first
        return await asyncio.gather(*futures, return_exceptions=True)

    together.start()
    try:
        results = asyncio.run(send())
    finally:
        together.stop()
    assert together.batches == 2  # the first request's, then all of ``works``
    return results, statements


def _lead(cfg, account_id: int, email: str):
    comments = read_comments(cfg, "please call me about the car")

    def work(uow):
        return uow.registration.add_lead(cfg, account_id, email, "Ann", "Lee", "192.0.2.1",
                                         comments).lead.id
    return work


def _contacts(engine) -> set[str]:
    with engine.connect() as conn:
        return set(conn.execute(sa.select(tables.contact.c.email)).scalars())


def test_registrations_committed_together_run_without_savepoints(engine, cfg):
    """A batch whose works all succeed is one transaction without a SAVEPOINT for each:
    they were a fifth of a registration's time on the writer, two round trips on
    PostgreSQL."""
    from tests.support import seed

    s = seed(engine, cfg, contacts=1)
    works = [_lead(cfg, s.account_id, f"t{i}@people.test") for i in range(6)]
    results, statements = _one_batch(engine, works)
    assert all(isinstance(r, int) for r in results), results
    assert "SAVEPOINT" not in statements, statements
    assert {f"t{i}@people.test" for i in range(6)} <= _contacts(engine)


def test_a_work_that_raises_sends_its_batch_again_in_savepoints(engine, cfg):
    """One work raises after its contact was made: the batch's transaction is rolled back
    and the batch run again, each work in its SAVEPOINT; the others are committed once,
    the one that raised is answered its error and leaves nothing; a refusal from its
    ``Prepare`` costs the batch nothing."""
    from feedback_mta.actions import Invalid
    from tests.support import seed

    s = seed(engine, cfg, contacts=1)

    def broken(uow):
        uow.registration.add_lead(cfg, s.account_id, "broken@people.test", "Ann", "Lee",
                                  None, read_comments(cfg, ""))
        raise Invalid("comments: refused after the contact was made")

    works = [_lead(cfg, s.account_id, "a@people.test"), broken, Invalid("refused ahead"),
             _lead(cfg, s.account_id, "b@people.test")]
    results, statements = _one_batch(engine, works)
    assert isinstance(results[0], int) and isinstance(results[3], int), results
    assert isinstance(results[1], Invalid) and "after the contact" in str(results[1])
    assert isinstance(results[2], Invalid) and str(results[2]) == "refused ahead"
    # Run once without, then again with a SAVEPOINT for each of the three works.
    assert statements.count("SAVEPOINT") == 3, statements
    assert statements.count("ROLLBACK") == 1, statements  # TO broken's SAVEPOINT
    contacts = _contacts(engine)
    assert {"a@people.test", "b@people.test"} <= contacts
    assert "broken@people.test" not in contacts
    with engine.connect() as conn:
        events = conn.execute(sa.select(tables.event.c.action).where(
            tables.event.c.actor == AS_THE_API.name)).scalars().all()
    assert sorted(events).count("lead.created") == 2, events


def test_a_registration_s_fields_are_refused_before_its_transaction(engine, cfg):
    """``check_ahead``: the names at once; the address and IP once the account is known
    to exist (a committed session found it), so that an unknown account is still refused
    before a bad address, as ``Contacts.add`` refuses them."""
    from feedback_mta.actions import Invalid
    from feedback_mta.actions.registration import check_ahead
    from tests.support import seed

    s = seed(engine, cfg, contacts=1)
    with pytest.raises(Invalid, match="first"):
        check_ahead(engine, 999_999, "a@people.test", "A\x01", "", None)
    check_ahead(engine, s.account_id, "not an address", "Ann", "", None)  # not known yet
    results, _ = _one_batch(engine, [_lead(cfg, s.account_id, "known@people.test")])
    assert isinstance(results[0], int), results
    with pytest.raises(Invalid):
        check_ahead(engine, s.account_id, "not an address", "Ann", "", None)
    with pytest.raises(Invalid):
        check_ahead(engine, s.account_id, "a@people.test", "Ann", "", "300.1.1.1")
    check_ahead(engine, 999_999, "not an address", "Ann", "", None)  # NotFound comes first


# -- db.Prepared: a registration's statements on the driver's cursor -----------------------

def test_a_prepared_statement_binds_and_reads_as_sqlalchemy_does(engine, cfg):
    """Times, JSON lists, lists bound as one parameter (``one_of``), values the statement
    holds, an INSERT compiled for the columns given: written and read back the same
    through ``db.Prepared`` as through ``Connection.execute``; a driver's error raised as
    SQLAlchemy's."""
    from datetime import UTC, datetime

    from feedback_mta.store import db
    from tests.support import seed

    s = seed(engine, cfg, contacts=1)
    c = tables.contact.c
    insert = db.Prepared(sa.insert(tables.contact).returning(c.id), by_keys=True)
    when = datetime(2026, 12, 7, 23, 59, 1, 250_000, tzinfo=UTC)
    values = {"account_id": s.account_id, "email": "p@people.test", "first_name": "Pé",
              "last_name": "", "status": "active", "quality": "ok",
              "quality_reasons": ["a", "b"], "engagement": "", "consent_method": "api",
              "consent_source": "", "created_at": when, "updated_at": when}
    changed = db.Prepared(sa.update(tables.contact).where(
        db.one_of(c.id, "b_ids")).values(status="opted_out", opted_out_at=sa.bindparam("b_at"),
                                          opt_out_reason=sa.bindparam("b_reason")))
    read = db.Prepared(sa.select(c.id, c.email, c.quality_reasons, c.opted_out_at, c.status)
                       .where(db.one_of(c.id, "b_ids")).order_by(c.id))
    with engine.begin() as conn:
        new = insert.scalar(conn, values)
        short = insert.scalar(conn, {"account_id": s.account_id, "email": "q@people.test",
                                     "first_name": "", "last_name": "", "status": "active",
                                     "engagement": "", "consent_method": "api",
                                     "consent_source": "", "created_at": when,
                                     "updated_at": when})
        assert changed.run(conn, {"b_ids": [new], "b_at": when, "b_reason": "asked"}) == 1
        rows = read.rows(conn, {"b_ids": [short, new]})
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            insert.scalar(conn, values)  # the account has this address already
    assert [row.id for row in rows] == sorted([new, short])
    mine = next(row for row in rows if row.id == new)
    assert (mine.email, mine.quality_reasons, mine.status) == (
        "p@people.test", ["a", "b"], "opted_out")
    assert db.aware(mine.opted_out_at) == when
    with engine.connect() as conn:  # what SQLAlchemy's execution reads and writes
        assert [tuple(row) for row in rows] == [tuple(row) for row in conn.execute(
            read.statement, {"b_ids": [short, new]})]
        same = conn.execute(sa.select(c.quality_reasons, c.opted_out_at, c.created_at,
                                      c.opt_out_reason, c.first_name)
                            .where(c.id == new)).one()
    assert (same[0], db.aware(same[1]), db.aware(same[2]), *same[3:]) == (
        ["a", "b"], when, when, "asked", "Pé")
    expanding = db.Prepared(sa.select(c.id).where(c.id.in_(sa.bindparam("x", expanding=True))))
    with engine.connect() as conn, pytest.raises(ValueError, match="expanding"):
        expanding.rows(conn, {"x": [1]})
    with engine.connect() as conn, pytest.raises(KeyError, match="b_reason"):
        changed.run(conn, {"b_ids": [new], "b_at": when})  # a value not given: not NULL
