"""The operator's side of the mail we send: a server without ``[outbound] relay`` says so
(at start, and for each sign-in it cannot mail), ``review link`` prints a sign-in link
instead, ``outbox list | retry | purge`` show and repair the queue, and a sign-in mail
whose link expired before it could go is dropped, never sent. A real ``serve``, a real
relay (one that can be told to refuse), the commands as a script runs them.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.cli import run
from tests.conftest import Relay, write_config
from tests.test_cli import ok_json, ok_rows
from tests.test_review_page import Desk, _link


class PickyRelay(Relay):
    """The tests' relay, told to refuse (``answer``, such as ``451 ...``) for a while."""

    answer: str | None = None

    async def handle_DATA(self, server, session, envelope):
        if self.answer:
            return self.answer
        return await super().handle_DATA(server, session, envelope)


@pytest.fixture
def relay() -> Iterator[PickyRelay]:
    picky = PickyRelay().start()
    yield picky
    picky.stop()


def test_without_a_relay_the_operator_hears_of_it(tmp_path, database_url, server_factory):
    """At start a warning names what cannot be sent; a sign-in answers the same to an
    admin and to anyone, makes no link that could never arrive, and logs why."""
    path = write_config(tmp_path / "norelay.toml", database_url,
                        http={"listen": "127.0.0.1:0"})
    ok_json(path, "db", "upgrade")
    account = ok_json(path, "account", "add", "Dealer")["id"]
    ok_json(path, "user", "add", "--account", str(account), "--email", "boss@dealer.test",
            "--role", "contact-admin")
    server = server_factory(path)
    warned = server.wait_for("config.no_relay")
    assert warned["level"] == "warning"
    assert any("review page" in what for what in warned["unsendable"])
    url = f"http://127.0.0.1:{server.wait_for('http.started')['port']}"
    answers = []
    with httpx.Client(base_url=url, timeout=10) as client:
        for who in ("boss@dealer.test", "nobody@else.test"):
            answer = client.post("/review/sign-in", data={"email": who})
            answers.append(answer.text.replace(who, "WHO"))
            assert answer.status_code == 200
    assert answers[0] == answers[1]
    unsent = server.wait_for("review.link_unsent")
    assert unsent["level"] == "warning" and "relay" in unsent["reason"]
    assert ok_rows(path, "outbox", "list") == []  # nothing queued that could never go
    assert len([e for e in server.events if e.get("event") == "review.link_unsent"]) == 1


def test_review_link_prints_a_sign_in_link(tmp_path, database_url, server_factory, relay):
    """The link works once on the running page, as a mailed one does; an address that is
    no contact admin gets exit 1 and one line; no mail is sent."""
    desk = Desk(tmp_path, database_url, server_factory, relay)
    cli = write_config(tmp_path / "cli.toml", database_url, http={"public_url": desk.url})
    printed = run(cli, "review", "link", "Boss@Dealer.test")
    assert printed.returncode == 0, printed.stderr
    [url] = printed.stdout.splitlines()
    assert url.startswith(desk.url + "/review/link/")
    client = httpx.Client(timeout=10)
    signed = client.post(url)
    assert signed.status_code == 303 and "fm_review" in signed.headers["set-cookie"]
    assert "Sign out" in client.get(desk.url + "/review/").text
    assert client.post(url).status_code == 410  # once
    as_json = ok_json(cli, "review", "link", "boss@dealer.test")
    assert as_json["email"] == "boss@dealer.test" and as_json["url"].startswith(desk.url)
    for who in ("clerk@dealer.test", "nobody@else.test"):
        refused = run(cli, "review", "link", who)
        assert refused.returncode == 1 and refused.stdout == ""
        assert refused.stderr == (f"feedback-mta: error: {who} is not a contact admin of "
                                  "any account\n")
    unknown = run(desk.path, "review", "link", "boss@dealer.test")  # listen port 0
    assert unknown.returncode == 3 and "public_url" in unknown.stderr
    time.sleep(0.5)
    assert relay.messages == []


def test_outbox_list_retry_and_purge(tmp_path, database_url, server_factory, relay):
    """Mail the relay refused for good is listed as failed with its error; retried, it is
    sent by the running server; purged once done with; each change an audit event."""
    relay.answer = "554 5.7.1 relay says no"
    desk = Desk(tmp_path, database_url, server_factory, relay)
    assert ok_json(desk.path, "leads", "digest") == {"queued": 2}
    desk.server.wait_for("mail.failed")
    failed = _wait_rows(desk.path, 2, "--state", "failed")
    assert {r["to"] for r in failed} == {"boss@dealer.test", "chief@dealer.test"}
    assert all(r["state"] == "failed" and r["attempts"] == 1 and "554" in r["last_error"]
               and r["subject"].startswith("1 lead of ") and r["next_attempt_at"] is None
               for r in failed)
    assert ok_rows(desk.path, "outbox", "list", "--state", "sent") == []
    table = run(desk.path, "outbox", "list")
    assert table.returncode == 0
    assert table.stdout.split("\n")[0].split() == [
        "ID", "PURPOSE", "TO", "SUBJECT", "STATE", "ATTEMPTS", "NEXT_ATTEMPT_AT", "LAST_ERROR"]

    bad = run(desk.path, "outbox", "retry", "999999")
    assert bad.returncode == 1 and bad.stderr == "feedback-mta: error: no outbound mail 999999\n"
    assert run(desk.path, "outbox", "retry").returncode == 2
    relay.answer = None
    first = min(r["id"] for r in failed)
    assert ok_json(desk.path, "outbox", "retry", str(first)) == {"retried": 1, "ids": [first]}
    again = run(desk.path, "outbox", "retry", str(first))
    assert again.returncode == 1 and re.search(r"is (queued|sent), not failed$", again.stderr)
    assert ok_json(desk.path, "outbox", "retry", "--all-failed")["retried"] == 1
    relay.wait(2)
    sent = _wait_rows(desk.path, 2, "--state", "sent")
    assert {r["to"] for r in sent} == {"boss@dealer.test", "chief@dealer.test"}
    assert ok_rows(desk.path, "outbox", "list") == []  # nothing queued or failed

    assert ok_json(desk.path, "outbox", "purge", "--older-than", "1d")["purged"] == 0
    purged = ok_json(desk.path, "outbox", "purge", "--older-than", "0s")
    assert (purged["purged"], purged["sent"], purged["failed"]) == (2, 2, 0)
    assert ok_rows(desk.path, "outbox", "list", "--state", "sent") == []
    said = run(desk.path, "outbox", "purge", "--older-than", "0s")
    assert said.returncode == 0 and re.search(r"^purged\s+0$", said.stdout, re.M)
    trail = ok_rows(desk.path, "events", "--limit", "1000")
    assert sorted(e["subject_id"] for e in trail if e["type"] == "mail.retried") == sorted(
        r["id"] for r in failed)
    [purge] = [e for e in trail if e["type"] == "mail.purged"]
    assert purge["actor"] == "cli"


def _wait_rows(path, n: int, *args: str, timeout: float = 20) -> list[dict]:
    deadline = time.monotonic() + timeout
    while True:
        rows = ok_rows(path, "outbox", "list", *args)
        if len(rows) >= n or time.monotonic() > deadline:
            assert len(rows) == n, rows
            return rows
        time.sleep(0.1)


def test_a_sign_in_mail_whose_link_expired_is_never_sent(tmp_path, database_url,
                                                           server_factory, relay):
    """The relay defers the sign-in mail; by the next attempt its link (good for a second)
    has expired: the mail is dropped as expired, with a log line, and never reaches the
    relay. A link still good is sent as before."""
    relay.answer = "451 4.3.0 try again later"
    desk = Desk(tmp_path, database_url, server_factory, relay, review={"link_lifetime": "1s"})
    client = httpx.Client(base_url=desk.url, timeout=10)
    client.post("/review/sign-in", data={"email": "boss@dealer.test"})
    deferred = desk.server.wait_for("mail.deferred", purpose="review.sign_in")
    relay.answer = None
    expired = desk.server.wait_for("mail.expired", outbound_id=deferred["outbound_id"])
    assert expired["level"] == "warning" and isinstance(expired["link_id"], int)
    [row] = ok_rows(desk.path, "outbox", "list", "--state", "expired")
    assert row["id"] == deferred["outbound_id"] and "expired" in row["last_error"]
    assert ok_rows(desk.path, "outbox", "list") == []
    time.sleep(1.5)  # another round of the scheduler's flush: still nothing sent
    assert relay.messages == []
    assert run(desk.path, "outbox", "retry", str(row["id"])).returncode == 1  # not failed
    client.post("/review/sign-in", data={"email": "boss@dealer.test"})
    assert _link(desk, 1).startswith("/review/link/")  # a live link goes as ever
