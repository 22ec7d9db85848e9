"""Review and restore of automatically flagged leads: by email (the daily spam digest and
its ``NOT SPAM <id>`` reply) and on the review page (a sign-in link mailed to the contact
admin, then one click per lead or contact), through a real ``serve``, a real relay and,
for the page, headless Chromium driven by Playwright.
"""

from __future__ import annotations

import contextlib
import email
import re
import sqlite3
import time

import httpx
import pytest
import sqlalchemy as sa

from feedback_mta.store.models import ReviewLink
from tests.conftest import write_config
from tests.support import chromium_page, send
from tests.test_cli import ok_json, ok_rows

SEO = ("Hi! I can get your website on the first page of Google with our SEO services. "
       "See http://bit.ly/3xYz and http://seo-agency.example/offer")
BUYER = "Is the 2019 Civic still available? Can I test drive it Saturday?"


class Desk:
    """A server with HTTP and a relay; an account with a contact admin (boss) and a user
    without the role (clerk); an auto-flagged lead, a buyer's lead, a suspected contact;
    a second account with a flagged lead of its own."""

    def __init__(self, tmp_path, database_url, server_factory, relay, digest_time="",
                 **sections):
        self.relay = relay
        self.path = write_config(
            tmp_path / "review.toml", database_url, http={"listen": "127.0.0.1:0"},
            outbound={"relay": f"127.0.0.1:{relay.port}", "retry_interval": "1s"},
            leads={"digest_time": digest_time},
            quality={"allowed_domains": ["test"], "suspect_networks": ["198.51.100.0/24"]},
            **sections)
        ok_json(self.path, "db", "upgrade")
        self.account = ok_json(self.path, "account", "add", "Dealer")["id"]
        self.other = ok_json(self.path, "account", "add", "Elsewhere")["id"]
        for account, who, roles in ((self.account, "boss", ["--role", "contact-admin"]),
                                    (self.account, "clerk", []),
                                    (self.other, "chief", ["--role", "contact-admin"])):
            ok_json(self.path, "user", "add", "--account", str(account), "--email",
                    f"{who}@dealer.test", *roles)
        self.spam = self.lead(self.account, "pitch@agency.test", "Sam", "Hill", SEO)
        self.buyer = self.lead(self.account, "ann@people.test", "Ann", "Lee", BUYER)
        self.elsewhere = self.lead(self.other, "pitch2@agency.test", "Sam", "Hill", SEO)
        assert self.spam["status"] == self.elsewhere["status"] == "spam"
        self.suspect = ok_json(self.path, "contact", "add", "--account", str(self.account),
                               "--email", "kiosk@people.test", "--first", "Kim", "--last",
                               "Ode", "--ip", "198.51.100.7")["id"]
        self.server = server_factory(self.path)
        self.url = f"http://127.0.0.1:{self.server.wait_for('http.started')['port']}"

    def lead(self, account, address, first, last, comments) -> dict:
        return ok_json(self.path, "lead", "add", "--account", str(account), "--email", address,
                       "--first", first, "--last", last, "--comments", comments)

    def show(self, lead_id) -> dict:
        return ok_json(self.path, "lead", "show", str(lead_id))

    def events(self, action: str, subject_id: int) -> list[dict]:
        return [e for e in ok_rows(self.path, "events", "--lead", str(subject_id))
                if e["type"] == action] if action.startswith("lead.") else [
            e for e in ok_rows(self.path, "events", "--contact", str(subject_id))
            if e["type"] == action]


@pytest.fixture
def desk(tmp_path, database_url, server_factory, relay):
    return Desk(tmp_path, database_url, server_factory, relay)


def _body(raw: bytes) -> tuple[email.message.Message, str]:
    msg = email.message_from_bytes(raw)
    return msg, msg.get_payload(decode=True).decode()


def test_the_spam_digest_and_a_not_spam_reply_restore_the_lead_and_teach(desk):
    assert "leads.digest" not in desk.server.wait_for("scheduler.started")["jobs"]  # "": off
    assert ok_json(desk.path, "leads", "digest") == {"queued": 2}  # boss, and chief
    mails = {rcpts[0]: raw for _, rcpts, raw in desk.relay.wait(2)}
    assert set(mails) == {"boss@dealer.test", "chief@dealer.test"}  # never the clerk
    digest, body = _body(mails["boss@dealer.test"])
    assert f"#{desk.spam['id']}" in body and f"#{desk.elsewhere['id']}" not in body
    assert "Sam Hill" in body and "pitch@agency.test" in body and "seo pitch" in body
    assert "I can get your website on the first page" in body  # the first words
    assert "NOT SPAM <id>" in body and digest["Subject"].startswith("1 lead of Dealer")
    assert ok_json(desk.path, "leads", "digest") == {"queued": 0}  # each lead named once

    review_box = re.search(r"<(review\+[^>]+)>", digest["From"]).group(1)
    reply = (f"From: boss@dealer.test\r\nTo: {review_box}\r\nSubject: Re: {digest['Subject']}"
             f"\r\nIn-Reply-To: {digest['Message-ID']}\r\nMessage-ID: <r1@dealer.test>\r\n"
             f"\r\nNOT SPAM {desk.spam['id']}\r\nnot spam {desk.elsewhere['id']}\r\n\r\n"
             f"> NOT SPAM <id>\r\n").encode()
    # The clerk may not; nothing changes.
    forged = reply.replace(b"From: boss@", b"From: clerk@").replace(b"<r1@", b"<r0@")
    assert send(desk.server.port, "clerk@dealer.test", [review_box], forged)[0] == 250
    desk.server.wait_for("review.refused", account_id=desk.account)
    assert desk.show(desk.spam["id"])["status"] == "spam"

    assert send(desk.server.port, "boss@dealer.test", [review_box], reply)[0] == 250
    restored = desk.server.wait_for("lead.restored", lead_id=desk.spam["id"])
    assert (restored["actor"], restored["via"]) == ("email:boss@dealer.test", "email")
    assert desk.show(desk.spam["id"])["status"] == "active"
    assert desk.show(desk.elsewhere["id"])["status"] == "spam"  # another account's: never
    exported = ok_rows(desk.path, "lead", "export", "--account", str(desk.account))
    assert sorted(r["id"] for r in exported) == sorted([desk.spam["id"], desk.buyer["id"]])
    ack = _body(desk.relay.wait(3)[2][2])[1]
    assert f"Restored: #{desk.spam['id']}." in ack and f"#{desk.elsewhere['id']}" in ack
    # A label the model counts: a restore by a person.
    model = ok_json(desk.path, "leads", "model")
    labels = model["labels"][str(desk.account)]
    assert (labels["spam"], labels["ham"]) == (0, 1)
    assert labels["threshold"] > 0.9  # a restore past the false-flag budget raises it


def _signed_in_client(desk, n: int = 1) -> httpx.Client:
    """Ask for a link, take it from the relay (its ``n``th mail), use it: a client holding
    the cookie."""
    client = httpx.Client(base_url=desk.url, timeout=10)
    asked = client.post("/review/sign-in", data={"email": "Boss@Dealer.test"})
    assert asked.status_code == 200 and "a sign-in link is on its way" in asked.text
    link = _link(desk, n)
    assert client.get(link).status_code == 200  # only a button: not used up
    signed = client.post(link)
    assert signed.status_code == 303 and signed.headers["location"] == "/review/"
    assert "HttpOnly" in signed.headers["set-cookie"]
    assert "samesite=strict" in signed.headers["set-cookie"].lower()
    return client


def _link(desk, n: int) -> str:
    _, body = _body(desk.relay.wait(n)[n - 1][2])
    return re.search(r"(/review/link/\S+)", body).group(1)


def test_the_review_page_refuses_what_it_must(desk):
    stranger = httpx.Client(base_url=desk.url, timeout=10)
    page = stranger.get("/review/")
    assert page.status_code == 200 and 'name="email"' in page.text
    # A stranger and a user without the role get the same answer, and no mail.
    for who in ("nobody@else.test", "clerk@dealer.test"):
        answer = stranger.post("/review/sign-in", data={"email": who})
        assert answer.status_code == 200 and f"If {who} may review" in answer.text
    assert stranger.post("/review/sign-in", data={"email": "not an address"}).status_code == 400
    # Changes need a sign-in, and a sign-in needs its CSRF token.
    path = f"/review/leads/{desk.spam['id']}/restore"
    assert stranger.post(path, data={"csrf": "x"}).status_code == 401
    client = _signed_in_client(desk)  # the first mail the relay got: no mail for the others
    assert len(desk.relay.messages) == 1
    assert client.post(path, data={"csrf": "forged"}).status_code == 403
    forged_cookie = httpx.Client(base_url=desk.url, timeout=10,
                                 cookies={"fm_review": "Ym9zc0BkZWFsZXIudGVzdA.9999999999.00"})
    assert "Send me a sign-in link" in forged_cookie.get("/review/").text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', client.get("/review/").text).group(1)
    # Another account's lead: the same answer as none.
    other = client.post(f"/review/leads/{desk.elsewhere['id']}/restore", data={"csrf": csrf})
    assert other.status_code == 404 and desk.show(desk.elsewhere["id"])["status"] == "spam"
    assert client.post("/review/leads/999999/restore", data={"csrf": csrf}).status_code == 404
    assert desk.show(desk.spam["id"])["status"] == "spam"
    # A used link signs nobody in again; only the hash of its secret is stored.
    link = _link(desk, 1)
    assert stranger.post(link).status_code == 410
    with sa.create_engine(_url(desk)).connect() as conn:
        stored = conn.execute(sa.select(ReviewLink.__table__)).one()
    assert stored.secret_hash not in link and link.split(".")[-1] not in stored.secret_hash
    # Whoever keeps asking for links gets the same answer, and the inbox at most three.
    for _ in range(4):
        assert stranger.post("/review/sign-in", data={"email": "boss@dealer.test"}
                             ).status_code == 200
    desk.relay.wait(4)
    time.sleep(1.0)
    assert len(desk.relay.messages) == 4
    # A body with more fields than any form of ours is no form of ours.
    assert stranger.post("/review/sign-in", content="&".join(
        f"f{i}=x" for i in range(20)), headers={
        "Content-Type": "application/x-www-form-urlencoded"}).status_code == 400


def _url(desk) -> str:
    from feedback_mta import config as config_mod

    return config_mod.load(desk.path, env={}).database.url


def test_an_expired_link_signs_nobody_in(tmp_path, database_url, server_factory, relay):
    desk = Desk(tmp_path, database_url, server_factory, relay, digest_time="23:59",
                review={"link_lifetime": "1s"})
    assert "leads.digest" in desk.server.wait_for("scheduler.started")["jobs"]
    client = httpx.Client(base_url=desk.url, timeout=10)
    client.post("/review/sign-in", data={"email": "boss@dealer.test"})
    link = _link(desk, 1)
    time.sleep(1.5)
    answer = client.post(link)
    assert answer.status_code == 410 and "expired" in answer.text
    assert "fm_review" not in answer.headers.get("set-cookie", "")


def test_the_review_page_in_a_real_browser(desk):
    """A contact admin signs in with the link from the mail, restores the lead and keeps
    the contact, in headless Chromium; each is the audit event a reply makes, via web."""
    with chromium_page() as page:
        assert page.goto(desk.url + "/review/").status == 200
        page.get_by_label("Your email address").fill("boss@dealer.test")
        page.get_by_role("button", name="Send me a sign-in link").click()
        assert "a sign-in link is on its way" in page.get_by_role("status").inner_text()
        page.goto(desk.url + _link(desk, 1))  # followed from the captured mail
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        assert page.url == desk.url + "/review/"
        row = page.locator(f"#lead-{desk.spam['id']}")
        assert "seo pitch" in row.inner_text() and "Sam Hill" in row.inner_text()
        assert page.locator(f"#lead-{desk.elsewhere['id']}").count() == 0
        assert page.locator(f"#lead-{desk.buyer['id']}").count() == 0
        page.get_by_role("button", name=f"Not spam: restore lead {desk.spam['id']}").click()
        page.wait_for_url(re.compile(r".*done=restored.*"))
        assert f"Lead #{desk.spam['id']} restored" in page.get_by_role("status").inner_text()
        assert page.locator(f"#lead-{desk.spam['id']}").count() == 0
        page.get_by_role("button", name=f"Keep contact {desk.suspect}").click()
        page.wait_for_url(re.compile(r".*done=kept.*"))
        assert page.locator(f"#contact-{desk.suspect}").count() == 0
        page.get_by_role("button", name="Sign out").click()
        assert page.get_by_label("Your email address").count() == 1
    assert desk.show(desk.spam["id"])["status"] == "active"
    [restored] = desk.events("lead.restored", desk.spam["id"])
    assert (restored["actor"], restored["via"]) == ("web:boss@dealer.test", "web")
    [verified] = desk.events("contact.verified", desk.suspect)
    assert (verified["actor"], verified["via"]) == ("web:boss@dealer.test", "web")
    contact = ok_json(desk.path, "contact", "show", str(desk.suspect))
    assert contact["verified"] is True and contact["tags"] == []
    model = ok_json(desk.path, "leads", "model")
    labels = model["labels"][str(desk.account)]
    assert (labels["spam"], labels["ham"]) == (0, 1)
    assert labels["threshold"] > 0.9  # a restore past the false-flag budget raises it


@contextlib.contextmanager
def _links_locked(desk):
    """The sign-in links' table locked by another connection (SQLite: the write lock)."""
    url = _url(desk)
    if url.startswith("sqlite"):
        conn = sqlite3.connect(sa.engine.make_url(url).database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            conn.execute(sa.text("LOCK TABLE review_link IN ACCESS EXCLUSIVE MODE"))
            yield
    finally:
        engine.dispose()


def test_the_sign_in_answer_does_not_wait_for_an_admin_s_link(desk):
    """Whoever asks, the answer comes after the same work: whether the address is an admin's,
    and its link and mail, are worked out after the answer. With the links' table locked,
    the admin's answer comes as soon as anyone's, and the mail once the lock goes."""
    client = httpx.Client(base_url=desk.url, timeout=3)
    with _links_locked(desk):
        for who in ("boss@dealer.test", "nobody@else.test", "clerk@dealer.test"):
            started = time.monotonic()
            answer = client.post("/review/sign-in", data={"email": who})
            assert answer.status_code == 200 and f"If {who} may review" in answer.text
            assert time.monotonic() - started < 1.0, who
        assert desk.relay.messages == []
    assert _link(desk, 1).startswith("/review/link/")  # the admin's, made after the lock
    time.sleep(0.5)
    assert len(desk.relay.messages) == 1  # and only the admin's


def test_signing_out_ends_the_session_on_the_server(desk):
    """A copy of the cookie taken before signing out (another tab, a stolen one) is refused
    afterwards, for pages and for changes; a new sign-in works."""
    client = _signed_in_client(desk)
    cookie = client.cookies["fm_review"]
    page = client.get("/review/")
    assert "Sign out" in page.text
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    copy = httpx.Client(base_url=desk.url, timeout=10, cookies={"fm_review": cookie})
    assert "Sign out" in copy.get("/review/").text  # the copy works while signed in

    out = client.post("/review/sign-out", data={"csrf": csrf})
    assert out.status_code == 303 and 'fm_review=""' in out.headers["set-cookie"]

    replay = httpx.Client(base_url=desk.url, timeout=10, cookies={"fm_review": cookie})
    assert 'name="email"' in replay.get("/review/").text
    assert "Sign out" not in replay.get("/review/").text
    restore = replay.post(f"/review/leads/{desk.spam['id']}/restore", data={"csrf": csrf})
    assert restore.status_code == 401
    assert desk.show(desk.spam["id"])["status"] == "spam"
    assert desk.events("lead.restored", desk.spam["id"]) == []


def _csrf(page: httpx.Response) -> str:
    return re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)


def _rows(page: httpx.Response, prefix: str = "lead") -> set[int]:
    return {int(n) for n in re.findall(rf'<tr id="{prefix}-(\d+)">', page.text)}


def _flag_by_reply(desk, lead: dict) -> None:
    reply = (f"From: boss@dealer.test\r\nTo: {lead['reply_to']}\r\nSubject: Re: lead\r\n"
             f"Message-ID: <flag{lead['id']}@dealer.test>\r\n\r\nSPAM\r\n").encode()
    assert send(desk.server.port, "boss@dealer.test", [lead["reply_to"]], reply)[0] == 250
    desk.server.wait_for("lead.flagged_spam", lead_id=lead["id"])


def test_every_spam_lead_is_on_the_page_with_who_flagged_it_and_why(desk):
    """Not only the system's: a lead a dealer flagged by reply and one flagged on the
    command line are listed too, each saying who flagged it; the filter (a GET form) shows
    one kind at a time; the suspected contact's deadline is labelled as one."""
    replied = desk.lead(desk.account, "bob@people.test", "Bob", "Ray", "Call me maybe")
    assert replied["status"] == "active"
    _flag_by_reply(desk, replied)
    ok_json(desk.path, "lead", "flag", str(desk.buyer["id"]))
    desk.relay.wait(1)  # the acknowledgement of the reply
    client = _signed_in_client(desk, 2)
    page = client.get("/review/")
    assert _rows(page) == {desk.spam["id"], desk.buyer["id"], replied["id"]}
    cells = {int(i): c for i, c in re.findall(
        r'<tr id="lead-(\d+)">.*?<td class="by">(.*?)</td>', page.text, re.S)}
    assert cells[desk.spam["id"]].startswith("the system")
    assert "a dealer, by reply" in cells[replied["id"]]
    assert "boss@dealer.test" in cells[replied["id"]]
    assert cells[desk.buyer["id"]].startswith("the command line")
    assert "seo pitch" in page.text  # why the system flagged it
    assert "Opted out unless kept by" in page.text and "Opted out on" not in page.text
    assert '<form method="get" action="/review/">' in page.text and "<script" not in page.text
    for by, expected in (("reply", {replied["id"]}), ("system", {desk.spam["id"]}),
                         ("cli", {desk.buyer["id"]}), ("api", set()), ("page", set())):
        assert _rows(client.get("/review/", params={"by": by})) == expected, by
    assert client.get("/review/", params={"by": "everyone"}).status_code == 422
    assert client.get("/review/", params={"before": "99999999999"}).status_code == 422
    # Paging: one account's leads before an id; an admin of two accounts still sees the
    # other account's from its newest.
    ok_json(desk.path, "user", "add", "--account", str(desk.other), "--email",
            "boss@dealer.test", "--role", "contact-admin")
    older = client.get("/review/", params={"account": desk.account,
                                           "before": str(desk.buyer["id"])})
    assert _rows(older) == {desk.spam["id"], desk.elsewhere["id"]}
    assert f"(older than #{desk.buyer['id']})" in older.text
    assert f"account={desk.other}&amp;before=" not in older.text


def test_a_restore_is_undone_and_a_restored_lead_flagged_again(desk):
    """After Not spam the page offers Undo (a POST with the CSRF token, through the
    actions: actor web:<address>, via web); a lead restored lately is listed with a button
    to flag it again; another account's lead is refused as none."""
    client = _signed_in_client(desk)
    csrf = _csrf(client.get("/review/"))
    lead = desk.spam["id"]
    restored = client.post(f"/review/leads/{lead}/restore", data={"csrf": csrf})
    assert restored.status_code == 303
    page = client.get(restored.headers["location"])
    assert f'action="/review/leads/{lead}/flag"' in page.text and "Undo" in page.text
    assert _rows(page) == set() and _rows(page, "restored") == {lead}
    assert client.post(f"/review/leads/{lead}/flag", data={"csrf": "forged"}
                       ).status_code == 403
    assert client.post(f"/review/leads/{desk.elsewhere['id']}/flag", data={"csrf": csrf}
                       ).status_code == 404
    undone = client.post(f"/review/leads/{lead}/flag", data={"csrf": csrf})
    assert undone.status_code == 303 and "done=flagged" in undone.headers["location"]
    after = client.get(undone.headers["location"])
    assert f"Lead #{lead} flagged as spam again" in after.text
    assert _rows(after) == {lead} and _rows(after, "restored") == set()
    shown = desk.show(lead)
    assert shown["status"] == "spam"
    [flag] = [e for e in desk.events("lead.flagged_spam", lead) if e["via"] == "web"]
    assert flag["actor"] == "web:boss@dealer.test"
    assert client.post(f"/review/leads/{lead}/flag", data={"csrf": csrf}
                       ).headers["location"].startswith("/review/?done=unchanged")
    # A restore done elsewhere (the command line) is on the page to be flagged again.
    client.post(f"/review/leads/{lead}/restore", data={"csrf": csrf})
    ok_json(desk.path, "lead", "flag", str(desk.buyer["id"]))
    ok_json(desk.path, "lead", "restore", str(desk.buyer["id"]))
    assert _rows(client.get("/review/"), "restored") == {lead, desk.buyer["id"]}


def test_the_filter_and_undo_in_a_real_browser(desk):
    """The filter is a plain form, and Undo a button, in headless Chromium."""
    ok_json(desk.path, "lead", "flag", str(desk.buyer["id"]))
    with chromium_page() as page:
        page.goto(desk.url + "/review/")
        page.get_by_label("Your email address").fill("boss@dealer.test")
        page.get_by_role("button", name="Send me a sign-in link").click()
        page.get_by_role("status").wait_for()
        page.goto(desk.url + _link(desk, 1))
        with page.expect_navigation():
            page.get_by_role("button", name="Sign in").click()
        assert page.locator(f"#lead-{desk.buyer['id']}").count() == 1
        page.get_by_label("Flagged by").select_option("system")
        with page.expect_navigation():
            page.get_by_role("button", name="Show").click()
        assert "by=system" in page.url
        assert page.locator(f"#lead-{desk.buyer['id']}").count() == 0
        page.get_by_role("button", name=f"Not spam: restore lead {desk.spam['id']}").click()
        page.wait_for_url(re.compile(r".*done=restored.*"))
        page.get_by_role("button", name=f"Undo: flag lead {desk.spam['id']} as spam again"
                         ).click()
        page.wait_for_url(re.compile(r".*done=flagged.*"))
        assert page.locator(f"#lead-{desk.spam['id']}").count() == 1
    assert desk.show(desk.spam["id"])["status"] == "spam"
