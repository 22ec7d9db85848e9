"""Each handler on its own: a parsed, classified message in, an outcome and database changes
out, on a real SQLite database, without a server. (The end-to-end tests send the same kinds
through SMTP; these pin each handler's decisions one by one.)

The report fixtures carry tokens of contact 7 under the test secret, so the seed makes seven
contacts.
"""

from __future__ import annotations

import email
from pathlib import Path

import pytest
from sqlmodel import Session, select

from feedback_mta import config as config_mod
from feedback_mta.actions import CLI, Actor, AuditedSession, UnitOfWork, unit_of_work
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.config import FeedbackConfig, OutboundConfig, SmtpConfig
from feedback_mta.handlers.base import UNATTRIBUTED, HandlerContext, Outcome, Settings
from feedback_mta.handlers.registry import HANDLERS
from feedback_mta.kinds import Kind
from feedback_mta.reading.classify import classify
from feedback_mta.reading.parse import parse
from feedback_mta.store import db
from feedback_mta.store.models import (
    Contact,
    Event,
    Lead,
    MessageState,
    OutboundMessage,
)
from tests.conftest import DOMAIN, FIXTURES, SECRET, write_config

REPORTS = FIXTURES / "reports"
P, IG = MessageState.PROCESSED, MessageState.IGNORED


class World:
    """A fresh SQLite database: an account with a contact admin and a plain user, seven
    contacts (the fixtures' tokens name contact 7), a lead of contact 7."""

    def __init__(self, tmp_path: Path) -> None:
        path = write_config(tmp_path / "c.toml", f"sqlite:///{tmp_path / 'h.sqlite3'}")
        cfg = config_mod.load(path, env={})
        self.engine = db.create_engine(cfg.database)
        db.upgrade(self.engine)
        self.book = AddressBook(DOMAIN, (SECRET,))
        with unit_of_work(self.engine, CLI) as uow:
            account = uow.accounts.add("Dealer One")
            uow.accounts.add_user(account.id, "boss@dealer.test", ["contact-admin"])
            uow.accounts.add_user(account.id, "clerk@dealer.test")
            for i in range(1, 8):
                uow.contacts.add(account.id, f"c{i}@people.test", "Pat", "Lee")
            lead = uow.leads.add(self.book, account.id, "c7@people.test", "Pat", "Lee")
        self.account_id, self.lead_id, self.contact_id = account.id, lead.id, 7

    def handle(self, raw: bytes, rcpts: list[str], *, mail_from: str = "",
               settings: Settings = Settings()) -> Outcome:
        parsed = parse(raw, mail_from, tuple(rcpts))
        classification = classify(parsed, self.book.resolve_all(rcpts))
        with AuditedSession(self.engine, expire_on_commit=False) as session:
            uow = UnitOfWork(session, Actor("email:test", "email"))
            ctx = HandlerContext(1, parsed, classification, uow, self.book, settings)
            outcome = HANDLERS[classification.kind](ctx)
            session.commit()
        self.kind = classification.kind
        return outcome

    def contact(self, contact_id: int | None = None) -> Contact:
        with Session(self.engine) as session:
            contact = session.get(Contact, contact_id or self.contact_id)
            assert contact is not None
            return contact

    def lead(self) -> Lead:
        with Session(self.engine) as session:
            lead = session.get(Lead, self.lead_id)
            assert lead is not None
            return lead

    def events(self) -> list[str]:
        with Session(self.engine) as session:
            return [e.action for e in session.exec(
                select(Event).where(Event.actor == "email:test").order_by(Event.id))]

    def outbox(self) -> list[OutboundMessage]:
        with Session(self.engine) as session:
            return list(session.exec(select(OutboundMessage).order_by(OutboundMessage.id)))


@pytest.fixture
def world(tmp_path) -> World:
    w = World(tmp_path)
    yield w
    w.engine.dispose()


def fixture(name: str) -> bytes:
    return (REPORTS / name).read_bytes()


def reply(body: str, sender: str = "boss@dealer.test", subject: str = "Re: New lead") -> bytes:
    return (f"From: {sender}\r\nTo: x@{DOMAIN}\r\nSubject: {subject}\r\n"
            f"Message-ID: <r-{abs(hash(body + sender))}@dealer.test>\r\n\r\n{body}\r\n").encode()


# --- complaint -----------------------------------------------------------------------------------

def test_complaint_opts_out_once_and_counts_each_report(world):
    raw = fixture("ours-yahoo-arf-crlf.eml")
    assert world.handle(raw, [f"fbl@{DOMAIN}"]) == Outcome(P, "opted out (complaint)")
    assert world.kind is Kind.COMPLAINT
    contact = world.contact()
    assert (contact.status, contact.opt_out_reason) == ("opted_out", "complaint")
    assert world.handle(raw, [f"fbl@{DOMAIN}"]) == Outcome(
        P, "complaint recorded (already opted out)")
    assert world.events() == ["contact.complained", "contact.opted_out", "contact.complained"]


def test_not_spam_feedback_is_recorded_and_changes_nothing(world):
    assert world.handle(fixture("ours-arf-not-spam.eml"), [f"fbl@{DOMAIN}"]) == Outcome(
        P, "recorded (not-spam)")
    assert world.contact().status == "active"
    assert world.events() == ["contact.feedback_recorded"]


def test_a_complaint_without_a_genuine_token_is_unattributed(world):
    raw = (fixture("ours-yahoo-arf-crlf.eml").replace(b"7-3texc33zrcd6gvpp", b"7-aaaaaaaaaaaaaaaa")
           .replace(b"7-qsznkvryx2ejhtk5", b"7-bbbbbbbbbbbbbbbb")
           .replace(b"7-zx6n3itjcg7l4vgb", b"7-cccccccccccccccc"))
    assert world.handle(raw, [f"fbl@{DOMAIN}"]) == UNATTRIBUTED
    assert world.contact().status == "active" and world.events() == []


# --- bounce --------------------------------------------------------------------------------------

def test_a_hard_bounce_makes_the_contact_unmailable(world):
    bounce = world.book.address(Box.BOUNCE, 7)
    outcome = world.handle(fixture("ours-gmail-dsn-nosuchuser.eml"), [bounce])
    assert outcome == Outcome(P, "hard bounce") and world.kind is Kind.BOUNCE
    contact = world.contact()
    assert contact.mailable is False and contact.undeliverable_reason.startswith("hard bounce")
    assert world.events() == ["contact.hard_bounced", "contact.undeliverable"]


def test_the_third_soft_bounce_counts_as_hard(world):
    bounce = world.book.address(Box.BOUNCE, 7)
    raw = fixture("ours-dsn-mailbox-full.eml")
    reasons = [world.handle(raw, [bounce]).reason for _ in range(3)]
    assert reasons == ["soft bounce 1 of 3", "soft bounce 2 of 3",
                       "soft bounce 3 of 3: undeliverable"]
    assert world.contact().mailable is False
    five = Settings(feedback=FeedbackConfig(soft_bounce_limit=5))
    assert world.handle(raw, [bounce], settings=five).reason == "soft bounce 4 of 5"


# --- unsubscribe ---------------------------------------------------------------------------------

def test_mail_to_the_unsubscribe_box_opts_out_whatever_it_says(world):
    box = world.book.address(Box.UNSUBSCRIBE, 3)
    raw = reply("please SUBSCRIBE me again", sender="c3@people.test", subject="subscribe")
    assert world.handle(raw, [box]) == Outcome(P, "opted out")
    assert (world.contact(3).status, world.contact(3).opt_out_reason) == (
        "opted_out", "unsubscribe")
    assert world.handle(raw, [box]) == Outcome(IG, "already opted out")
    with unit_of_work(world.engine, CLI) as uow:
        uow.contacts.delete(uow.contacts.get(3))
    assert world.handle(raw, [box]) == Outcome(IG, "unknown contact")


# --- replies and their commands ------------------------------------------------------------------

def test_a_contact_admin_flags_and_restores_only_that_lead(world):
    to = [world.book.address(Box.REPLY, world.lead_id)]
    assert world.handle(reply("SPAM"), to, mail_from="boss@dealer.test") == Outcome(P, "flagged")
    assert world.lead().status == "spam" and world.contact().status == "active"
    assert world.handle(reply("spam!"), to, mail_from="boss@dealer.test") == Outcome(
        IG, "already spam")
    assert world.handle(reply("NOT SPAM"), to, mail_from="boss@dealer.test") == Outcome(
        P, "restored")
    assert world.handle(reply("undo"), to, mail_from="boss@dealer.test") == Outcome(IG, "not spam")
    assert world.events() == ["lead.flagged_spam", "lead.restored"]


@pytest.mark.parametrize(("sender", "body", "outcome"), [
    ("clerk@dealer.test", "SPAM", Outcome(IG, "refused: not a contact admin")),
    ("stranger@else.test", "SPAM", Outcome(IG, "refused: not a user of the account")),
    ("boss@dealer.test", "Is this spam? It looks odd.", Outcome(IG, "no command")),
])
def test_replies_that_may_not_or_do_not_command(world, sender, body, outcome):
    to = [world.book.address(Box.REPLY, world.lead_id)]
    assert world.handle(reply(body, sender), to, mail_from=sender) == outcome
    assert world.lead().status == "active"


def test_acknowledgements_are_queued_in_the_same_transaction(world):
    to = [world.book.address(Box.REPLY, world.lead_id)]
    on = Settings(outbound=OutboundConfig(relay="127.0.0.1:25"))
    world.handle(reply("SPAM"), to, mail_from="boss@dealer.test", settings=on)
    world.handle(reply("SPAM", "clerk@dealer.test"), to, mail_from="clerk@dealer.test",
                 settings=on)
    world.handle(reply("SPAM", "stranger@else.test"), to, mail_from="stranger@else.test",
                 settings=on)
    mails = world.outbox()
    assert [(m.purpose, m.rcpt_to) for m in mails] == [
        ("ack.flagged", "boss@dealer.test"), ("ack.refused", "clerk@dealer.test")]
    body = email.message_from_bytes(mails[0].raw).get_payload()
    assert f"Lead #{world.lead_id} marked as spam. Reply NOT SPAM to undo." in body


def test_keep_lines_in_a_digest_reply_verify_only_the_accounts_contacts(world):
    with unit_of_work(world.engine, CLI) as uow:
        other = uow.accounts.add("Dealer Two")
        stranger, _ = uow.contacts.add(other.id, "x@people.test", "Xi", "Yu")
    review = [world.book.address(Box.REVIEW, world.account_id)]
    raw = reply(f"KEEP 2\nkeep #3, #{stranger.id}")
    assert world.handle(raw, review, mail_from="boss@dealer.test") == Outcome(P, "kept 2")
    assert world.contact(2).verified_at is not None
    assert world.contact(stranger.id).verified_at is None
    assert world.handle(reply("thanks!"), review, mail_from="boss@dealer.test") == Outcome(
        IG, "no command")


# --- auto-replies and admin mail ------------------------------------------------------------

def test_auto_replies_and_delivery_reports_are_kept_and_never_acted_on(world):
    bounce = [world.book.address(Box.BOUNCE, 7)]
    assert world.handle(fixture("ours-dsn-delivered.eml"), bounce) == Outcome(
        IG, "delivery report")
    assert world.handle(fixture("ours-out-of-office-to-bounce.eml"), bounce) == Outcome(
        IG, "auto-reply")
    assert world.events() == [] and world.contact().mailable is True


def test_admin_mail_is_forwarded_when_an_operator_is_configured(world):
    raw = fixture("ours-spamcop-trap.eml")
    kept = world.handle(raw, [f"abuse@{DOMAIN}"],
                        settings=Settings(smtp=SmtpConfig(postmaster="ops@operator.test")))
    assert world.kind is Kind.ADMIN and kept.state is IG and "kept" in kept.reason
    forwarded = world.handle(raw, [f"postmaster@{DOMAIN}"],
                             settings=Settings(smtp=SmtpConfig(postmaster="ops@operator.test"),
                                               outbound=OutboundConfig(relay="127.0.0.1:25")))
    assert forwarded == Outcome(P, "forwarded to ops@operator.test")
    (mail,) = world.outbox()
    assert mail.purpose == "forward.postmaster" and mail.rcpt_to == "ops@operator.test"
    assert mail.raw.startswith(b"Resent-From: postmaster@fb.test\r\nResent-To: ops@")
    assert mail.raw.endswith(raw)
    assert world.events() == [] and world.contact().status == "active"  # never acted on


def test_every_kind_has_a_handler_or_is_deliberately_left_without():
    assert set(HANDLERS) == set(Kind) - {Kind.UNKNOWN}


def test_a_unit_of_work_records_only_in_an_audited_session(sqlite_url):
    """Only an AuditedSession writes the events at its commit: a unit of work over a plain
    session would make its changes and drop their events, so it is refused."""
    from feedback_mta.config import DatabaseConfig
    from feedback_mta.store import db

    engine = db.create_engine(DatabaseConfig(url=sqlite_url))
    with Session(engine) as plain, pytest.raises(TypeError, match="AuditedSession"):
        UnitOfWork(plain, CLI)
    engine.dispose()
