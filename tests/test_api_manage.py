"""Finding and managing over HTTP, through a real ``serve`` and httpx, on both engines:
``GET /v1/leads`` and ``/v1/contacts`` (filters, a keyset cursor, the same rows as ``lead
list`` and ``contact list``), suppressions added and lifted (the same decision as ``contact
optin``: a complaint, a bounce or a known-bad contact is never lifted), webhooks listed,
removed and redelivered to a real receiver, the caller's key with ``last_used_at``, and an
``errors`` array on every 422."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.store.models import ApiKey, Webhook, utcnow
from tests.conftest import write_config
from tests.support import wait_until
from tests.test_api import PROBLEM, Api, _problem
from tests.test_cli import ok_json, ok_rows, run
from tests.test_webhooks import receiver as receiver  # the fixture, by its name


@pytest.fixture
def api(tmp_path, database_url, server_factory):
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "api.toml", database_url, http={"listen": "127.0.0.1:0"},
                        webhooks={"max_backoff": "1s", "timeout": "2s",
                                  "allow_private_networks": True})
    engine = db.create_engine(config_mod.load(path, env={}).database)
    db.upgrade(engine)
    yield Api(server_factory(path), engine, path)
    engine.dispose()


def _lead(api: Api, email: str, **extra) -> dict:
    answer = api.client.post("/v1/leads", json={"email": email, "first": "Ann",
                                                "last": "Lee", **extra})
    assert answer.status_code == 201, answer.text
    return answer.json()


def _pages(client, path: str, field: str, **params) -> list[list[int]]:
    """Every page's ids, following ``next`` until it is null."""
    pages, after = [], None
    while True:
        answer = client.get(path, params={**params, **({"after": after} if after else {})})
        assert answer.status_code == 200, answer.text
        body = answer.json()
        pages.append([row["id"] for row in body[field]])
        after = body["next"]
        if after is None:
            return pages


def test_leads_are_found_by_status_via_contact_and_since_a_page_at_a_time(api):
    ann = [_lead(api, "ann@people.test") for _ in range(3)]
    bo = [_lead(api, "bo@people.test") for _ in range(2)]
    api.as_(api.other_key).post("/v1/leads", json={"email": "cy@people.test"})
    api.client.post(f"/v1/leads/{bo[0]['id']}/flag")
    active = [lead["id"] for lead in reversed(ann + bo[1:])]  # newest first

    assert _pages(api.client, "/v1/leads", "leads", limit=2) == [active[:2], active[2:]]
    # The same query as lead list, filter for filter.
    table = [
        ({}, {}, active),
        ({"status": "spam"}, {"--status": "spam"}, [bo[0]["id"]]),
        ({"status": "spam", "via": "api"}, {"--status": "spam", "--via": "api"},
         [bo[0]["id"]]),
        ({"status": "spam", "via": "email"}, {"--status": "spam", "--via": "email"}, []),
        ({"contact_id": ann[0]["contact_id"]}, {"--contact": str(ann[0]["contact_id"])},
         [lead["id"] for lead in reversed(ann)]),
        ({"since": "2000-01-01T00:00:00Z"}, {"--since": "2000-01-01"}, active),
        ({"since": (utcnow() + timedelta(hours=1)).isoformat()},
         {"--since": (utcnow() + timedelta(hours=1)).isoformat()}, []),
    ]
    for params, options, expected in table:
        answer = api.client.get("/v1/leads", params=params)
        assert [row["id"] for row in answer.json()["leads"]] == expected, params
        by_cli = ok_rows(api.path, "lead", "list", "--account", str(api.account),
                         *[x for pair in options.items() for x in pair])
        assert [row["id"] for row in by_cli] == expected, options
    assert api.client.get("/v1/leads").json()["leads"][0] == api.client.get(
        f"/v1/leads/{active[0]}").json()

    # An every-account key says which account; another account's key sees its own only.
    body = _problem(api.as_(api.all_key).get("/v1/leads"), 422)
    assert body["errors"][0]["loc"] == ["query", "account_id"]
    assert len(api.as_(api.all_key).get(
        "/v1/leads", params={"account_id": api.account}).json()["leads"]) == 4
    assert len(api.as_(api.other_key).get("/v1/leads").json()["leads"]) == 1
    _problem(api.as_(api.other_key).get("/v1/leads", params={"account_id": api.account}),
             404)
    # A cursor is the list's own: a suppressions cursor, or made-up ones, are a 422.
    for cursor in ("Yzk", "bm9wZQ", "x" * 64, "bDk5OTk5OTk5OTk5"):
        body = _problem(api.client.get("/v1/leads", params={"after": cursor}), 422)
        assert body["errors"][0]["loc"] == ["query", "after"]


def test_contacts_are_found_by_email_status_and_mailable_a_page_at_a_time(api):
    ids = [api.client.post("/v1/contacts", json={"email": f"p{i}@people.test", "first": "Pia",
                                                 "last": "Lo"}).json()["id"] for i in range(4)]
    api.client.post(f"/v1/contacts/{ids[1]}/optout")
    api.as_(api.other_key).post("/v1/contacts", json={"email": "p0@people.test"})

    assert _pages(api.client, "/v1/contacts", "contacts", limit=3) == [ids[:3], ids[3:]]
    table = [
        ({"email": "P0@People.test"}, {"--email": "P0@People.test"}, [ids[0]]),
        ({"status": "opted_out"}, {"--status": "opted_out"}, [ids[1]]),
        ({"mailable": "false"}, {"--mailable": "false"}, [ids[1]]),
        ({"mailable": "true"}, {"--mailable": "true"}, [ids[0], *ids[2:]]),
    ]
    for params, options, expected in table:
        answer = api.client.get("/v1/contacts", params=params)
        assert [row["id"] for row in answer.json()["contacts"]] == expected, params
        by_cli = ok_rows(api.path, "contact", "list", "--account", str(api.account),
                         *[x for pair in options.items() for x in pair])
        assert [row["id"] for row in by_cli] == expected, options
    # An every-account key finds an address in every account.
    found = api.as_(api.all_key).get("/v1/contacts", params={"email": "p0@people.test"})
    assert {row["account_id"] for row in found.json()["contacts"]} == {api.account, api.other}
    body = _problem(api.client.get("/v1/contacts", params={"email": "a\x00b@x.test"}), 422)
    assert body["errors"][0]["loc"] == ["query", "email"]


def _contact_in(api: Api, email: str, state: str) -> None:
    """A contact of ``api.account`` in ``state``, as the handlers would leave it."""
    with unit_of_work(api.engine, CLI) as uow:
        contact, _ = uow.contacts.add(api.account, email, "Di", "Ve")
        if state == "bounced":
            uow.contacts.mark_undeliverable(contact, "hard bounce: 5.1.1 user unknown")
        elif state == "unsubscribed, then complained":  # the opt-out keeps its first reason
            uow.contacts.opt_out(contact, "unsubscribe")
            uow.feedback.record_report(contact, "abuse", "arf", "token")
        elif state == "opted out, then found known-bad":
            uow.contacts.opt_out(contact, "manual")
            uow.quality.mark_invalid(contact, ["name: not a name"])
        elif state != "mailable":
            uow.contacts.opt_out(contact, state)


#: state the contact is in -> what lifting its suppression answers (and contact optin's exit)
LIFTS = [
    ("manual", 200, "contact.opted_in"),
    ("unsubscribe", 200, "contact.opted_in"),
    ("asked on the phone", 200, "contact.opted_in"),
    ("complaint", 409, "reported mail as spam"),
    ("invalid_contact", 409, "known-bad"),
    ("suspected_invalid", 409, "contact verify"),
    ("bounced", 409, "bounced"),
    ("unsubscribed, then complained", 409, "reported mail as spam"),
    ("opted out, then found known-bad", 409, "known-bad"),
    ("mailable", 404, "no suppression"),
]


def test_a_suppression_is_added_and_lifted_only_where_an_opt_in_may(api):
    answer = api.client.post("/v1/suppressions", json={"email": "New@People.test"})
    assert answer.status_code == 201, answer.text
    added = answer.json()
    assert (added["email"], added["reason"], added["opted_out"], added["mailable"],
            added["changed"]) == ("new@people.test", "manual", True, False, True)
    again = api.client.post("/v1/suppressions", json={"email": "new@people.test",
                                                      "reason": "other"})
    assert (again.status_code, again.json()["changed"], again.json()["reason"]) == (
        200, False, "manual")
    [event] = api.events("contact.opted_out")
    assert (event["via"], event["reason"]) == ("api", "manual")
    listed = api.client.get("/v1/suppressions").json()["suppressions"]
    assert [row["email"] for row in listed] == ["new@people.test"]
    body = _problem(api.client.post("/v1/suppressions", json={
        "email": "x@people.test", "reason": "r" * 201}), 422)
    assert body["errors"][0]["loc"][-1] == "reason"
    _problem(api.as_(api.all_key).post("/v1/suppressions", json={"email": "x@p.test"}), 422)
    for reason in ("complaint", "Unsubscribe", "invalid_contact", "unconfirmed"):
        # The system's own reasons: a suppression "for a complaint" nobody made would stand
        # for ever, and one "for an unsubscribe" could be lifted by a click never made.
        body = _problem(api.client.post("/v1/suppressions", json={
            "email": "y@people.test", "reason": reason}), 422)
        assert body["errors"][0]["loc"][-1] == "reason", reason
        refused = run(api.path, "contact", "optout", "--email", "y@people.test", "--account",
                      str(api.account), "--reason", reason)
        assert refused.returncode == 1 and "the system gives" in refused.stderr, reason
    # contact optout --email is the same action: the API then finds it suppressed.
    by_cli = ok_json(api.path, "contact", "optout", "--email", "Cli@People.test",
                     "--account", str(api.account))
    assert (by_cli["status"], by_cli["opt_out_reason"], by_cli["changed"]) == (
        "opted_out", "manual", True)
    assert api.client.post("/v1/suppressions", json={"email": "cli@people.test"}).json()[
        "changed"] is False
    assert run(api.path, "contact", "optout", "--email", "a@b.test").returncode == 2

    for n, (state, status, says) in enumerate(LIFTS):
        email = f"lift{n}@people.test"
        _contact_in(api, email, state)
        by_cli = run(api.path, "contact", "optin", "--email", email, "--account",
                     str(api.account), "--reason", "asked", "--json")
        if status == 200:  # the command line lifts it: the API finds nothing left to lift
            assert by_cli.returncode == 0 and '"changed": true' in by_cli.stdout, state
            _problem(api.client.delete(f"/v1/suppressions/{email}"), 404)
            _contact_in(api, email, state)
        answer = api.client.delete(f"/v1/suppressions/{email}")
        assert answer.status_code == status, (state, answer.text)
        if status == 200:
            assert answer.json()["mailable"] is True and answer.json()["changed"] is True
            _problem(api.client.delete(f"/v1/suppressions/{email}"), 404)
        else:
            assert says in _problem(answer, status)["detail"], state
        if status == 409:  # the same decision, the same words
            assert by_cli.returncode == 1 and says in by_cli.stderr, state
    lifted = api.events("contact.opted_in")
    assert {e["via"] for e in lifted} == {"api", "cli"} and len(lifted) == 6
    # Another account's address is not found; its key lifts its own.
    _contact_in(api, "mine@people.test", "manual")
    _problem(api.as_(api.other_key).delete("/v1/suppressions/mine@people.test"), 404)
    assert api.as_(api.all_key).delete("/v1/suppressions/mine@people.test", params={
        "account_id": api.account}).status_code == 200


def test_webhooks_are_listed_removed_and_redelivered_to_their_own_account(api, receiver):
    mine = api.client.post("/v1/webhooks", json={"url": receiver.url}).json()
    theirs = api.as_(api.other_key).post("/v1/webhooks", json={"url": receiver.url}).json()
    everyone = ok_json(api.path, "webhook", "add", receiver.url, "--all-accounts")
    receiver.secret = mine["secret"]

    assert [h["id"] for h in api.client.get("/v1/webhooks").json()["webhooks"]] == [mine["id"]]
    assert [h["id"] for h in api.as_(api.all_key).get("/v1/webhooks").json()["webhooks"]] == [
        mine["id"], theirs["id"], everyone["id"]]
    for hook in (theirs, everyone):  # not this key's: as if it did not exist
        _problem(api.client.delete(f"/v1/webhooks/{hook['id']}"), 404)
        _problem(api.client.post(f"/v1/webhooks/{hook['id']}/redeliver", json={"after": 0}),
                 404)
    assert api.as_(api.other_key).delete(f"/v1/webhooks/{theirs['id']}").json() == {
        "id": theirs["id"], "removed": True}
    assert len(api.as_(api.all_key).get("/v1/webhooks").json()["webhooks"]) == 2
    ok_json(api.path, "webhook", "remove", str(everyone["id"]))

    # Three leads of this account, one of the other's: this subscription gets its three.
    leads = [_lead(api, f"r{i}@people.test")["id"] for i in range(3)]
    api.as_(api.other_key).post("/v1/leads", json={"email": "x@people.test"})
    mine_only = lambda: [r["body"] for r in receiver.delivered()  # noqa: E731
                         if r["body"]["type"] == "lead.created"]
    wait_until(lambda: len(mine_only()) == 3, what="three leads")
    first = [item["id"] for item in mine_only()]
    # Again from after the first lead's event: the other two go out once more, in order,
    # and nothing of the other account.
    answer = _redeliver(api, mine["id"], first[0])
    assert answer.status_code == 200, answer.text
    assert (answer.json()["cursor"], answer.json()["changed"]) == (first[0], True)
    wait_until(lambda: len(mine_only()) == 5, what="two again")
    assert [item["id"] for item in mine_only()] == [*first, *first[1:]]
    assert {item["data"]["account_id"] for item in mine_only()} == {api.account}
    assert leads == [item["data"]["lead_id"] for item in mine_only()[:3]]
    [event] = api.events("webhook.redelivered")
    assert (event["subject_id"], event["via"], event["data"]["after"]) == (
        mine["id"], "api", first[0])
    # Never forward (it would skip events); ids bounded.
    body = _problem(api.client.post(f"/v1/webhooks/{mine['id']}/redeliver",
                                    json={"after": 2**31 - 1}), 422)
    assert body["errors"][0]["loc"][-1] == "after"
    _problem(api.client.post(f"/v1/webhooks/{mine['id']}/redeliver", json={"after": 2**31}),
             422)
    _problem(api.client.post("/v1/webhooks/2147483648/redeliver", json={"after": 1}), 422)

    # While a sender holds the subscription, the cursor is not moved under it: 409, and
    # webhook redeliver refuses the same way.
    t = Webhook.__table__
    with api.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.id == mine["id"]).values(
            lease_owner="another-node", lease_until=utcnow() + timedelta(seconds=60)))
    answer = api.client.post(f"/v1/webhooks/{mine['id']}/redeliver", json={"after": 0})
    assert _problem(answer, 409) and answer.headers["retry-after"] == "1"
    refused = run(api.path, "webhook", "redeliver", str(mine["id"]), "--after", "0")
    assert refused.returncode == 1 and "being delivered" in refused.stderr
    with api.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.id == mine["id"]).values(
            lease_owner=None, lease_until=None))
    for _ in range(40):  # as a script would: again while a sender is at it
        by_cli = run(api.path, "webhook", "redeliver", str(mine["id"]), "--after", "0",
                     "--json")
        if by_cli.returncode == 0 or "being delivered" not in by_cli.stderr:
            break
        time.sleep(0.25)
    assert by_cli.returncode == 0, by_cli.stderr
    assert (json.loads(by_cli.stdout)["cursor"], json.loads(by_cli.stdout)["changed"]) == (
        0, True)


def _redeliver(api: Api, webhook_id: int, after: int) -> httpx.Response:
    """``POST .../redeliver`` as a client should: while a sender is delivering to the
    subscription (409 with ``Retry-After``), again after that wait."""
    for _ in range(40):
        answer = api.client.post(f"/v1/webhooks/{webhook_id}/redeliver",
                                 json={"after": after})
        if answer.status_code != 409:
            return answer
        time.sleep(min(float(answer.headers.get("retry-after", "1")), 1.0) / 4)
    return answer


def test_keys_show_the_caller_s_own_key_and_when_it_was_last_used(api):
    [mine] = api.client.get("/v1/keys").json()["keys"]
    assert (mine["account_id"], mine["name"], mine["all_accounts"]) == (
        api.account, "crm", False)
    assert mine["last_used_at"].endswith("Z") and mine["created_at"].endswith("Z")
    [every] = api.as_(api.all_key).get("/v1/keys").json()["keys"]
    assert every["id"] != mine["id"] and every["account_id"] is None

    def stored() -> object:
        t = ApiKey.__table__
        with api.engine.connect() as conn:
            return conn.execute(sa.select(t.c.last_used_at).where(
                t.c.id == mine["id"])).scalar()

    # Within a minute, requests write nothing; after it, the next one notes the time.
    noted = stored()
    for _ in range(5):
        api.client.get("/v1/keys")
    assert stored() == noted
    t = ApiKey.__table__
    with api.engine.begin() as conn:
        conn.execute(sa.update(t).where(t.c.id == mine["id"]).values(
            last_used_at=utcnow() - timedelta(minutes=2)))
    api.client.get("/v1/keys")
    shown = api.client.get("/v1/keys").json()["keys"][0]["last_used_at"]
    assert datetime.fromisoformat(shown) > utcnow() - timedelta(seconds=30)
    listed = {row["id"]: row for row in ok_rows(api.path, "key", "list")}
    assert listed[mine["id"]]["last_used_at"] == shown
    assert "LAST_USED_AT" in run(api.path, "key", "list").stdout


#: Requests that each answer 422: every one must say where (``errors``: loc and msg).
UNPROCESSABLE = [
    ("post", "/v1/leads", {"json": {"email": "a@b.test"}}, "all"),
    ("get", "/v1/leads", {}, "all"),
    ("post", "/v1/suppressions", {"json": {"email": "a@b.test"}}, "all"),
    ("post", "/v1/leads", {"json": {"email": "not an address"}}, "one"),
    ("post", "/v1/leads", {"json": {"email": 5}}, "one"),
    ("get", "/v1/leads", {"params": {"after": "nope"}}, "one"),
    ("get", "/v1/leads", {"params": {"since": "yesterday"}}, "one"),
    ("get", "/v1/leads", {"params": {"since": "0001-01-01T00:00:00+05:00"}}, "one"),
    ("get", "/v1/contacts", {"params": {"mailable": "perhaps"}}, "one"),
    ("get", "/v1/suppressions", {"params": {"after": "nope"}}, "one"),
    ("post", "/v1/webhooks", {"json": {"url": "http://example.com/h", "events": ["nope.*"]}},
     "one"),
    ("post", "/v1/webhooks", {"json": {"url": "ftp://example.com/"}}, "one"),
    ("post", "/v1/contacts", {"json": {"email": "a@b.test", "first": "\x00"}}, "one"),
]


def test_every_422_says_where_in_errors(api):
    api.client.post("/v1/leads", json={"email": "k@people.test"},
                    headers={"Idempotency-Key": "k1"})
    reused = api.client.post("/v1/leads", json={"email": "other@people.test"},
                             headers={"Idempotency-Key": "k1"})
    answers = [reused] + [
        getattr(api.as_(api.all_key if who == "all" else api.key), method)(path, **kw)
        for method, path, kw, who in UNPROCESSABLE]
    for answer in answers:
        assert answer.status_code == 422, (answer.request.url, answer.text)
        assert answer.headers["content-type"] == PROBLEM
        errors = answer.json()["errors"]
        assert errors and all(isinstance(e["loc"], list) and e["msg"] for e in errors), (
            answer.request.url, answer.text)
    assert reused.json()["errors"][0]["loc"] == ["header", "Idempotency-Key"]


def test_one_new_address_posted_many_times_at_once_is_never_a_500(api):
    """On PostgreSQL writers do not queue: requests making the same new contact race on
    its unique key; the losers answer 409 (send it again), never 500, and one contact is
    made."""
    import concurrent.futures

    def post(path: str, body: dict) -> int:
        return api.client.post(path, json=body).status_code

    bodies = [("/v1/contacts", {"email": "race@people.test"}),
              ("/v1/suppressions", {"email": "race@people.test"}),
              ("/v1/leads", {"email": "race@people.test"})] * 6
    with concurrent.futures.ThreadPoolExecutor(len(bodies)) as pool:
        codes = list(pool.map(lambda pb: post(*pb), bodies))
    assert set(codes) <= {200, 201, 409}, codes
    found = api.client.get("/v1/contacts", params={"email": "race@people.test"}).json()
    assert len(found["contacts"]) == 1
