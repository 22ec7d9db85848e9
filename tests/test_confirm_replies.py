"""Confirming by reply, end to end: real server, real SMTP client, real database (each engine).

A pending contact (a social connection) answers the confirmation request by replying to
``confirm+TOKEN``: its own "yes" confirms, with the reply as evidence; its "no thanks"
declines (opted out, reason ``declined``). Nothing else changes it: an auto-reply, a
stranger's "yes", a "yes" only in the quoted request, a DMARC failure, an envelope sender
not the contact's, a reply saying both; each is ``ignored`` with its reason.
"""

from __future__ import annotations

import itertools
import uuid
from dataclasses import dataclass

import pytest
import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.actions.consent import ConsentIn
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.store.models import Contact, Event
from tests.conftest import ENGINES, InProcessServer, _database, write_config
from tests.support import send

TRUSTED = "mx.fb.test"
REQUEST = ("Dealer One would like to keep you up to date on offers.\n\n"
           "Reply YES to keep getting our mail, or NO to be removed.\n"
           "Or open https://fb.test/c/TOKEN")
QUOTED = "\r\n".join(f"> {line}" if line else ">" for line in REQUEST.split("\n"))
_numbers = itertools.count(1)


@dataclass
class Service:
    server: InProcessServer
    engine: object
    book: AddressBook
    account_id: int


@pytest.fixture(scope="module", params=ENGINES)
def service(request, tmp_path_factory):
    """One server of each engine for the module: each test answers for its own contact."""
    from feedback_mta import config as config_mod
    from feedback_mta.store import db

    folder = tmp_path_factory.mktemp("confirm")
    with _database(request, request.param, folder, migrated=True) as url:
        path = write_config(folder / "confirm.toml", url,
                            security={"trusted_authserv_ids": [TRUSTED]})
        cfg = config_mod.load(path, env={})
        engine = db.create_engine(cfg.database)
        with unit_of_work(engine, CLI) as uow:
            account_id = uow.accounts.add("Dealer One").id
        server = InProcessServer(path).start()
        try:
            yield Service(server, engine, AddressBook.from_config(cfg), account_id)
        finally:
            server.stop()
            engine.dispose()


@dataclass
class Pending:
    """A contact awaiting its confirmation, and the address its answer goes to."""

    id: int
    email: str
    address: str


@pytest.fixture
def pending(service) -> Pending:
    email = f"ann{next(_numbers)}@people.test"
    with unit_of_work(service.engine, CLI) as uow:
        contact, _ = uow.contacts.add(service.account_id, email, "Ann", "Lee")
        uow.consent.record(contact, ConsentIn("social", "linkedin export"), new=True,
                           confirm_methods=("social",), confirm_within=7 * 86400)
        assert contact.id is not None
        return Pending(contact.id, email, service.book.address(Box.CONFIRM, contact.id))


def answer(to: str, body: str, *, sender: str, dmarc: str | None = "pass",
           subject: str = "Re: Please confirm: mail from Dealer One", extra: str = "") -> bytes:
    """A top-posted reply (Gmail's shape) with the request quoted below it."""
    domain = sender.rpartition("@")[2]
    auth = (f"Authentication-Results: {TRUSTED}; spf=pass smtp.mailfrom={domain};\r\n"
            f" dkim=pass header.d={domain}; dmarc={dmarc} (p=reject) header.from={domain}\r\n"
            if dmarc else "")
    text = (f"{body}\r\n\r\nOn Mon, Jan 5, 2026 at 9:58 AM Dealer One <{to}> wrote:\r\n\r\n"
            f"{QUOTED}\r\n")
    return (f"{auth}From: Ann Lee <{sender}>\r\nTo: Dealer One <{to}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{uuid.uuid4().hex}@mail.{domain}>\r\n{extra}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}").encode()


def deliver(service: Service, to: str, raw: bytes, mail_from: str) -> dict:
    code, text = send(service.server.port, mail_from, [to], raw)
    assert code == 250, (code, text)
    stored = int(text.rsplit(b" ", 1)[1])
    return service.server.wait_for("message.processed", id=stored)


def contact_row(service: Service, contact_id: int) -> dict:
    t = Contact.__table__
    with service.engine.connect() as conn:
        return dict(conn.execute(sa.select(t).where(t.c.id == contact_id)).one()._mapping)


def contact_events(service: Service, contact_id: int, action: str) -> list[dict]:
    t = Event.__table__
    with service.engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(t).where(
            t.c.subject_type == "contact", t.c.subject_id == contact_id,
            t.c.action == action).order_by(t.c.id))]


def _message_id(raw: bytes) -> str:
    line = next(x for x in raw.split(b"\r\n") if x.startswith(b"Message-ID: "))
    return line.decode().partition(" ")[2].strip("<>")


def test_the_contacts_own_yes_confirms_with_the_reply_as_evidence(service, pending):
    raw = answer(pending.address, "Yes please!", sender=pending.email)
    done = deliver(service, pending.address, raw, pending.email)
    assert (done["kind"], done["state"], done["reason"]) == ("reply", "processed", "confirmed")
    contact = contact_row(service, pending.id)
    assert (contact["status"], contact["confirmed_via"]) == ("active", "reply")
    assert contact["confirmed_at"] is not None and contact["confirm_by"] is None
    evidence = {"message_id": _message_id(raw), "inbound_message_id": done["id"]}
    assert contact["confirmation_evidence"] == evidence
    confirmed = contact_events(service, pending.id, "contact.confirmed")
    assert len(confirmed) == 1 and confirmed[0]["inbound_message_id"] == done["id"]
    assert confirmed[0]["data"]["message_id"] == evidence["message_id"]

    # A second "yes" (another message) changes nothing more.
    again = deliver(service, pending.address, answer(pending.address, "YES", sender=pending.email),
                    pending.email)
    assert (again["state"], again["reason"]) == ("ignored", "confirm: already confirmed")
    assert len(contact_events(service, pending.id, "contact.confirmed")) == 1


def test_no_thanks_declines(service, pending):
    raw = answer(pending.address, "no thanks", sender=pending.email)
    done = deliver(service, pending.address, raw, pending.email)
    assert (done["kind"], done["state"], done["reason"]) == ("reply", "processed", "declined")
    contact = contact_row(service, pending.id)
    assert (contact["status"], contact["opt_out_reason"]) == ("opted_out", "declined")
    assert contact["confirmed_at"] is None
    opted_out = contact_events(service, pending.id, "contact.opted_out")
    assert [(e["reason"], e["inbound_message_id"]) for e in opted_out] == [
        ("declined", done["id"])]
    assert opted_out[0]["data"]["message_id"] == _message_id(raw)


STRANGER = "someone@stranger.test"


@pytest.mark.parametrize(("body", "sender", "envelope", "dmarc", "extra", "kind", "reason"), [
    ("Yes", None, None, "pass", "Auto-Submitted: auto-replied\r\n", "auto_reply",
     "confirm: auto-reply"),
    ("I am out of the office until Monday. Yes, I will answer then.", None, None, "pass",
     "X-Autoreply: yes\r\n", "auto_reply", "confirm: auto-reply"),
    ("Yes", STRANGER, STRANGER, "pass", "", "reply", "confirm: not from the contact's address"),
    ("", None, None, "pass", "", "reply", "confirm: no yes or no in the reply"),
    ("Yes", None, None, "fail", "", "reply", "confirm: dmarc fail"),
    ("Yes", None, None, None, "", "reply",
     "confirm: no dmarc result from a trusted server"),
    ("Yes", None, STRANGER, "pass", "", "reply",
     "confirm: envelope sender is not the contact's address"),
    ("Yes. Actually no, remove me.", None, None, "pass", "", "reply",
     "confirm: both yes and no in the reply"),
], ids=["auto-submitted", "x-autoreply", "stranger", "quoted-yes-only", "dmarc-fail",
        "no-auth-results", "envelope-mismatch", "yes-and-no"])
def test_nothing_else_changes_a_pending_contact(service, pending, body, sender, envelope, dmarc,
                                                extra, kind, reason):
    sender = sender or pending.email
    raw = answer(pending.address, body, sender=sender, dmarc=dmarc, extra=extra)
    done = deliver(service, pending.address, raw, envelope or sender)
    assert (done["kind"], done["state"], done["reason"]) == (kind, "ignored", reason)
    contact = contact_row(service, pending.id)
    assert (contact["status"], contact["confirmed_at"]) == ("pending", None)
    assert contact_events(service, pending.id, "contact.confirmed") == []
    assert contact_events(service, pending.id, "contact.opted_out") == []


def test_a_yes_does_not_lift_a_complaint(service, pending):
    with unit_of_work(service.engine, CLI) as uow:
        uow.contacts.opt_out(uow.contacts.get(pending.id), "complaint")
    raw = answer(pending.address, "Yes", sender=pending.email)
    done = deliver(service, pending.address, raw, pending.email)
    assert (done["state"], done["reason"]) == (
        "ignored", "confirm: contact not pending (complaint)")
    contact = contact_row(service, pending.id)
    assert (contact["status"], contact["opt_out_reason"]) == ("opted_out", "complaint")
