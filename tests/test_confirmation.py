"""Confirmation by link, end to end: the scheduled job mails each pending contact its
request (Reply-To ``confirm+TOKEN@``, a link to ``/c/TOKEN``) through a real relay, and
its one reminder; ``/c/TOKEN`` shows who asks and changes nothing, its form's POST
confirms or declines; the deadline opts out, also after downtime and once across two
nodes; ``GET /v1/contacts/{id}/confirmation`` gives a platform the link and Reply-To.
A real server (in process), real SMTP, httpx and Chromium, a real database of each
engine. The actions themselves are tested in ``test_consent``."""

from __future__ import annotations

import email
import email.message
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import sqlalchemy as sa

from feedback_mta import config as config_mod
from feedback_mta import events as names
from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.actions.consent import ConsentIn
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.jobs.consent import compose
from feedback_mta.store import db
from feedback_mta.store.models import Contact, Event
from tests.conftest import DOMAIN, write_config
from tests.support import chromium_page, wait_until

BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
PROBLEM = "application/problem+json"
CONFIRM = ("import", "social", "purchased")
WEEK = 7 * 86400.0


def pending(engine, account_id: int, address: str, *, within: float = WEEK,
            method: str = "social") -> int:
    """A new contact that came by ``method``: pending until it confirms, for ``within``."""
    with unit_of_work(engine, CLI) as uow:
        contact, created = uow.contacts.add(account_id, address, "Ann", "Lee")
        uow.consent.record(contact, ConsentIn(method, "linkedin export"), new=created,
                           confirm_methods=CONFIRM, confirm_within=within)
        assert contact.id is not None
        return contact.id


class Site:
    """A running server with an HTTP listener (no public_url: links point at the
    listener's own address), one account, and the database."""

    def __init__(self, tmp_path, database_url, server_factory, name: str = "site.toml",
                 start: bool = True, **sections) -> None:
        sections = {"review": {"check_interval": "0.3s", **sections.pop("review", {})},
                    "http": {"listen": "127.0.0.1:0"}, **sections}
        self.path = write_config(tmp_path / name, database_url, **sections)
        self.cfg = config_mod.load(self.path, env={})
        self.book = AddressBook.from_config(self.cfg)
        self.engine = db.create_engine(self.cfg.database)
        db.upgrade(self.engine)
        with unit_of_work(self.engine, CLI) as uow:
            self.account = uow.accounts.add("Dealer One").id
        self.factory = server_factory
        self.server = self.start() if start else None

    def start(self):
        self.server = self.factory(self.path)
        self.url = f"http://127.0.0.1:{self.server.wait_for('http.started')['port']}"
        self.client = httpx.Client(base_url=self.url, timeout=10)
        return self.server

    def pending(self, address: str = "ann@people.test", **kwargs) -> int:
        return pending(self.engine, self.account, address, **kwargs)

    def path_of(self, contact_id: int) -> str:
        token = self.book.address(Box.CONFIRM, contact_id).split("@")[0].partition("+")[2]
        return f"/c/{token}"

    def contact(self, contact_id: int) -> Contact:
        with unit_of_work(self.engine, CLI) as uow:
            return uow.contacts.get(contact_id)

    def events(self, action: str, contact_id: int | None = None) -> list[dict]:
        t = Event.__table__
        query = sa.select(t).where(t.c.action == action).order_by(t.c.id)
        if contact_id is not None:
            query = query.where(t.c.subject_id == contact_id)
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(query)]


@pytest.fixture
def site(tmp_path, database_url, server_factory):
    s = Site(tmp_path, database_url, server_factory)
    yield s
    s.engine.dispose()


def _body(message: email.message.Message) -> str:
    payload = message.get_payload(decode=True)
    assert isinstance(payload, bytes)
    return payload.decode()


# --- the request, as composed ----------------------------------------------------------------


def test_the_request_says_who_asks_how_to_answer_and_that_silence_is_a_no():
    book = AddressBook(DOMAIN, ("secret",))
    contact = Contact(id=7, account_id=3, email="ann@people.test",
                      confirm_by=datetime(2026, 5, 8, 12, 0, tzinfo=UTC))
    mail = email.message_from_bytes(compose(contact=contact, sender="Dealer One", book=book,
                                            page="https://fb.example.com/"))
    reply_to = book.address(Box.CONFIRM, 7)
    assert mail["Reply-To"] == reply_to and mail["To"] == "ann@people.test"
    assert mail["From"] == f"Dealer One <{reply_to}>"
    assert "Dealer One" in mail["Subject"] and mail["Auto-Submitted"] == "auto-generated"
    assert book.resolve(reply_to) is not None and book.resolve(reply_to).object_id == 7
    body = _body(mail)
    token = reply_to.split("@")[0].partition("+")[2]
    assert 'reply "yes"' in body and f"https://fb.example.com/c/{token}" in body.split()
    assert "ignore this email and you will not hear from Dealer One" in body
    assert "2026-05-08 12:00 UTC" in body
    # Without a page to link to, a reply is the way; the reminder says it is one.
    again = email.message_from_bytes(compose(contact=contact, sender="Dealer One", book=book,
                                             page="", reminder=True))
    assert again["Subject"].startswith("Reminder:") and "/c/" not in _body(again)
    assert _body(again).startswith("A reminder: ")


# --- the mail ---------------------------------------------------------------------------------


def test_each_pending_contact_gets_one_request_with_its_reply_to_and_link(
        tmp_path, database_url, server_factory, relay):
    s = Site(tmp_path, database_url, server_factory, start=False,
             outbound={"relay": f"127.0.0.1:{relay.port}"})
    first = s.pending("ann@people.test")
    with unit_of_work(s.engine, CLI) as uow:  # came by a form: mailable, never asked
        uow.contacts.add(s.account, "form@people.test", "Bo", "Li")
    server = s.start()
    second = s.pending("bea@people.test")  # made while the server runs
    mails = {rcpts[0]: (mail_from, email.message_from_bytes(raw))
             for mail_from, rcpts, raw in relay.wait(2)}
    assert set(mails) == {"ann@people.test", "bea@people.test"}
    for contact_id, address in ((first, "ann@people.test"), (second, "bea@people.test")):
        mail_from, mail = mails[address]
        assert mail["Reply-To"] == s.book.address(Box.CONFIRM, contact_id)
        assert mail["From"].startswith("Dealer One <confirm+")
        # Bounces come back to the contact's own address (an imported list bounces).
        assert mail_from == s.book.address(Box.BOUNCE, contact_id)
        assert f"{s.url}{s.path_of(contact_id)}" in _body(mail).split()
        sent = s.events(names.CONTACT_CONFIRMATION_SENT, contact_id)
        assert [(e["actor"], e["via"]) for e in sent] == [("scheduler", "auto")]
        assert s.contact(contact_id).confirmation_sent_at is not None
    server.wait_for("consent.requests")
    time.sleep(1)  # three more checks: nobody is asked twice
    assert len(relay.messages) == 2
    assert len(s.events(names.CONTACT_CONFIRMATION_SENT)) == 2
    s.engine.dispose()


def test_the_one_reminder_goes_before_the_deadline_which_then_opts_out(
        tmp_path, database_url, server_factory, relay):
    s = Site(tmp_path, database_url, server_factory, start=False,
             outbound={"relay": f"127.0.0.1:{relay.port}"},
             consent={"remind_before": "2s"})
    contact = s.pending(within=4)
    server = s.start()
    first, reminder = (email.message_from_bytes(m[2]) for m in relay.wait(2, timeout=10))
    assert not first["Subject"].startswith("Reminder") and _body(reminder).startswith(
        "A reminder: ")
    assert reminder["Reply-To"] == first["Reply-To"]
    server.wait_for("contact.opted_out", contact_id=contact, reason="unconfirmed", timeout=10)
    time.sleep(1)
    assert len(relay.messages) == 2
    sent = s.events(names.CONTACT_CONFIRMATION_SENT)
    assert [e["data"]["reminder"] for e in sent] == [False, True]
    s.engine.dispose()


# --- the deadline -----------------------------------------------------------------------------


def test_the_deadline_opts_out_a_contact_still_pending_and_not_one_who_confirmed(site):
    doomed, kept = site.pending("ann@people.test", within=2), site.pending(
        "bea@people.test", within=2)
    assert site.client.post(site.path_of(kept), data={"confirm": "yes"}).status_code == 200
    site.server.wait_for("contact.opted_out", contact_id=doomed, reason="unconfirmed")
    time.sleep(1)
    assert (site.contact(doomed).status, site.contact(doomed).opt_out_reason) == (
        "opted_out", "unconfirmed")
    assert site.contact(kept).mailable
    assert len(site.events(names.CONTACT_OPTED_OUT, doomed)) == 1
    assert site.events(names.CONTACT_OPTED_OUT, kept) == []


def test_a_deadline_passed_while_no_server_ran_is_caught_up_at_start(
        tmp_path, database_url, server_factory):
    s = Site(tmp_path, database_url, server_factory, start=False,
             review={"check_interval": "1h"})
    contact = s.pending(within=1)
    time.sleep(1.5)  # no server runs while the deadline passes
    server = s.start()
    assert server.wait_for("consent.expired")["opted_out"] == 1
    assert s.contact(contact).opt_out_reason == "unconfirmed"
    s.engine.dispose()


@pytest.mark.process
@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_two_nodes_ask_and_opt_out_each_contact_once(tmp_path, database_url, server_factory,
                                                     relay):
    sections = {"outbound": {"relay": f"127.0.0.1:{relay.port}"},
                "review": {"check_interval": "0.2s"}}
    a = Site(tmp_path, database_url, server_factory, name="a.toml", start=False, **sections)
    b_path = write_config(tmp_path / "b.toml", database_url, http={"listen": "127.0.0.1:0"},
                          **sections)
    # Long enough for both nodes to start and ask everyone first, on a loaded machine too.
    ids = [a.pending(f"c{i}@people.test", within=15) for i in range(30)]
    nodes = [a.start(), server_factory(b_path)]
    relay.wait(30, timeout=30)
    wait_until(lambda: len(a.events(names.CONTACT_OPTED_OUT)) == 30, 40, "30 opted out")
    time.sleep(1)  # both nodes run a few more checks
    assert len(relay.messages) == 30
    assert sorted(rcpts[0] for _, rcpts, _ in relay.messages) == sorted(
        f"c{i}@people.test" for i in range(30))
    for action in (names.CONTACT_CONFIRMATION_SENT, names.CONTACT_OPTED_OUT):
        assert sorted(e["subject_id"] for e in a.events(action)) == sorted(ids), action
    assert sum(node.count("contact.opted_out") for node in nodes) == 30
    a.engine.dispose()


# --- the page ---------------------------------------------------------------------------------


def test_the_page_names_the_sender_and_the_masked_address_and_changes_nothing(site):
    contact = site.pending()
    path = site.path_of(contact)
    for _ in range(2):  # a scanner, then the person
        page = site.client.get(path, headers=BROWSER)
        assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "Dealer One" in page.text and "a***@people.test" in page.text
    assert "ann@" not in page.text  # the address itself is never on the page
    assert 'name="confirm" value="yes"' in page.text
    assert 'name="confirm" value="no"' in page.text
    assert page.headers["cache-control"] == "no-store"
    # The upper-cased token (a mail system's doing) is the same link.
    assert site.client.get(path.upper().replace("/C/", "/c/")).status_code == 200
    assert site.contact(contact).status == "pending"
    assert site.events(names.CONTACT_CONFIRMED) == []


def test_a_yes_confirms_with_the_click_s_evidence_once(site):
    contact = site.pending()
    path = site.path_of(contact)
    answer = site.client.post(path, data={"confirm": "yes"},
                              headers={**BROWSER, "User-Agent": "Firefox/140"})
    assert answer.status_code == 200 and "you confirmed" in answer.text
    confirmed = site.contact(contact)
    assert confirmed.mailable and confirmed.confirmed_via == "link"
    assert confirmed.confirmed_at is not None
    assert confirmed.confirmation_evidence == {"ip": "127.0.0.1", "user_agent": "Firefox/140"}
    [event] = site.events(names.CONTACT_CONFIRMED, contact)
    assert (event["actor"], event["via"]) == ("http:confirm", "link")
    assert event["data"]["ip"] == "127.0.0.1"
    again = site.client.post(path, data={"confirm": "yes"}, headers=BROWSER)
    assert again.status_code == 200 and "You confirmed already" in again.text
    assert "You confirmed already" in site.client.get(path, headers=BROWSER).text
    assert len(site.events(names.CONTACT_CONFIRMED, contact)) == 1


def test_a_no_declines(site):
    contact = site.pending()
    answer = site.client.post(site.path_of(contact), data={"confirm": "no"},
                              headers={**BROWSER, "User-Agent": "Firefox/140"})
    assert answer.status_code == 200
    assert "you will not receive emails from <strong>Dealer One</strong>" in answer.text
    declined = site.contact(contact)
    assert (declined.status, declined.opt_out_reason) == ("opted_out", "declined")
    [event] = site.events(names.CONTACT_OPTED_OUT, contact)
    assert event["reason"] == "declined" and event["data"]["confirmed_via"] == "link"
    assert event["data"]["user_agent"] == "Firefox/140"
    # The person's own later yes still counts.
    assert "you can still confirm" in site.client.get(site.path_of(contact)).text


def test_a_contact_opted_out_by_a_complaint_is_refused_politely(site):
    contact = site.pending()
    with unit_of_work(site.engine, CLI) as uow:
        uow.contacts.opt_out(uow.contacts.get(contact), "complaint")
    path = site.path_of(contact)
    page = site.client.get(path, headers=BROWSER)
    assert page.status_code == 200 and "cannot be confirmed here" in page.text
    assert "<button" not in page.text
    refused = site.client.post(path, data={"confirm": "yes"}, headers=BROWSER)
    assert refused.status_code == 409 and "<h1>Not possible</h1>" in refused.text
    assert "Dealer One does not email it" in refused.text
    problem = site.client.post(path, data={"confirm": "yes"})
    assert problem.status_code == 409 and problem.headers["content-type"] == PROBLEM
    assert site.contact(contact).opt_out_reason == "complaint"


def test_bad_links_are_pages_for_browsers_and_problem_json_for_clients(site):
    contact = site.pending()
    path = site.path_of(contact)
    other_box = site.book.address(Box.UNSUBSCRIBE, contact).split("@")[0].partition("+")[2]
    for method, url in (("GET", f"/c/{contact}-{'a' * 16}"), ("POST", f"/c/{contact}-x"),
                        ("GET", f"/c/{other_box}"), ("GET", "/c/"),
                        ("GET", path + "/more"), ("POST", path + "/more")):
        data = {"confirm": "yes"} if method == "POST" else None
        page = site.client.request(method, url, data=data, headers=BROWSER)
        assert page.status_code == 404, url
        assert page.headers["content-type"].startswith("text/html")
        assert "Link not recognised" in page.text
        problem = site.client.request(method, url, data=data)
        assert problem.status_code == 404 and problem.headers["content-type"] == PROBLEM
    # Only the page's form, and only a small one.
    assert site.client.post(path, json={"confirm": "yes"}).status_code == 415
    assert site.client.post(path, data={"confirm": "maybe"}).status_code == 400
    assert site.client.post(path, data={"confirm": "yes",
                                        "pad": "x" * 5000}).status_code == 413
    assert site.contact(contact).status == "pending"


def test_confirm_in_a_real_browser(site):
    """GET the page -> Confirm -> the confirmation."""
    contact = site.pending()
    with chromium_page() as page:
        assert page.goto(site.url + site.path_of(contact)).status == 200
        assert "Dealer One" in page.content() and "a***@people.test" in page.content()
        with page.expect_navigation():
            page.get_by_role("button", name="Confirm").click()
        assert page.get_by_role("heading").inner_text() == "Confirmed"
        assert "you confirmed" in page.get_by_role("status").inner_text()
    confirmed = site.contact(contact)
    assert confirmed.mailable and confirmed.confirmed_via == "link"
    assert "Chrome" in confirmed.confirmation_evidence["user_agent"]


# --- the API ----------------------------------------------------------------------------------


def test_the_api_gives_a_pending_contact_s_link_and_reply_to(site):
    from tests.test_cli import ok_json

    key = ok_json(site.path, "key", "add", "--account", str(site.account))["key"]
    with unit_of_work(site.engine, CLI) as uow:
        other = uow.accounts.add("Dealer Two").id
    other_key = ok_json(site.path, "key", "add", "--account", str(other))["key"]
    contact = site.pending()
    api = httpx.Client(base_url=site.url, timeout=10, headers={"Authorization": f"Bearer {key}"})
    answer = api.get(f"/v1/contacts/{contact}/confirmation")
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["reply_to"] == site.book.address(Box.CONFIRM, contact)
    assert body["url"] == site.url + site.path_of(contact)
    assert body["reply_to"].startswith(f"confirm+{body['token']}@")
    confirm_by = datetime.fromisoformat(body["confirm_by"].replace("Z", "+00:00"))
    assert timedelta(days=6) < confirm_by - datetime.now(UTC) <= timedelta(days=7)
    assert site.client.get(body["url"]).status_code == 200
    # Another account's contact, and one that is not there, are the same 404.
    assert httpx.get(f"{site.url}/v1/contacts/{contact}/confirmation", headers={
        "Authorization": f"Bearer {other_key}"}).status_code == 404
    assert api.get("/v1/contacts/99999/confirmation").status_code == 404
    assert httpx.get(f"{site.url}/v1/contacts/{contact}/confirmation").status_code == 401
    # Not pending: a clear 409.
    site.client.post(body["url"], data={"confirm": "yes"})
    done = api.get(f"/v1/contacts/{contact}/confirmation")
    assert done.status_code == 409 and done.headers["content-type"] == PROBLEM
    assert done.json()["detail"].endswith("is not pending: it is confirmed already")
    assert site.contact(contact).mailable


# --- the whole way: an import, its mail, the person's reply, the proof -----------------------


def _answer(request: email.message.Message, text: str, *, sender: str) -> bytes:
    """The person's reply as a mail client writes it: top-posted, the request quoted below
    with Gmail's attribution line, threaded to it."""
    quoted = "\n".join(f"> {line}" if line else ">" for line in _body(request).splitlines())
    return (f"From: Ann Lee <{sender}>\r\nTo: {request['Reply-To']}\r\n"
            f"Subject: Re: {request['Subject']}\r\nIn-Reply-To: {request['Message-ID']}\r\n"
            f"Message-ID: <answer.{time.monotonic_ns()}@people.test>\r\n\r\n"
            f"{text}\r\n\r\nOn Mon, 7 Dec 2026 at 14:02, Dealer One <{request['Reply-To']}> "
            f"wrote:\r\n{quoted}\r\n").replace("\n", "\r\n").replace("\r\r\n", "\r\n").encode()


def test_an_imported_social_list_waits_for_each_persons_yes_and_keeps_the_proof(
        tmp_path, database_url, server_factory, relay):
    """``contact import --consent-method social``: pending, not mailable; each gets its
    request; a reply that only quotes it does nothing, the person's "Yes please" above the
    quote confirms; ``contact consent`` shows method, source, time and the reply as the
    evidence; the other, who never answers, stays pending."""
    from tests.support import send
    from tests.test_cli import ok_json, ok_rows

    s = Site(tmp_path, database_url, server_factory,
             outbound={"relay": f"127.0.0.1:{relay.port}"})
    rows = tmp_path / "linkedin.csv"
    rows.write_text("email,first,last\nann@people.test,Ann,Lee\nbo@people.test,Bo,Li\n")
    done = ok_json(s.path, "contact", "import", str(rows), "--account", str(s.account),
                   "--consent-method", "social", "--source", "LinkedIn connections")
    assert done["pending"] == 2
    listed = {c["email"]: c for c in ok_rows(s.path, "contact", "list", "--account",
                                                  str(s.account))}
    assert {c["status"] for c in listed.values()} == {"pending"}
    assert not any(c["mailable"] for c in listed.values())
    requests = {rcpts[0]: email.message_from_bytes(raw) for _, rcpts, raw in relay.wait(2)}
    ann = listed["ann@people.test"]["id"]

    quote_only = _answer(requests["ann@people.test"], "", sender="ann@people.test")
    assert send(s.server.port, "ann@people.test", [requests["ann@people.test"]["Reply-To"]],
                quote_only)[0] == 250
    ignored = s.server.wait_for("message.processed", state="ignored")
    assert ignored["reason"] == "confirm: no yes or no in the reply"
    assert s.contact(ann).status == "pending"

    yes = _answer(requests["ann@people.test"], "Yes please!", sender="ann@people.test")
    assert send(s.server.port, "ann@people.test", [requests["ann@people.test"]["Reply-To"]],
                yes)[0] == 250
    s.server.wait_for("contact.confirmed", contact_id=ann)
    proof = ok_json(s.path, "contact", "consent", str(ann))
    assert (proof["method"], proof["source"], proof["confirmed_via"]) == (
        "social", "LinkedIn connections", "reply")
    assert proof["at"] and proof["confirmed_at"]
    assert proof["evidence"]["message_id"].strip("<>").startswith("answer.")
    assert proof["evidence"]["inbound_message_id"]
    assert [e["type"] for e in proof["events"]][:3] == [
        "contact.consent_recorded", "contact.confirmation_sent", "contact.confirmed"]
    assert ok_json(s.path, "contact", "show", str(ann))["mailable"] is True
    assert s.contact(listed["bo@people.test"]["id"]).status == "pending"
