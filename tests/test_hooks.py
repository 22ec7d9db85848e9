"""Feedback over HTTPS: one-click unsubscribe (RFC 8058) and the ESPs' webhooks.

The samples of each provider's documentation are read by its module (a table, as for mail
formats); then a real ``serve`` takes signed requests made with keys generated here (for
SNS a throwaway CA and a local HTTPS server the config trusts), and forged, stale, replayed
and unsigned ones, which must store nothing.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import http.server
import json
import ssl
import threading
import time
from pathlib import Path

import httpx
import pytest
import sqlalchemy as sa
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from feedback_mta import tokens
from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.kinds import Kind
from feedback_mta.reading.hooks import mailgun, postmark, sendgrid, ses
from feedback_mta.reading.hooks.base import HookRequest, Refused
from feedback_mta.store.models import Contact, Event, InboundMessage
from tests.conftest import FIXTURES, SECRET, write_config
from tests.support import chromium_page, wait_until
from tests.test_cli import ok_json, ok_rows

SAMPLES_DIR = FIXTURES / "hooks"


def _sample(path: str) -> bytes:
    return (SAMPLES_DIR / path).read_bytes()


# (file, index in an array or None, module, expected kind or None (not feedback),
#  expected hard bounce or None, expected recipients)
SAMPLES = [
    ("mailgun/failed-permanent.json", None, mailgun, Kind.BOUNCE, True, ("alice@example.com",)),
    ("mailgun/failed-user-unknown.json", None, mailgun, Kind.BOUNCE, True, ("alice@example.com",)),
    ("mailgun/failed-temporary.json", None, mailgun, Kind.BOUNCE, False, ("alice@example.com",)),
    ("mailgun/complained.json", None, mailgun, Kind.COMPLAINT, None, ("alice@example.com",)),
    ("mailgun/unsubscribed.json", None, mailgun, Kind.UNSUBSCRIBE, None, ("alice@example.com",)),
    ("mailgun/delivered.json", None, mailgun, None, None, ()),
    ("sendgrid/events.json", 0, sendgrid, None, None, ()),                  # processed
    ("sendgrid/events.json", 1, sendgrid, None, None, ()),                  # deferred
    ("sendgrid/events.json", 2, sendgrid, None, None, ()),                  # delivered
    ("sendgrid/events.json", 3, sendgrid, None, None, ()),                  # open
    ("sendgrid/events.json", 4, sendgrid, Kind.BOUNCE, True, ("example@test.com",)),
    ("sendgrid/events.json", 5, sendgrid, Kind.BOUNCE, False, ("example@test.com",)),  # blocked
    ("sendgrid/events.json", 6, sendgrid, Kind.BOUNCE, True, ("example@test.com",)),   # dropped
    ("sendgrid/events.json", 7, sendgrid, Kind.COMPLAINT, None, ("example@test.com",)),
    ("sendgrid/events.json", 8, sendgrid, Kind.UNSUBSCRIBE, None, ("example@test.com",)),
    ("sendgrid/events.json", 9, sendgrid, Kind.UNSUBSCRIBE, None, ("example@test.com",)),
    ("postmark/hard-bounce.json", None, postmark, Kind.BOUNCE, True, ("john@example.com",)),
    ("postmark/soft-bounce.json", None, postmark, Kind.BOUNCE, False, ("john@example.com",)),
    ("postmark/spam-complaint.json", None, postmark, Kind.COMPLAINT, None, ("john@example.com",)),
    ("postmark/subscription-change.json", None, postmark, Kind.UNSUBSCRIBE, None,
     ("bounced-address@wildbit.com",)),
    ("postmark/subscription-change-bounce.json", None, postmark, None, None, ()),
    ("ses/bounce.json", None, ses, Kind.BOUNCE, True, ("jane@example.com",)),
    ("ses/complaint.json", None, ses, Kind.COMPLAINT, None, ("richard@example.com",)),
    ("ses/delivery.json", None, ses, Kind.AUTO_REPLY, None, ("jane@example.com",)),
]


@pytest.mark.parametrize(("path", "index", "module", "kind", "hard", "recipients"), SAMPLES,
                         ids=[f"{s[0]}[{s[1]}]" if s[1] is not None else s[0] for s in SAMPLES])
def test_each_documented_sample_reads_as_documented(path, index, module, kind, hard, recipients):
    events = module.split(_sample(path))
    event = events[index] if index is not None else events[0]
    if index is not None:
        assert len(events) == 10  # SendGrid's array is split, one stored message each
    report = module.read(event.raw)
    if kind is None:
        assert report is None
        return
    assert report is not None and report.kind is kind and report.format == module.NAME
    assert report.recipients == recipients
    assert report.hard_bounce is hard


@pytest.mark.parametrize(("provider_hard", "status", "words", "hard", "reason"), [
    (True, None, "", True, "suppressed"),                     # nothing to check: believed
    (True, "550", "5.1.1 user unknown", True, "userunknown"),
    (True, None, "552 5.2.2 mailbox full", False, "mailboxfull"),  # our rules: soft
    (True, "5.7.1", "rejected by policy", False, "securityerror"),
    (True, None, "421 4.4.2 timed out", False, "networkerror"),
    (False, None, "", False, "undefined"),                     # temporary, no code: believed
    (False, None, "550 5.1.1 no such user", True, "userunknown"),  # our rules: hard
])
def test_the_provider_s_verdict_is_checked_against_our_rules(provider_hard, status, words,
                                                             hard, reason):
    from feedback_mta.reading.hooks.base import bounced

    result = bounced("a@example.com", provider_hard, status, words, "suppressed")
    assert (result.hard, result.reason) == (hard, reason)


def test_event_ids_are_the_providers_so_a_second_delivery_is_a_duplicate():
    ids = [e.id for e in sendgrid.split(_sample("sendgrid/events.json"))]
    assert ids[0] == "rbtnWrG1DVDGGGFHFyun0A==" and len(set(ids)) == 10
    assert mailgun.split(_sample("mailgun/complained.json"))[0].id == "-Agny091SquKnsrW2NEKUA"
    [bounce] = postmark.split(_sample("postmark/hard-bounce.json"))
    assert bounce.id == "Bounce:4323372036854775807"
    assert ses.split(_sample("ses/bounce.json"))[0].id == "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324"


# --- a real server -------------------------------------------------------------------------


MAILGUN_KEY = "key-0123456789abcdef-mailgun"
POSTMARK_AUTH = ("postmark", "a-long-random-postmark-password")


class Hooks:
    def __init__(self, server, engine, path, account, other):
        self.server, self.engine, self.path = server, engine, path
        self.account, self.other = account, other
        self.url = f"http://127.0.0.1:{server.wait_for('http.started')['port']}"
        self.client = httpx.Client(base_url=self.url, timeout=10)

    def contact(self, email: str, account: int | None = None) -> int:
        with unit_of_work(self.engine, CLI) as uow:
            return uow.contacts.add(account or self.account, email, "Ann", "Lee")[0].id

    def state(self, contact_id: int) -> Contact:
        with unit_of_work(self.engine, CLI) as uow:
            return uow.contacts.get(contact_id)

    def rows(self) -> list[dict]:
        t = InboundMessage.__table__
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(sa.select(
                t.c.id, t.c.state, t.c.reason, t.c.kind, t.c.provider, t.c.protocol,
                t.c.duplicate_of).order_by(t.c.id))]

    def done(self, count: int) -> list[dict]:
        wait_until(lambda: len(self.rows()) == count
                   and all(r["state"] != "received" for r in self.rows()),
                   what=f"{count} inbound messages processed", log=lambda: str(self.rows()))
        return self.rows()

    def events(self, action: str) -> list[dict]:
        t = Event.__table__
        with self.engine.connect() as conn:
            return [dict(r._mapping) for r in conn.execute(
                sa.select(t).where(t.c.action == action).order_by(t.c.id))]


def _hooks(tmp_path, database_url, server_factory, sections: dict | None = None,
           **webhooks) -> Hooks:
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    sections = sections or {}
    path = write_config(tmp_path / "hooks.toml", database_url,
                        http={"listen": "127.0.0.1:0", "public_url": "https://fb.example.com"},
                        webhooks=webhooks, **sections)
    engine = db.create_engine(config_mod.load(path, env={}).database)
    db.upgrade(engine)
    with unit_of_work(engine, CLI) as uow:
        account, other = uow.accounts.add("Dealer One").id, uow.accounts.add("Dealer Two").id
    # The account the hooks name goes into the config once the ids are known.
    for section in webhooks.values():
        section.setdefault("account", account)
    path = write_config(tmp_path / "hooks.toml", database_url,
                        http={"listen": "127.0.0.1:0", "public_url": "https://fb.example.com"},
                        webhooks=webhooks, **sections)
    return Hooks(server_factory(path), engine, path, account, other)


@pytest.fixture
def hooks(tmp_path, database_url, server_factory):
    h = _hooks(tmp_path, database_url, server_factory,
               mailgun={"signing_key": MAILGUN_KEY},
               postmark={"username": POSTMARK_AUTH[0], "password": POSTMARK_AUTH[1]})
    yield h
    h.engine.dispose()


# --- one-click --------------------------------------------------------------------------------


def _unsubscribe_url(hooks: Hooks, contact_id: int) -> str:
    headers = ok_json(hooks.path, "contact", "headers", str(contact_id))
    url, mailto = headers["List-Unsubscribe"].split(", ")
    assert headers["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert mailto.startswith("<mailto:unsubscribe+") and mailto.endswith("?subject=unsubscribe>")
    assert url.startswith("<https://fb.example.com/u/") and url.endswith(">")
    return url[1:-1].removeprefix("https://fb.example.com")


def test_a_one_click_post_opts_out_and_a_get_does_not(hooks):
    contact = hooks.contact("ann@people.test")
    path = _unsubscribe_url(hooks, contact)

    page = hooks.client.get(path)  # a link scanner, or the person's browser
    assert page.status_code == 200 and 'method="post"' in page.text
    assert 'name="List-Unsubscribe" value="One-Click"' in page.text
    # What is accepted is stored before the answer: nothing stored now, nothing later.
    assert hooks.rows() == [] and hooks.state(contact).mailable

    answer = hooks.client.post(path, content=b"List-Unsubscribe=One-Click",
                               headers={"Content-Type": "application/x-www-form-urlencoded"})
    assert answer.status_code == 200 and "set-cookie" not in answer.headers
    assert not answer.is_redirect
    [row] = hooks.done(1)
    assert (row["provider"], row["protocol"], row["kind"]) == ("one-click", "http", "unsubscribe")
    state = hooks.state(contact)
    assert (state.status, state.opt_out_reason) == ("opted_out", "unsubscribe")
    [event] = hooks.events("contact.opted_out")
    assert (event["via"], event["actor"], event["reason"]) == (
        "one-click", "http:one-click", "unsubscribe")

    # The second click (a client's retry) is stored, and a duplicate: one opt-out.
    again = hooks.client.post(path, data={"List-Unsubscribe": "One-Click"})
    assert again.status_code == 200
    assert hooks.done(2)[1]["reason"] == "duplicate"
    assert len(hooks.events("contact.opted_out")) == 1

    listed = ok_rows(hooks.path, "inbox", "list")
    assert {(r["source"], r["provider"]) for r in listed} == {("http", "one-click")}




def test_the_page_s_button_unsubscribes_in_a_real_browser(hooks):
    """What a person sees: the GET page in headless Chromium, one click on its button."""
    contact = hooks.contact("dot@people.test")
    path = _unsubscribe_url(hooks, contact)
    with chromium_page() as page:
        assert page.goto(hooks.url + path).status == 200
        assert hooks.state(contact).mailable  # seeing the page changed nothing
        with page.expect_navigation():
            page.get_by_role("button", name="Unsubscribe").click()
        assert page.url == hooks.url + path  # no redirect
        assert page.get_by_role("heading").inner_text() == "Unsubscribed"
    hooks.done(1)
    assert hooks.state(contact).opt_out_reason == "unsubscribe"


def test_a_bad_token_or_body_stores_nothing(hooks):
    contact = hooks.contact("bo@people.test")
    path = _unsubscribe_url(hooks, contact)
    forged = f"/u/{contact}-{'a' * tokens.MAC_LENGTH}"
    moved = f"/u/{tokens.make(SECRET, tokens.Purpose.UNSUBSCRIBE, contact + 1)}"
    feedback_token = f"/u/{tokens.make(SECRET, tokens.Purpose.FEEDBACK, contact)}"
    for bad in (forged, feedback_token, "/u/nothing"):
        assert hooks.client.get(bad).status_code == 404
        assert hooks.client.post(bad, data={"List-Unsubscribe": "One-Click"}).status_code == 404
    assert hooks.client.post(path, data={"List-Unsubscribe": "Maybe"}).status_code == 400
    assert hooks.client.post(path).status_code == 400
    assert hooks.rows() == [] and hooks.state(contact).mailable
    # A genuine token of a contact that does not exist is stored and changes nothing.
    assert hooks.client.post(moved, data={"List-Unsubscribe": "One-Click"}).status_code == 200
    assert hooks.done(1)[0]["reason"] == "unknown contact"


def test_the_api_gives_the_same_one_click_headers(hooks):
    contact = hooks.contact("cy@people.test")
    key = ok_json(hooks.path, "key", "add", "--account", str(hooks.account))["key"]
    api = hooks.client.get(f"/v1/contacts/{contact}/headers",
                           headers={"Authorization": f"Bearer {key}"})
    assert api.status_code == 200
    assert api.json() == ok_json(hooks.path, "contact", "headers", str(contact))


# --- Mailgun ----------------------------------------------------------------------------------


def _mailgun(sample: str, *, recipient: str, token: str | None = None,
             key: str = MAILGUN_KEY, timestamp: float | None = None,
             nonce: str | None = None, event_id: str | None = None) -> bytes:
    body = json.loads(_sample(f"mailgun/{sample}"))
    stamp = str(int(timestamp if timestamp is not None else time.time()))
    nonce = nonce or hashlib.sha256(f"{sample}{recipient}{stamp}{event_id}".encode()).hexdigest()
    body["signature"] = {"timestamp": stamp, "token": nonce, "signature": hmac.new(
        key.encode(), (stamp + nonce).encode(), hashlib.sha256).hexdigest()}
    event = body["event-data"]
    event["recipient"] = recipient
    if event_id:
        event["id"] = event_id
    if token:
        event["user-variables"]["fm_token"] = token
    return json.dumps(body).encode()


def test_a_signed_mailgun_permanent_failure_makes_the_contact_unmailable(hooks):
    by_token = hooks.contact("dee@people.test")
    by_address = hooks.contact("eve@people.test")
    elsewhere = hooks.contact("eve@people.test", account=hooks.other)
    token = tokens.make(SECRET, tokens.Purpose.FEEDBACK, by_token)
    assert hooks.client.post("/hooks/mailgun", content=_mailgun(
        "failed-user-unknown.json", recipient="someone@else.test", token=token)).status_code == 200
    assert hooks.client.post("/hooks/mailgun", content=_mailgun(
        "failed-permanent.json", recipient="eve@people.test")).status_code == 200
    hooks.done(2)
    assert hooks.state(by_token).undeliverable_reason == "hard bounce: 5.1.1 userunknown"
    # Without our token: the address, within the account [webhooks.mailgun] names only.
    assert not hooks.state(by_address).mailable and hooks.state(elsewhere).mailable
    bounced = hooks.events("contact.hard_bounced")
    assert [e["via"] for e in bounced] == ["mailgun", "mailgun"]
    assert [e["data"]["attributed_by"] for e in bounced] == ["token-header", "recipient"]


def test_mailgun_temporary_failures_count_as_soft(hooks):
    contact = hooks.contact("fay@people.test")
    for n in range(3):
        assert hooks.client.post("/hooks/mailgun", content=_mailgun(
            "failed-temporary.json", recipient="fay@people.test",
            event_id=f"temp-{n}")).status_code == 200
    rows = hooks.done(3)
    assert [r["reason"] for r in rows] == [
        "soft bounce 1 of 3", "soft bounce 2 of 3", "soft bounce 3 of 3: undeliverable"]
    assert not hooks.state(contact).mailable


def test_forged_stale_replayed_and_unsigned_mailgun_requests_store_nothing(hooks):
    contact = hooks.contact("gus@people.test")
    refused = {
        "forged": _mailgun("complained.json", recipient="gus@people.test", key="not-the-key"),
        "stale": _mailgun("complained.json", recipient="gus@people.test",
                          timestamp=time.time() - 600),
        "unsigned": json.dumps({"event-data": json.loads(
            _sample("mailgun/complained.json"))["event-data"]}).encode(),
        "not json": b"event=complained",
    }
    for name, body in refused.items():
        answer = hooks.client.post("/hooks/mailgun", content=body)
        assert answer.status_code == 401, (name, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    signed = _mailgun("unsubscribed.json", recipient="gus@people.test", nonce="n" * 50)
    assert hooks.client.post("/hooks/mailgun", content=signed).status_code == 200
    # The same delivery again (Mailgun retries with the same token) is stored and deduplicated;
    # the token with another event is a replay, refused.
    assert hooks.client.post("/hooks/mailgun", content=signed).status_code == 200
    replay = _mailgun("complained.json", recipient="gus@people.test", nonce="n" * 50)
    assert hooks.client.post("/hooks/mailgun", content=replay).status_code == 401
    rows = hooks.done(2)
    assert [r["reason"] for r in rows] == ["opted out", "duplicate"]
    assert hooks.state(contact).opt_out_reason == "unsubscribe"
    assert hooks.events("contact.complained") == []
    assert hooks.server.count("hook.refused") == len(refused) + 1


def test_the_example_config_ships_every_provider_off():
    from feedback_mta import config as config_mod
    from feedback_mta.reading.hooks import PROVIDERS

    example = config_mod.load(Path(__file__).parent.parent / "config" / "feedback-mta.toml",
                              env={})
    assert {name: module.enabled(getattr(example.webhooks, name))
            for name, module in PROVIDERS.items()} == dict.fromkeys(PROVIDERS, False)


def test_an_unknown_or_unconfigured_provider_is_404(hooks):
    assert hooks.client.post("/hooks/mandrill", content=b"{}").status_code == 404
    assert hooks.client.post("/hooks/sendgrid", content=b"[]").status_code == 404
    assert hooks.client.post("/hooks/ses", content=_sample("ses/bounce.json")).status_code == 404
    assert hooks.rows() == []


# --- Postmark ---------------------------------------------------------------------------------


def test_postmark_samples_act_with_basic_auth_and_refuse_without(hooks):
    john = hooks.contact("john@example.com")
    other = hooks.contact("bounced-address@wildbit.com")
    for sample in ("hard-bounce.json", "spam-complaint.json"):
        wrong = hooks.client.post("/hooks/postmark", content=_sample(f"postmark/{sample}"),
                                  auth=("postmark", "wrong"))
        assert wrong.status_code == 401 and wrong.headers["www-authenticate"].startswith("Basic")
        assert hooks.client.post("/hooks/postmark",
                                 content=_sample(f"postmark/{sample}")).status_code == 401
    assert hooks.rows() == []
    for sample in ("hard-bounce.json", "spam-complaint.json", "subscription-change.json",
                   "subscription-change-bounce.json", "hard-bounce.json"):
        answer = hooks.client.post("/hooks/postmark", content=_sample(f"postmark/{sample}"),
                                   auth=POSTMARK_AUTH)
        assert answer.status_code == 200, answer.text
    rows = hooks.done(5)
    assert [r["reason"] for r in rows] == ["hard bounce", "opted out (complaint)", "opted out",
                                           "no action", "duplicate"]
    state = hooks.state(john)
    assert state.undeliverable_reason == "hard bounce: userunknown"
    assert (state.status, state.opt_out_reason) == ("opted_out", "complaint")
    assert hooks.state(other).opt_out_reason == "unsubscribe"
    assert len(hooks.events("contact.complained")) == 1


# --- SendGrid ---------------------------------------------------------------------------------


@pytest.fixture
def sendgrid_hooks(tmp_path, database_url, server_factory):
    key = ec.generate_private_key(ec.SECP256R1())
    public = base64.b64encode(key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)).decode()
    h = _hooks(tmp_path, database_url, server_factory, sendgrid={"public_key": public})
    h.sendgrid_key = key
    yield h
    h.engine.dispose()


def _sendgrid_headers(key, body: bytes, timestamp: str | None = None) -> dict[str, str]:
    stamp = timestamp or str(int(time.time()))
    signature = key.sign(stamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return {"X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": stamp,
            "Content-Type": "application/json"}


def test_a_signed_sendgrid_batch_is_split_and_acts_per_event(sendgrid_hooks):
    h = sendgrid_hooks
    contact = h.contact("example@test.com")
    body = _sample("sendgrid/events.json")
    forged = _sendgrid_headers(ec.generate_private_key(ec.SECP256R1()), body)
    assert h.client.post("/hooks/sendgrid", content=body, headers=forged).status_code == 401
    signed = _sendgrid_headers(h.sendgrid_key, body)
    tampered = body.replace(b"spamreport", b"spamreporx")
    assert h.client.post("/hooks/sendgrid", content=tampered, headers=signed).status_code == 401
    assert h.client.post("/hooks/sendgrid", content=body).status_code == 401
    assert h.rows() == []

    answer = h.client.post("/hooks/sendgrid", content=body, headers=signed)
    assert answer.status_code == 200 and answer.json() == {"stored": 10}
    rows = h.done(10)
    assert [r["kind"] for r in rows] == ["unknown"] * 4 + ["bounce"] * 3 + [
        "complaint", "unsubscribe", "unsubscribe"]
    state = h.state(contact)
    assert state.undeliverable_reason.startswith("hard bounce: ")
    assert (state.status, state.opt_out_reason) == ("opted_out", "complaint")
    # The whole batch again (SendGrid retries on any error): ten duplicates, no change.
    assert h.client.post("/hooks/sendgrid", content=body, headers=signed).status_code == 200
    assert [r["reason"] for r in h.done(20)[10:]] == ["duplicate"] * 10
    assert len(h.events("contact.complained")) == 1


def test_a_stale_or_future_sendgrid_signature_stores_nothing(sendgrid_hooks):
    """Mailgun's limit: a timestamp further than max_age (5 min) from now is a replay, however
    genuine its signature."""
    h = sendgrid_hooks
    contact = h.contact("example@test.com")
    body = _sample("sendgrid/events.json")
    for stamp in ("1000000000",  # 2001-09-09
                  str(int(time.time()) - 301), str(int(time.time()) + 600), "nan", "soon"):
        answer = h.client.post("/hooks/sendgrid", content=body,
                               headers=_sendgrid_headers(h.sendgrid_key, body, stamp))
        assert answer.status_code == 401, (stamp, answer.text)
        assert answer.headers["content-type"] == "application/problem+json"
    assert h.rows() == [] and h.state(contact).mailable
    assert h.server.count("hook.refused") == 5
    recent = _sendgrid_headers(h.sendgrid_key, body, str(int(time.time()) - 60))
    assert h.client.post("/hooks/sendgrid", content=body, headers=recent).status_code == 200


# --- SES through SNS --------------------------------------------------------------------------


def _cert(subject: str, key, issuer=None, issuer_key=None, *, ca: bool = False,
          names: tuple[str, ...] = ()) -> x509.Certificate:
    now = dt.datetime.now(dt.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (x509.CertificateBuilder().subject_name(name)
               .issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - dt.timedelta(days=1))
               .not_valid_after(now + dt.timedelta(days=7))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if names:
        builder = builder.add_extension(x509.SubjectAlternativeName(
            [x509.DNSName(n) for n in names]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


class SnsEndpoint:
    """A local HTTPS server standing in for sns.<region>.amazonaws.com: it serves the
    signing certificate and records subscription confirmations."""

    def __init__(self, directory: Path) -> None:
        ca_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ca = _cert("Test CA", ca_key, ca=True)
        tls_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        tls = _cert("localhost", tls_key, self.ca, ca_key, names=("localhost",))
        self.signing_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        signing = _cert("sns.amazonaws.com", self.signing_key)
        self.ca_file = directory / "ca.pem"
        self.ca_file.write_bytes(self.ca.public_bytes(serialization.Encoding.PEM))
        (directory / "tls.pem").write_bytes(
            tls.public_bytes(serialization.Encoding.PEM) + tls_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption()))
        pem = signing.public_bytes(serialization.Encoding.PEM)
        self.confirmed: list[str] = []
        self.cert_fetches = 0
        endpoint = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                if self.path.endswith(".pem"):
                    endpoint.cert_fetches += 1
                    body = pem
                else:
                    endpoint.confirmed.append(self.path)
                    body = b"<ConfirmSubscriptionResponse/>"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(directory / "tls.pem")
        self.httpd.socket = context.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"https://localhost:{self.port}{path}"

    def sign(self, message: dict, version: str = "2", cert_path: str = "/cert.pem") -> bytes:
        message = {**message, "SignatureVersion": version,
                   "SigningCertURL": self.url(cert_path)}
        digest = hashes.SHA1() if version == "1" else hashes.SHA256()
        signature = self.signing_key.sign(ses.string_to_sign(message), padding.PKCS1v15(), digest)
        message["Signature"] = base64.b64encode(signature).decode()
        return json.dumps(message).encode()


TOPIC = "arn:aws:sns:us-west-2:123456789012:MyTopic"


@pytest.fixture
def sns(tmp_path, database_url, server_factory):
    endpoint = SnsEndpoint(tmp_path)
    h = _hooks(tmp_path, database_url, server_factory,
               ses={"cert_host": "localhost", "ca_file": str(endpoint.ca_file),
                    "topic_arns": [TOPIC]})
    h.sns = endpoint
    yield h
    endpoint.httpd.shutdown()
    h.engine.dispose()


def _ses(sample: str, **changes) -> dict:
    message = json.loads(_sample(f"ses/{sample}"))
    notification = json.loads(message["Message"])
    for path, value in changes.items():
        target = notification
        *parents, last = path.split(".")
        for part in parents:
            target = target[part] if not part.isdigit() else target[int(part)]
        target[last] = value
    message["Message"] = json.dumps(notification)
    return message


def test_ses_notifications_signed_through_sns_act_as_documented(sns):
    jane, richard = sns.contact("jane@example.com"), sns.contact("richard@example.com")
    token = tokens.make(SECRET, tokens.Purpose.FEEDBACK, richard)
    complaint = _ses("complaint.json", **{"mail.headers": [
        {"name": "X-Feedback-Token", "value": token}]})
    complaint["MessageId"] = "complaint-1"
    for body in (sns.sns.sign(_ses("bounce.json"), version="1"),
                 sns.sns.sign(complaint, version="2"),
                 sns.sns.sign(_ses("delivery.json"))):
        answer = sns.client.post("/hooks/ses", content=body,
                                 headers={"x-amz-sns-message-type": "Notification"})
        assert answer.status_code == 200, answer.text
    rows = sns.done(3)
    assert [r["reason"] for r in rows] == [
        "hard bounce", "opted out (complaint)", "delivery report"]
    assert sns.state(jane).undeliverable_reason == "hard bounce: 5.1.1 userunknown"
    assert sns.state(richard).opt_out_reason == "complaint"
    assert sns.sns.cert_fetches == 1  # fetched once, then cached


def test_sns_subscription_is_confirmed_and_forgeries_refused(sns):
    confirmation = {"Type": "SubscriptionConfirmation", "MessageId": "sub-1",
                    "Token": "2336412f37", "TopicArn": "arn:aws:sns:us-west-2:123456789012:MyTopic",
                    "Message": "You have chosen to subscribe to the topic.",
                    "SubscribeURL": sns.sns.url("/?Action=ConfirmSubscription&Token=2336412f37"),
                    "Timestamp": "2012-04-26T20:45:04.751Z"}
    answer = sns.client.post("/hooks/ses", content=sns.sns.sign(confirmation))
    assert answer.status_code == 200 and answer.json()["subscribed"] is True
    assert sns.sns.confirmed == ["/?Action=ConfirmSubscription&Token=2336412f37"]

    jane = sns.contact("jane@example.com")
    good = json.loads(sns.sns.sign(_ses("bounce.json")))
    tampered = {**good, "Message": good["Message"].replace("Permanent", "Transient")}
    elsewhere = {**good, "SigningCertURL": "https://evil.example.net/cert.pem"}
    plain_http = {**good, "SigningCertURL": good["SigningCertURL"].replace("https", "http")}
    other_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    forged = {**good, "Signature": base64.b64encode(other_key.sign(
        ses.string_to_sign(good), padding.PKCS1v15(), hashes.SHA256())).decode()}
    unsigned = {k: v for k, v in good.items() if k != "Signature"}
    # Genuinely signed by SNS, but another AWS account's topic.
    foreign = json.loads(sns.sns.sign({**_ses("bounce.json"),
                                       "TopicArn": "arn:aws:sns:us-west-2:666:Theirs"}))
    for body in (tampered, elsewhere, plain_http, forged, unsigned, foreign):
        answer = sns.client.post("/hooks/ses", content=json.dumps(body).encode())
        assert answer.status_code == 401, answer.text
    assert sns.client.post("/hooks/ses", content=b"not json").status_code == 401
    assert sns.rows() == [] and sns.state(jane).mailable


def test_ses_without_topics_is_off_even_for_a_genuine_sns_message(tmp_path, database_url,
                                                                 server_factory):
    """No topic named: /hooks/ses answers 404, stores nothing and fetches nothing, even for
    a message SNS genuinely signed (any AWS account's topic can be pointed at us)."""
    endpoint = SnsEndpoint(tmp_path)
    h = _hooks(tmp_path, database_url, server_factory,
               ses={"cert_host": "localhost", "ca_file": str(endpoint.ca_file)})
    try:
        jane = h.contact("jane@example.com")
        answer = h.client.post("/hooks/ses", content=endpoint.sign(_ses("bounce.json")))
        assert answer.status_code == 404, answer.text
        assert h.rows() == [] and h.state(jane).mailable and endpoint.cert_fetches == 0
    finally:
        endpoint.httpd.shutdown()
        h.engine.dispose()


@pytest.mark.parametrize(("url", "trusted"), [
    ("https://sns.us-east-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
    ("https://sns.us-gov-west-1.amazonaws.com/SimpleNotificationService-abc.pem", True),
    ("https://sns.cn-north-1.amazonaws.com.cn/SimpleNotificationService-abc.pem", True),
    ("https://SNS.EU-WEST-1.AMAZONAWS.COM/SimpleNotificationService-abc.pem", True),
    ("https://sns.evil.com.amazonaws.com/x.pem", False),       # the region is one label
    ("https://sns.x.y.amazonaws.com/x.pem", False),
    ("https://sns.s3.amazonaws.com/x.pem", False),             # an S3 bucket named "sns"
    ("https://sns.us-east-1.amazonaws.com.evil.com/x.pem", False),
    ("https://sns.us-east-1.amazonaws.com./x.pem", False),
    ("https://sns.us-east-1.amazonaws.com.cn.evil.com/x.pem", False),
    ("https://evil.com/sns.us-east-1.amazonaws.com/x.pem", False),
    ("http://sns.us-east-1.amazonaws.com/x.pem", False),       # HTTPS only
    ("https://sns.us-east-1.amazonaws.com:8443/x.pem", False),
    ("https://me@sns.us-east-1.amazonaws.com/x.pem", False),
    ("https://sns.us-east-1.amazonaws.com\\@evil.com/x.pem", False),
    ("https://sns.us-east-1.amazonaws.com/x.pem?x=.pem", False),
    ("https://sns.us-east-1.amazonaws.com/x.txt", False),
    ("", False),
])
def test_the_certificate_url_is_aws_s_sns_host_exactly(url, trusted):
    """AWS's own rule (sns.REGION.amazonaws.com[.cn], HTTPS), not a pattern whose * crosses
    dots; checked before anything is fetched."""
    from feedback_mta.config import SesHookConfig

    settings = SesHookConfig(topic_arns=(TOPIC,))
    message = json.loads(_sample("ses/bounce.json"))
    message.update(SigningCertURL=url, Signature=base64.b64encode(b"s" * 256).decode())
    fetched: list[str] = []

    def certificate(fetch: str) -> bytes:
        fetched.append(fetch)
        return b"not a certificate"

    request = HookRequest({}, json.dumps(message).encode(), time.time(), certificate)
    with pytest.raises(Refused) as refused:
        ses.verify(request, settings)
    if trusted:  # the only refusal left is the signature, after the fetch
        assert str(refused.value) == "bad signature" and fetched == [url]
    else:
        assert fetched == [], refused.value


def test_nothing_is_fetched_for_a_message_that_fails_a_cheap_check(sns):
    """Another topic, a message of no SNS shape, a signature that is no signature: refused
    (401) before the certificate is fetched, so an unauthenticated request costs no fetch."""
    good = json.loads(sns.sns.sign(_ses("bounce.json"), cert_path="/first.pem"))
    foreign = json.loads(sns.sns.sign({**_ses("bounce.json"),
                                       "TopicArn": "arn:aws:sns:us-west-2:666:Theirs"}))
    no_id = {k: v for k, v in good.items() if k != "MessageId"}
    message_not_text = {**good, "Message": {"notificationType": "Bounce"}}
    short = {**good, "Signature": base64.b64encode(b"xx").decode()}
    not_base64 = {**good, "Signature": "not base64!"}
    no_type = {**good, "Type": "Whatever"}
    confirmation_elsewhere = json.loads(sns.sns.sign({
        "Type": "SubscriptionConfirmation", "MessageId": "sub-2", "Token": "t", "TopicArn": TOPIC,
        "Message": "m", "SubscribeURL": "https://evil.example.net/?Action=ConfirmSubscription",
        "Timestamp": "2012-04-26T20:45:04.751Z"}))
    for body in (foreign, no_id, message_not_text, short, not_base64, no_type,
                 confirmation_elsewhere):
        answer = sns.client.post("/hooks/ses", content=json.dumps(body).encode())
        assert answer.status_code == 401, answer.text
    assert sns.sns.cert_fetches == 0 and sns.sns.confirmed == [] and sns.rows() == []
    assert sns.client.post("/hooks/ses", content=json.dumps(good).encode()).status_code == 200
    assert sns.sns.cert_fetches == 1


def test_certificate_fetches_are_rate_limited(sns):
    """Signed messages naming ever new certificate URLs: the first few are fetched (a token
    bucket), then 503 with Retry-After and nothing fetched or stored; a known one is
    still verified from the cache."""
    from feedback_mta.http.certificates import Certificates

    answers = []
    for n in range(Certificates.BURST + 2):
        message = {**_ses("bounce.json"), "MessageId": f"bounce-{n}"}
        body = sns.sns.sign(message, cert_path=f"/cert-{n}.pem")
        answers.append(sns.client.post("/hooks/ses", content=body))
    assert [a.status_code for a in answers] == [200] * Certificates.BURST + [503, 503]
    busy = answers[-1]
    assert busy.headers["content-type"] == "application/problem+json"
    assert 1 <= int(busy.headers["retry-after"]) <= Certificates.REFILL
    assert sns.sns.cert_fetches == Certificates.BURST
    assert len(sns.done(Certificates.BURST)) == Certificates.BURST
    cached = sns.sns.sign({**_ses("bounce.json"), "MessageId": "again"}, cert_path="/cert-0.pem")
    assert sns.client.post("/hooks/ses", content=cached).status_code == 200
    assert sns.sns.cert_fetches == Certificates.BURST


# --- nothing acknowledged is lost ---------------------------------------------------------------


@pytest.mark.process
def test_kill_9_during_a_burst_of_webhooks_loses_nothing_that_got_a_2xx(hooks):
    for n in range(40):
        hooks.contact(f"burst{n}@people.test")
    answered: list[str] = []
    lock = threading.Lock()

    def post(n: int) -> None:
        body = _mailgun("unsubscribed.json", recipient=f"burst{n}@people.test",
                        event_id=f"burst-{n}")
        try:
            answer = httpx.post(f"{hooks.url}/hooks/mailgun", content=body, timeout=10)
        except httpx.HTTPError:
            return
        if answer.status_code == 200:
            with lock:
                answered.append(f"burst-{n}")

    threads = [threading.Thread(target=post, args=(n,)) for n in range(40)]
    for thread in threads:
        thread.start()
    wait_until(lambda: len(answered) >= 10, what="ten answered")
    hooks.server.kill()
    for thread in threads:
        thread.join()
    assert answered
    from tests.conftest import Server

    restarted = Server(hooks.path).start()
    try:
        wait_until(lambda: all(r["state"] != "received" for r in hooks.rows()),
                   what="recovered and processed")
        opted = {e["subject_id"] for e in hooks.events("contact.opted_out")}
        with unit_of_work(hooks.engine, CLI) as uow:
            for event_id in answered:
                n = int(event_id.split("-")[1])
                contact = uow.contacts.by_email(hooks.account, f"burst{n}@people.test")
                assert contact is not None and contact.id in opted, event_id
    finally:
        restarted.stop()


def test_a_topic_message_that_is_no_ses_notification_is_not_feedback():
    envelope = json.loads(_sample("ses/bounce.json"))
    for message in ("plain words on the topic", json.dumps({"eventType": "Open"}), "[1, 2]"):
        assert ses.read(json.dumps({**envelope, "Message": message}).encode()) is None
