"""Webhooks: committed events POSTed to a real local receiver, which checks every signature
the way docs/integrating.md shows (a few lines of hmac, not our code).

At least once, in order, none lost: the receiver is down for a while, then up, and every
event arrives once it is back, in id order. An event nobody takes for ``retry_for`` is
``failed`` (a log line, a metric) and the next one goes.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import socket
import socketserver
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import SimpleNamespace

import httpx
import pytest
from sqlmodel import Session, col, select
from standardwebhooks.webhooks import Webhook as Verifier

from feedback_mta.actions import CLI, unit_of_work
from tests.conftest import write_config
from tests.support import seed, send, wait_until
from tests.test_cli import ok_json, ok_rows, run


def verify(secret: str, headers: dict[str, str], body: bytes, tolerance: int = 300) -> bool:
    """The documented check: HMAC-SHA256 over "{id}.{timestamp}.{body}" with the decoded secret."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{headers['webhook-id']}.{headers['webhook-timestamp']}.".encode() + body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    fresh = abs(time.time() - int(headers["webhook-timestamp"])) < tolerance
    return fresh and any(hmac.compare_digest(expected, sig.partition(",")[2])
                         for sig in headers["webhook-signature"].split()
                         if sig.startswith("v1,"))


class Receiver:
    """A platform's webhook endpoint on a free loopback port. ``status`` is what it answers;
    ``stop``/``start`` take it off the network and back on the same port."""

    def __init__(self) -> None:
        self.secret = ""
        self.status = 204
        self.delay = 0.0  # seconds before each answer
        self.received: list[dict] = []  # every request, bad signatures too
        self.port = 0
        self.server: ThreadingHTTPServer | None = None

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                time.sleep(receiver.delay)
                headers = {k.lower(): v for k, v in self.headers.items()}
                receiver.received.append({
                    "at": time.monotonic(), "path": self.path,
                    "id": headers.get("webhook-id"), "body": json.loads(body),
                    "valid": verify(receiver.secret, headers, body),
                    "status": receiver.status})
                self.send_response(receiver.status)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks/feedback"

    def delivered(self) -> list[dict]:
        return [r for r in self.received if 200 <= r["status"] < 300]


@pytest.fixture
def receiver():
    r = Receiver().start()
    yield r
    r.stop()


@pytest.fixture
def hooks(tmp_path, database_url, server_factory, receiver):
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "hooks.toml", database_url, http={"listen": "127.0.0.1:0"},
                        webhooks={"max_backoff": "1s", "timeout": "2s",
                                  "allow_private_networks": True})
    cfg = config_mod.load(path, env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg)

    key = ok_json(path, "key", "add", "--account", str(s.account_id))["key"]
    yield SimpleNamespace(path=path, engine=engine, seed=s, key=key, cfg=cfg,
                          start=lambda **kw: _start(server_factory, path, key, **kw))
    engine.dispose()


def _start(server_factory, path, key, args=()):
    server = server_factory(path, args=args)
    port = server.wait_for("http.started")["port"]
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10,
                          headers={"Authorization": f"Bearer {key}"})
    return server, client


def test_a_dealers_spam_reply_reaches_the_platform_signed_within_seconds(hooks, receiver):
    from tests.test_replies import reply

    hook = ok_json(hooks.path, "webhook", "add", receiver.url,
                   "--account", str(hooks.seed.account_id), "--events", "lead.*")
    assert hook["secret"].startswith("whsec_") and hook["event_types"] == ["lead.*"]
    receiver.secret = hook["secret"]
    with unit_of_work(hooks.engine, CLI) as uow:
        notification_id = uow.leads.get(hooks.seed.lead_id).notification_message_id
    server, _ = hooks.start()

    st = SimpleNamespace(seed=hooks.seed, notification_id=notification_id)
    sent = time.monotonic()
    code, _ = send(server.port, "boss@dealer.test", [hooks.seed.reply],
                   reply(st, "SPAM", dmarc=None))
    assert code == 250
    wait_until(lambda: receiver.delivered(), timeout=5, what="the webhook within 5 s")
    took = time.monotonic() - sent
    [got] = receiver.received
    assert got["valid"] and took < 5
    body = got["body"]
    assert (body["type"], body["data"]["lead_id"]) == ("lead.flagged_spam", hooks.seed.lead_id)
    assert body["data"]["via"] == "email" and body["data"]["actor"] == "email:boss@dealer.test"
    assert got["id"] == f"evt_{body['id']}"
    assert set(body) == {"id", "type", "created_at", "data"}
    # The standardwebhooks package agrees with the hand-written check.
    server.wait_for("webhook.delivered", event_id=body["id"])
    rows = ok_rows(hooks.path, "webhook", "deliveries", str(hook["id"]))
    assert [(r["event_id"], r["outcome"], r["status_code"]) for r in rows] == [
        (body["id"], "delivered", 204)]


def test_receiver_down_then_up_gets_every_event_once_in_order(hooks, receiver):
    hook = ok_json(hooks.path, "webhook", "add", receiver.url,
                   "--account", str(hooks.seed.account_id))
    receiver.secret = hook["secret"]
    receiver.stop()  # down: connections refused
    server, client = hooks.start()
    leads = [client.post("/v1/leads", json={"email": f"d{i}@people.test", "first": "Di",
                                            "last": "Ng"}).json() for i in range(3)]
    client.post(f"/v1/leads/{leads[0]['id']}/flag")
    server.wait_for("webhook.retrying")
    receiver.start()  # the same port
    receiver.status = 503  # up, but failing for a while
    wait_until(lambda: len(receiver.received) >= 2, timeout=10, what="attempts while failing")
    receiver.status = 200
    expected = [e["id"] for e in client.get("/v1/events", params={"limit": 1000}).json()["events"]
                if e["id"] > 0]
    after_hook = [i for i in expected if i >= hook_event_id(client, hook["id"])]
    wait_until(lambda: [r["body"]["id"] for r in receiver.delivered()] == after_hook,
               timeout=30, what="every event, in order")
    delivered = receiver.delivered()
    assert all(r["valid"] for r in receiver.received)
    assert len({r["id"] for r in delivered}) == len(delivered)  # once each
    types = [r["body"]["type"] for r in delivered]
    assert types.count("lead.created") == 3 and types[-1] == "lead.flagged_spam"
    # While it failed, it was the first waiting event that was tried again, never a later one.
    failed_ids = [r["body"]["id"] for r in receiver.received if r["status"] >= 300]
    assert failed_ids == [after_hook[0]] * len(failed_ids)
    listed = ok_rows(hooks.path, "webhook", "list")[0]
    assert (listed["cursor"], listed["attempts"]) == (after_hook[-1], 0)
    outcomes = [r["outcome"]
                for r in ok_rows(hooks.path, "webhook", "deliveries", str(hook["id"]))]
    assert "retrying" in outcomes and outcomes.count("delivered") == len(after_hook)


def hook_event_id(client, webhook_id: int) -> int:
    """The id of the webhook.created event of this subscription (the first it is sent)."""
    events = client.get("/v1/events", params={"type": "webhook.created"}).json()["events"]
    return next(e["id"] for e in events if e["data"]["webhook_id"] == webhook_id)


def test_an_event_not_taken_for_retry_for_fails_and_the_next_one_goes(
        tmp_path, database_url, server_factory, receiver):
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "giveup.toml", database_url,
                        http={"listen": "127.0.0.1:0"},
                        webhooks={"max_backoff": "1s", "retry_for": "2s", "timeout": "2s",
                                  "allow_private_networks": True})
    cfg = config_mod.load(path, env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg)
    with unit_of_work(engine, CLI) as uow:
        hook = uow.platform.add_webhook(receiver.url, s.account_id, ["contact.opted_out"],
                                        allow_private_networks=True)
    receiver.secret, receiver.status = hook.secret, 500
    server = server_factory(path)

    def unsubscribe(contact_id: int) -> None:
        assert send(server.port, "", [s.unsubscribe(contact_id)],
                    b"Subject: unsubscribe\r\n\r\nx\r\n")[0] == 250

    unsubscribe(s.contact_ids[0])
    first = server.wait_for("webhook.failed", timeout=20)
    assert first["webhook_id"] == hook.id and first["error"] == "HTTP 500"
    assert first["attempts"] >= 2  # retried (1 s apart at most) before it gave up
    receiver.status = 200
    unsubscribe(s.contact_ids[1])
    wait_until(lambda: receiver.delivered(), timeout=20, what="the next event")
    [ok] = receiver.delivered()
    assert ok["body"]["id"] > first["event_id"] and ok["valid"]
    metrics = server.events
    assert any(e.get("event") == "webhook.failed" for e in metrics)
    engine.dispose()


def test_webhook_commands_add_list_test_and_remove(hooks, receiver):
    hook = ok_json(hooks.path, "webhook", "add", receiver.url, "--all-accounts", "--events",
                   "contact.opted_out,lead.*")
    receiver.secret = hook["secret"]
    assert hook["account_id"] is None
    assert Verifier(hook["secret"])  # a secret the standard library takes
    tested = ok_json(hooks.path, "webhook", "test", str(hook["id"]))
    assert tested["ok"] is True and tested["status_code"] == 204
    [got] = receiver.received
    assert got["valid"] and got["body"]["type"] == "webhook.test"
    assert got["id"].startswith("test_")
    [listed] = ok_rows(hooks.path, "webhook", "list")
    assert listed["url"] == receiver.url and listed["event_types"] == ["contact.opted_out",
                                                                      "lead.*"]
    receiver.status = 500
    failing = run(hooks.path, "webhook", "test", str(hook["id"]))
    assert failing.returncode == 1 and "500" in failing.stdout
    removed = ok_json(hooks.path, "webhook", "remove", str(hook["id"]))
    assert removed == {"id": hook["id"], "removed": True}
    assert ok_rows(hooks.path, "webhook", "list") == []
    # Bad input: one line, the right exit code.
    for args, code, words in (
            (("webhook", "add", "ftp://x", "--all-accounts"), 1, "not an http(s) URL"),
            (("webhook", "add", receiver.url), 2, "--account ID or --all-accounts"),
            (("webhook", "add", receiver.url, "--all-accounts", "--events", "nope.*"), 1,
             "no event type matches"),
            (("webhook", "remove", "99"), 1, "no webhook 99"),
            (("key", "add", "--account", "99"), 1, "no account 99")):
        done = run(hooks.path, *args)
        assert done.returncode == code and words in done.stderr, (args, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1


# --- hostile receivers ------------------------------------------------------------------------

class Hostile:
    """A receiver that reads the request, then answers as ``answer`` says: ``"trickle"``, a
    byte every ``every`` seconds for ever (the status line too); ``"endless"``, a 200 with a
    body that never ends, 64 KB at a time. Counts connections open and bytes sent."""

    def __init__(self, answer: str, every: float = 0.5) -> None:
        self.answer, self.every = answer, every
        self.open = 0
        self.sent = 0
        self.closed = threading.Event()
        self.stopping = threading.Event()
        hostile = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                sock: socket.socket = self.request
                data = b""
                while b"\r\n\r\n" not in data:
                    more = sock.recv(65536)
                    if not more:
                        return
                    data += more
                hostile.open += 1
                try:
                    hostile.respond(sock)
                except OSError:
                    pass
                finally:
                    hostile.open -= 1
                    hostile.closed.set()

        self.server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def respond(self, sock: socket.socket) -> None:
        if self.answer == "trickle":
            answer = b"HTTP/1.1 200 OK\r\ncontent-length: 100000\r\n\r\n" + b"x" * 100000
            for i in range(len(answer)):
                if self.stopping.wait(self.every):
                    return
                sock.sendall(answer[i:i + 1])
                self.sent += 1
            return
        sock.sendall(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n")
        chunk = b"x" * 65536
        ends = time.monotonic() + 10
        while time.monotonic() < ends and not self.stopping.is_set():
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.sent += len(chunk)
            time.sleep(0.01)
        sock.sendall(b"0\r\n\r\n")

    def url(self, path: str = "/hook") -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}{path}"

    def stop(self) -> None:
        self.stopping.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hostile_factory():
    made: list[Hostile] = []

    def make(answer: str, **kw) -> Hostile:
        made.append(Hostile(answer, **kw))
        return made[-1]

    yield make
    for h in made:
        h.stop()


def _event(engine, account_id: int, email: str) -> None:
    """One committed event (contact.created) of this account."""
    with unit_of_work(engine, CLI) as uow:
        uow.contacts.add(account_id, email, "Cy", "Ro")


def test_receivers_trickling_their_answers_delay_another_accounts_event_by_one_deadline_at_most(
        hooks, receiver, hostile_factory):
    """Four subscriptions of one account whose receiver answers a byte every half second
    (httpx's per-read timeout never trips) against one of another account: each slow
    attempt ends at its deadline ([webhooks] timeout, 2 s here) and waits for its next, and
    the other account's events go within one deadline."""
    from feedback_mta.store.models import WebhookDelivery

    slow = hostile_factory("trickle", every=0.5)
    other = _other_account(hooks.engine)
    slow_ids = []
    with unit_of_work(hooks.engine, CLI) as uow:
        for i in range(4):
            slow_ids.append(uow.platform.add_webhook(
                slow.url(f"/slow{i}"), hooks.seed.account_id,
                allow_private_networks=True).id)
        fast = uow.platform.add_webhook(receiver.url, other, allow_private_networks=True)
    receiver.secret = fast.secret
    server, _ = hooks.start()

    _event(hooks.engine, hooks.seed.account_id, "slow1@people.test")
    wait_until(lambda: slow.open >= 3, timeout=10, what="the slow receivers holding threads")
    delays = []
    for i in range(3):  # while the slow ones are held, fail, back off and are tried again
        sent = time.monotonic()
        _event(hooks.engine, other, f"fast{i}@people.test")
        wait_until(lambda: len(_contacts_created(receiver)) > i, timeout=15,
                   what=f"the other account's event {i}")
        delays.append(_contacts_created(receiver)[i]["at"] - sent)
        time.sleep(1.3)
    assert max(delays) < 2.0 + 0.5, delays  # one deadline at most (with a little slack)

    # Each slow attempt ended at its deadline, as a failure to retry, with the reason.
    wait_until(lambda: server.count("webhook.retrying") >= 4, timeout=10,
               what="the slow attempts failing")
    with Session(hooks.engine) as session:
        tries = session.exec(select(WebhookDelivery).where(
            col(WebhookDelivery.webhook_id).in_(slow_ids))).all()
    assert tries and all(t.outcome == "retrying" and "Timeout" in (t.error or "")
                         and t.duration_ms < 2600 for t in tries), [
        (t.outcome, t.error, t.duration_ms) for t in tries]
    print(f"\nanother account's event delivered after {[round(d, 3) for d in delays]} s "
          "with four trickling receivers (deadline 2 s)")


def _contacts_created(receiver: Receiver) -> list[dict]:
    return [r for r in receiver.delivered() if r["body"]["type"] == "contact.created"]


def _other_account(engine) -> int:
    with unit_of_work(engine, CLI) as uow:
        return uow.accounts.add("Dealer Two").id


def test_an_answer_that_never_ends_is_read_a_few_kilobytes_deep(hooks, hostile_factory):
    """A receiver answering 200 with a body that never ends (6 MB/s for 10 s) is delivered
    to as soon as its status arrives: the body is not read whole, the connection is
    closed."""
    endless = hostile_factory("endless")
    with unit_of_work(hooks.engine, CLI) as uow:
        hook = uow.platform.add_webhook(endless.url(), hooks.seed.account_id,
                                        allow_private_networks=True)
    server, _ = hooks.start()
    sent = time.monotonic()
    _event(hooks.engine, hooks.seed.account_id, "big@people.test")
    done = server.wait_for("webhook.delivered", webhook_id=hook.id, timeout=15)
    took = time.monotonic() - sent
    assert done["status"] == 200 and took < 1.5, took
    assert endless.closed.wait(5)  # we hung up; it did not finish
    assert endless.sent < 10 * 1024 * 1024


def test_urls_pointing_inside_are_refused_at_add_and_at_each_delivery(
        tmp_path, database_url, server_factory, receiver):
    """Without [webhooks] allow_private_networks: `webhook add` (command line and API)
    refuses loopback however written, link-local metadata, private addresses and
    user:pass@ with one clear line / a 422 naming the field; a subscription that points
    inside anyway (made while it was allowed, or a name that resolves inside) fails each
    attempt with the reason, as any failure, and nothing reaches the address."""
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "inside.toml", database_url, http={"listen": "127.0.0.1:0"},
                        webhooks={"max_backoff": "1s", "timeout": "2s"})
    cfg = config_mod.load(path, env={})
    assert cfg.webhooks.allow_private_networks is False  # the default
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg)
    key = ok_json(path, "key", "add", "--account", str(s.account_id))["key"]
    inside = [
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://0x7f000001:9100/metrics", "loopback"),
        ("http://2130706433/", "loopback"),
        ("http://[::ffff:127.0.0.1]/", "loopback"),
        (f"http://localhost:{receiver.port}/", "loopback"),
        ("http://10.1.2.3/", "private"),
        ("http://user:pass@8.8.8.8/", "user name or password")]
    for url, words in inside:
        done = run(path, "webhook", "add", url, "--account", str(s.account_id))
        assert done.returncode == 1 and words in done.stderr, (url, done.stderr)
        assert len(done.stderr.strip().splitlines()) == 1

    # A subscription that points inside anyway, one written in hex.
    with unit_of_work(engine, CLI) as uow:
        hooks_inside = [uow.platform.add_webhook(url, s.account_id, ["contact.*"],
                                                 allow_private_networks=True)
                        for url in (f"http://0x7f000001:{receiver.port}/hex",
                                    f"http://localhost:{receiver.port}/name")]
    server, client = _start(server_factory, path, key)
    for url, words in inside:
        answer = client.post("/v1/webhooks", json={"url": url, "events": ["lead.*"]})
        assert answer.status_code == 422, (url, answer.text)
        assert answer.headers["content-type"].startswith("application/problem+json")
        problem = answer.json()
        assert words in problem["detail"] and problem["errors"][0]["loc"] == ["body", "url"]
    assert client.get("/v1/events", params={"type": "webhook.created"}).json()[
        "events"][-1]["data"]["webhook_id"] == hooks_inside[-1].id  # none of them made

    _event(engine, s.account_id, "inside@people.test")
    for hook in hooks_inside:
        failed = server.wait_for("webhook.retrying", webhook_id=hook.id, timeout=10)
        assert "refused" in failed["error"] and "(loopback)" in failed["error"], failed
    tested = run(path, "webhook", "test", str(hooks_inside[0].id), "--json")
    assert tested.returncode == 1 and "refused" in tested.stdout
    assert receiver.received == []  # nothing reached it
    engine.dispose()


def test_the_api_adds_a_webhook_as_the_command_line_does(hooks, receiver):
    _, client = hooks.start()
    answer = client.post("/v1/webhooks", json={"url": receiver.url, "events": ["contact.*"]})
    assert answer.status_code == 201, answer.text
    made = answer.json()
    assert made["secret"].startswith("whsec_") and made["account_id"] == hooks.seed.account_id
    receiver.secret = made["secret"]
    _event(hooks.engine, hooks.seed.account_id, "api-hook@people.test")
    wait_until(lambda: _contacts_created(receiver), timeout=10, what="the first event")
    assert _contacts_created(receiver)[0]["valid"]
    other = client.post("/v1/webhooks", json={"url": receiver.url, "account_id": 999})
    assert other.status_code == 404  # another account's (or none)


def test_slow_receivers_that_do_answer_take_turns_with_the_others(hooks, receiver):
    """Four accounts' receivers each take 1.5 s (under the 2 s deadline) for every event and
    have a backlog: a subscription's turn ends after the event in hand once another waits,
    so a fifth account's event goes within one deadline, not after their backlogs."""
    slow = Receiver().start()
    slow.delay = 1.5
    try:
        accounts = [_other_account(hooks.engine) for _ in range(5)]
        with unit_of_work(hooks.engine, CLI) as uow:
            for account in accounts[:4]:
                uow.platform.add_webhook(slow.url, account, ["contact.*"],
                                         allow_private_networks=True)
            fast = uow.platform.add_webhook(receiver.url, accounts[4], ["contact.*"],
                                            allow_private_networks=True)
        receiver.secret = fast.secret
        for account in accounts[:4]:
            for i in range(6):
                _event(hooks.engine, account, f"backlog{i}@people.test")
        hooks.start()
        wait_until(lambda: len(slow.received) >= 4, timeout=10, what="the slow ones going")
        sent = time.monotonic()
        _event(hooks.engine, accounts[4], "fast@people.test")
        wait_until(lambda: _contacts_created(receiver), timeout=20, what="the fifth account")
        took = _contacts_created(receiver)[0]["at"] - sent
        assert took < 2.0 + 0.5, took
        assert len(slow.received) < 4 * 6  # their backlogs were not done first
    finally:
        slow.stop()
