"""Dealer replies end to end: real server, real SMTP client, real database, a real relay.

A contact admin's SPAM flags the lead and NOT SPAM restores it, each acknowledged through the
relay; nothing else changes a lead: chatty replies, users without the role, strangers,
admins of other accounts, DMARC failures, envelope mismatches, auto-replies, forged tokens.
"""

from __future__ import annotations

import email
import smtplib
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.store.models import Contact, Event, Lead
from tests.conftest import DOMAIN, write_config
from tests.support import Seed, inbound_rows, seed, send

TRUSTED = "mx.fb.test"
NOTIFICATION = ("New lead for Dealer One\n\nName: Ann Lee\nEmail: lead0@people.test\n"
                "Comments: please call\n\nReply SPAM to flag this lead. Reply NOT SPAM to undo.")
QUOTED = "\n".join(f"> {line}" if line else ">" for line in NOTIFICATION.split("\n"))


@dataclass
class Setup:
    server: object
    engine: object
    relay: object
    seed: Seed
    notification_id: str
    #: Another lead (activity) of the same contact: a flag must not touch it.
    sibling_id: int


@pytest.fixture
def setup(tmp_path, database_url, server_factory, relay) -> Setup:
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    path = write_config(tmp_path / "replies.toml", database_url,
                        security={"trusted_authserv_ids": [TRUSTED]},
                        outbound={"relay": f"127.0.0.1:{relay.port}", "retry_interval": "1s"})
    cfg = config_mod.load(path, env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg)
    with unit_of_work(engine, CLI) as uow:
        uow.accounts.add_user(s.account_id, "clerk@dealer.test")  # a user without the role
        other = uow.accounts.add("Dealer Two")
        uow.accounts.add_user(other.id, "admin@other.test", ["contact-admin"])
        notification_id = uow.leads.get(s.lead_id).notification_message_id
        sibling = uow.leads.add(s.book, s.account_id, "lead0@people.test", "Ann", "Lee")
    server = server_factory(path)
    yield Setup(server, engine, relay, s, notification_id, sibling.id)
    engine.dispose()


def reply(st: Setup, body: str, *, sender: str = "boss@dealer.test", dmarc: str | None = "pass",
          subject: str = "Re: New lead: Ann Lee", extra: str = "") -> bytes:
    domain = sender.rpartition("@")[2]
    auth = (f"Authentication-Results: {TRUSTED}; spf=pass smtp.mailfrom={domain};\r\n"
            f" dkim=pass header.d={domain}; dmarc={dmarc} (p=reject) header.from={domain}\r\n"
            if dmarc else "")
    text = f"{body}\r\n\r\nOn Mon, Jan 5, 2026 at 9:58 AM Leads <leads@platform.test> wrote:\r\n"
    text += QUOTED.replace("\n", "\r\n")
    return (f"{auth}From: Bob <{sender}>\r\nTo: {st.seed.reply}\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@mail.{domain}>\r\n"
            f"In-Reply-To: <{st.notification_id}>\r\nReferences: <{st.notification_id}>\r\n"
            f"{extra}Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n").encode()


def deliver(st: Setup, raw: bytes, *, mail_from: str = "boss@dealer.test",
            rcpt: str | None = None) -> dict:
    code, text = send(st.server.port, mail_from, [rcpt or st.seed.reply], raw)
    assert code == 250, (code, text)
    stored = int(text.rsplit(b" ", 1)[1])
    return st.server.wait_for("message.processed", id=stored)


def lead_row(st: Setup, lead_id: int | None = None) -> dict:
    t = Lead.__table__
    with st.engine.connect() as conn:
        return dict(conn.execute(
            sa.select(t).where(t.c.id == (lead_id or st.seed.lead_id))).one()._mapping)


def events(st: Setup, action: str) -> list[dict]:
    t = Event.__table__
    with st.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(t).where(t.c.action == action).order_by(t.c.id))]


def test_spam_flags_the_lead_and_not_spam_restores_it(setup):
    st = setup
    raw = reply(st, "SPAM")
    done = deliver(st, raw)
    assert (done["kind"], done["state"], done["reason"]) == ("reply", "processed", "flagged")
    lead = lead_row(st)
    assert lead["status"] == "spam"
    assert (lead["flagged_by"], lead["flagged_via"]) == ("email:boss@dealer.test", "email")
    assert lead["flagged_at"] is not None
    flagged = events(st, "lead.flagged_spam")
    assert [(e["subject_id"], e["actor"]) for e in flagged] == [
        (st.seed.lead_id, "email:boss@dealer.test")]
    assert flagged[0]["inbound_message_id"] == done["id"]
    st.server.wait_for("lead.flagged_spam", lead_id=st.seed.lead_id)

    # The acknowledgement: null sender, threaded, auto-replied, from the lead's reply address.
    mail_from, rcpts, content = st.relay.wait(1)[0]
    ack = email.message_from_bytes(content)
    assert (mail_from, rcpts) == ("<>", ["boss@dealer.test"])
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == email.message_from_bytes(raw)["Message-ID"]
    assert st.seed.reply in ack["From"]
    assert f"Lead #{st.seed.lead_id} marked as spam. Reply NOT SPAM to undo." in ack.get_payload()
    st.server.wait_for("mail.sent", purpose="ack.flagged")

    # Only this activity is spam: the contact and its other lead are untouched.
    sibling = lead_row(st, st.sibling_id)
    assert (sibling["contact_id"], sibling["status"]) == (lead["contact_id"], "active")
    with st.engine.connect() as conn:
        status = conn.execute(sa.select(Contact.__table__.c.status).where(
            Contact.__table__.c.id == lead["contact_id"])).scalar()
    assert status == "active"

    done = deliver(st, reply(st, "NOT SPAM"))
    assert (done["state"], done["reason"]) == ("processed", "restored")
    lead = lead_row(st)
    assert (lead["status"], lead["flagged_at"], lead["flagged_via"]) == ("active", None, None)
    assert len(events(st, "lead.restored")) == 1
    ack = email.message_from_bytes(st.relay.wait(2)[1][2])
    assert f"Lead #{st.seed.lead_id} restored" in ack.get_payload()


def test_the_same_reply_twice_changes_nothing_twice(setup):
    st = setup
    raw = reply(st, "Spam!")
    first = deliver(st, raw)
    second = deliver(st, raw)
    assert first["reason"] == "flagged"
    assert (second["state"], second["reason"]) == ("ignored", "duplicate")
    # A second, different SPAM reply: already spam, no new event, told so.
    third = deliver(st, reply(st, "junk"))
    assert (third["state"], third["reason"]) == ("ignored", "already spam")
    assert len(events(st, "lead.flagged_spam")) == 1
    acks = [email.message_from_bytes(m[2]).get_payload() for m in st.relay.wait(2)]
    assert "marked as spam" in acks[0] and "already marked" in acks[1]


def test_chatty_reply_quoting_reply_spam_changes_nothing(setup):
    st = setup
    body = ("Hi, we called her this morning, she wants a test drive on Saturday. "
            "Our spam filter ate her first mail, so thanks for forwarding it!")
    done = deliver(st, reply(st, body))
    assert (done["state"], done["reason"]) == ("ignored", "no command")
    assert lead_row(st)["status"] == "active"
    assert events(st, "lead.flagged_spam") == []


@pytest.mark.parametrize(("sender", "envelope", "dmarc", "reason", "answered"), [
    ("clerk@dealer.test", "clerk@dealer.test", "pass", "not a contact admin", True),
    ("someone@stranger.test", "someone@stranger.test", "pass", "not a user of the account",
     False),
    ("admin@other.test", "admin@other.test", "pass", "not a user of the account", False),
    ("boss@dealer.test", "boss@dealer.test", "fail", "DMARC fail", False),
    ("boss@dealer.test", "boss@dealer.test", None, "no DMARC result from a trusted server",
     False),
    ("boss@dealer.test", "spoofer@stranger.test", "pass",
     "envelope sender is not a contact admin", False),
], ids=["no-role", "stranger", "other-account-admin", "dmarc-fail", "no-auth-results",
        "envelope-mismatch"])
def test_senders_who_may_not_flag_change_nothing(setup, sender, envelope, dmarc, reason,
                                                 answered):
    st = setup
    done = deliver(st, reply(st, "SPAM", sender=sender, dmarc=dmarc), mail_from=envelope)
    assert (done["state"], done["reason"]) == ("ignored", f"refused: {reason}")
    assert lead_row(st)["status"] == "active"
    refused = events(st, "reply.refused")
    assert [(e["reason"], e["subject_id"]) for e in refused] == [(reason, st.seed.lead_id)]
    assert refused[0]["data"]["sender"] == sender
    st.server.wait_for("reply.refused", reason=reason)
    if answered:
        _, rcpts, content = st.relay.wait(1)[0]
        assert rcpts == [sender]
        assert "Contact Admin role" in email.message_from_bytes(content).get_payload()
    else:
        assert st.server.count("mail.queued") == 0


def test_forged_authentication_results_from_elsewhere_do_not_count(setup):
    st = setup
    forged = "Authentication-Results: evil.test; dmarc=pass header.from=dealer.test\r\n"
    raw = reply(st, "SPAM", dmarc="fail")
    raw = forged.encode() + raw
    done = deliver(st, raw)
    assert done["reason"] == "refused: DMARC fail"


@pytest.mark.parametrize("extra, mail_from", [
    ("Auto-Submitted: auto-replied\r\n", "boss@dealer.test"),
    ("X-Autoreply: yes\r\n", "boss@dealer.test"),
    ("Precedence: auto_reply\r\n", "boss@dealer.test"),
    ("", ""),  # null sender
], ids=["auto-submitted", "x-autoreply", "precedence", "null-sender"])
def test_auto_replies_never_act_and_are_never_answered(setup, extra, mail_from):
    st = setup
    done = deliver(st, reply(st, "SPAM", extra=extra), mail_from=mail_from)
    assert (done["kind"], done["state"]) == ("auto_reply", "ignored")
    assert lead_row(st)["status"] == "active"
    assert st.server.count("mail.queued") == 0


def test_out_of_office_subject_is_an_auto_reply(setup):
    st = setup
    done = deliver(st, reply(st, "SPAM", subject="Out of Office: Re: New lead"))
    assert done["kind"] == "auto_reply"
    assert lead_row(st)["status"] == "active"


def test_reply_to_another_of_our_addresses_finds_the_lead_by_in_reply_to(setup):
    st = setup
    # The client answered the Return-Path (bounce+TOKEN of the contact) instead of Reply-To.
    done = deliver(st, reply(st, "spam"), rcpt=st.seed.bounce(st.seed.contact_ids[0]))
    assert (done["kind"], done["reason"]) == ("reply", "flagged")
    assert lead_row(st)["status"] == "spam"


def test_altered_token_is_refused_at_rcpt(setup):
    st = setup
    local, _, domain = st.seed.reply.partition("@")
    altered = local[:-1] + ("a" if local[-1] != "a" else "b") + "@" + domain
    client = smtplib.SMTP("127.0.0.1", st.server.port)
    client.ehlo()
    client.mail("boss@dealer.test")
    assert client.rcpt(altered)[0] == 550
    assert client.rcpt(st.seed.reply)[0] == 250
    client.quit()
    assert all(r["state"] != "received" for r in inbound_rows(st.engine))
    assert DOMAIN in st.seed.reply
