"""Forgeries: a campaign of forged replies and reports against the real server; none acts.

One table of attempts (who sends what to which of our boxes), a flood of made-up reports
from one source, and then the only thing that counts: no lead and no contact changed, and
the audit holds nothing but refusals. The single-case tests in test_replies and
test_feedback_loops say *why* each is refused; this one shows that together they hold.
"""

from __future__ import annotations

import random
import smtplib
import uuid

import sqlalchemy as sa

from feedback_mta import config as config_mod
from feedback_mta import tokens
from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.addresses import Box
from feedback_mta.store import db
from feedback_mta.store.models import Contact, Event, Lead
from tests.conftest import write_config
from tests.support import seed, wait_all_done

TRUSTED = "mx.fb.test"


def _reply(sender: str, rcpt: str, in_reply_to: str | None, *, dmarc: str = "pass",
           forged_auth: bool = False) -> bytes:
    domain = sender.rpartition("@")[2]
    auth = (f"Authentication-Results: {'evil.test' if forged_auth else TRUSTED}; "
            f"dmarc={dmarc} header.from={domain}\r\n")
    thread = f"In-Reply-To: <{in_reply_to}>\r\n" if in_reply_to else ""
    return (f"{auth}From: <{sender}>\r\nTo: {rcpt}\r\nSubject: Re: New lead\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@{domain}>\r\n{thread}\r\nSPAM\r\n").encode()


def _report(reporter: str, token: str | None, address: str, account_token: str = "") -> bytes:
    """An ARF abuse report (RFC 5965) whose returned headers carry ``token``."""
    lines = [f"X-Feedback-Token: {token}"] if token else []
    if account_token:
        lines.append(f"{tokens.ACCOUNT_HEADER}: {account_token}")
    original = "\n".join(["From: news@dealer.test", f"To: {address}", *lines])
    return (f"From: {reporter}\nTo: fbl@fb.test\nSubject: complaint\n"
            f"Message-ID: <{uuid.uuid4().hex}@{reporter.split('@')[1]}>\nMIME-Version: 1.0\n"
            "Content-Type: multipart/report; report-type=feedback-report; boundary=b\n\n"
            "--b\nContent-Type: text/plain\n\nabuse\n\n"
            "--b\nContent-Type: message/feedback-report\n\n"
            f"Feedback-Type: abuse\nVersion: 1\nOriginal-Rcpt-To: {address}\n\n"
            f"--b\nContent-Type: text/rfc822-headers\n\n{original}\n\n--b--\n").encode()


def test_no_forgery_changes_a_lead_or_a_contact(tmp_path, database_url, server_factory):
    path = write_config(tmp_path / "c.toml", database_url,
                        security={"trusted_authserv_ids": [TRUSTED]})
    cfg = config_mod.load(path, env={})
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    s = seed(engine, cfg, contacts=3)
    book = s.book
    secret = book.secrets[0]
    with unit_of_work(engine, CLI) as uow:
        uow.accounts.add_user(s.account_id, "clerk@dealer.test")
        other = uow.accounts.add("Dealer Two")
        uow.accounts.add_user(other.id, "admin@other.test", ["contact-admin"])
        other_lead = uow.leads.add(book, other.id, "xi@people.test", "Xi", "Yu")
        ours = uow.leads.get(s.lead_id).notification_message_id
        theirs = other_lead.notification_message_id
        other_contact = other_lead.contact_id
    with engine.connect() as conn:
        events_before = conn.execute(sa.select(sa.func.count()).select_from(Event)).scalar()
    server = server_factory(path)

    target = s.contact_ids[1]
    genuine = tokens.make(secret, tokens.Purpose.FEEDBACK, target)
    other_reply = book.address(Box.REPLY, other_lead.id)
    attempts = [
        # (mail from, rcpt, message): replies
        ("boss@dealer.test", "fbl@fb.test", _reply("boss@dealer.test", "fbl@fb.test", None)),
        ("boss@dealer.test", other_reply, _reply("boss@dealer.test", other_reply, theirs)),
        ("admin@other.test", s.reply, _reply("admin@other.test", s.reply, ours)),
        ("boss@dealer.test", s.reply, _reply("boss@dealer.test", s.reply, ours, dmarc="fail")),
        ("boss@dealer.test", s.reply,
         _reply("boss@dealer.test", s.reply, ours, dmarc="pass", forged_auth=True)),
        ("clerk@dealer.test", s.reply, _reply("clerk@dealer.test", s.reply, ours)),
        ("spoof@stranger.test", s.reply, _reply("boss@dealer.test", s.reply, ours)),
        # reports with made-up, altered, misused and foreign tokens
        ("", "fbl@fb.test", _report("fbl@isp.test", f"{target}-aaaaaaaaaaaaaaaa",
                                    "lead1@people.test")),
        ("", "fbl@fb.test", _report("fbl@isp.test", f"{s.contact_ids[2]}-{genuine[-16:]}",
                                    "lead2@people.test")),
        ("", "fbl@fb.test", _report("fbl@isp.test", tokens.make(
            secret, tokens.Purpose.BOUNCE, target), "lead1@people.test")),
        ("", "fbl@fb.test", _report("fbl@isp.test", tokens.make(
            "another-installation-secret", tokens.Purpose.FEEDBACK, target),
            "lead1@people.test")),
        # the contact's address with the account header, from a reporter nobody trusts
        ("", "fbl@fb.test", _report("fbl@isp.test", None, "lead1@people.test",
                                    tokens.make(secret, tokens.Purpose.ACCOUNT, s.account_id))),
    ]
    refused_at_rcpt = 0
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=30)
    client.ehlo()
    for mail_from, rcpt, raw in attempts:
        client.mail(mail_from)
        assert client.rcpt(rcpt)[0] == 250, rcpt
        assert client.data(raw)[0] == 250
    # Altered reply and bounce tokens never get past RCPT.
    for forged in (s.reply[:-len(cfg.smtp.domain) - 2] + "x@" + cfg.smtp.domain,
                   f"bounce+{target}-aaaaaaaaaaaaaaaa@{cfg.smtp.domain}",
                   f"unsubscribe+{other_contact}-bbbbbbbbbbbbbbbb@{cfg.smtp.domain}"):
        client.mail("")
        refused_at_rcpt += client.rcpt(forged)[0] == 550
        client.rset()
    # A flood of made-up reports from one source, in one session.
    rng = random.Random(5)
    flood = 200
    for _ in range(flood):
        mac = "".join(rng.choices("abcdefghijklmnopqrstuvwxyz234567", k=16))
        made_up = f"{rng.choice(s.contact_ids)}-{mac}"
        client.mail("")
        client.rcpt("fbl@fb.test")
        assert client.data(_report("fbl@flood.example", made_up, "lead0@people.test"))[0] == 250
    client.quit()
    assert refused_at_rcpt == 3

    rows = wait_all_done(engine, len(attempts) + flood, timeout=120)
    assert {r["state"] for r in rows} == {"ignored"}, {(r["state"], r["reason"]) for r in rows}
    with engine.connect() as conn:
        leads = conn.execute(sa.select(Lead.id, Lead.status)).all()
        contacts = conn.execute(sa.select(Contact.status, Contact.undeliverable_at)).all()
        new_events = conn.execute(sa.select(Event.action).where(Event.id > events_before)
                                  ).scalars().all()
    assert {status for _, status in leads} == {"active"}
    assert {(c.status, c.undeliverable_at) for c in contacts} == {("active", None)}
    # The audit holds refusals (and what reports said), never a change.
    assert set(new_events) <= {"reply.refused", "contact.feedback_recorded"}, set(new_events)
    assert new_events.count("reply.refused") == 6
    engine.dispose()
