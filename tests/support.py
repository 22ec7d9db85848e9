"""Helpers shared by the tests: seeding data through the actions layer, building messages."""

from __future__ import annotations

import contextlib
import os
import random
import smtplib
import socket
import threading
import time
import uuid
from dataclasses import dataclass

import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.addresses import AddressBook, Box
from feedback_mta.store.models import InboundMessage


def soak(full: int, floor: int = 1) -> int:
    """How many rounds a ``slow`` soak runs: ``full`` scaled by $FEEDBACK_MTA_SOAK_SCALE
    (1 by default; .ci/run sets 0.2, so every soak runs on every change, CI-sized)."""
    scale = float(os.environ.get("FEEDBACK_MTA_SOAK_SCALE") or 1)
    return max(floor, round(full * scale))


@dataclass(frozen=True)
class Seed:
    account_id: int
    contact_ids: tuple[int, ...]
    lead_id: int
    book: AddressBook

    def unsubscribe(self, contact_id: int) -> str:
        return self.book.address(Box.UNSUBSCRIBE, contact_id)

    def bounce(self, contact_id: int) -> str:
        return self.book.address(Box.BOUNCE, contact_id)

    @property
    def reply(self) -> str:
        return self.book.address(Box.REPLY, self.lead_id)


def seed(engine, cfg, contacts: int = 3) -> Seed:
    book = AddressBook.from_config(cfg)
    with unit_of_work(engine, CLI) as uow:
        account = uow.accounts.add("Dealer One")
        uow.accounts.add_user(account.id, "boss@dealer.test", ["contact-admin"])
        lead = uow.leads.add(book, account.id, "lead0@people.test", "Ann", "Lee", "192.0.2.1")
        ids = [lead.contact_id]
        for i in range(1, contacts):
            contact, _ = uow.contacts.add(account.id, f"lead{i}@people.test", "Bo", f"Li{i}")
            ids.append(contact.id)
    return Seed(account.id, tuple(ids), lead.id, book)


def message(subject: str = "hello", body: str = "hi there", sender: str = "someone@else.test",
            message_id: str | None = None, extra: str = "") -> bytes:
    message_id = message_id or f"{uuid.uuid4().hex}@client.test"
    return (f"From: {sender}\r\nTo: x@fb.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <{message_id}>\r\n{extra}\r\n{body}\r\n").encode()


def send(port: int, mail_from: str, rcpts: list[str], raw: bytes, *, lmtp: bool = False):
    """One transaction; returns the final reply (code, text) or, for LMTP, the list of them."""
    client = smtplib.LMTP("127.0.0.1", port) if lmtp else smtplib.SMTP("127.0.0.1", port,
                                                                          timeout=30)
    try:
        client.ehlo_or_helo_if_needed()
        code, text = client.mail(mail_from)
        assert code == 250, (code, text)
        accepted = []
        for rcpt in rcpts:
            code, text = client.rcpt(rcpt)
            if code == 250:
                accepted.append(rcpt)
        if not accepted:
            return (code, text)
        if lmtp:
            return lmtp_data(client, raw, len(accepted))
        return client.data(raw)
    finally:
        with contextlib.suppress(smtplib.SMTPException):
            client.quit()


def lmtp_data(client: smtplib.LMTP, raw: bytes, n: int) -> list[tuple[int, bytes]]:
    """smtplib's LMTP reads only one reply after DATA; RFC 2033 sends one per recipient."""
    code, text = client.docmd("DATA")
    assert code == 354, (code, text)
    ending = b"" if raw.endswith(b"\r\n") else b"\r\n"
    client.send(smtplib._quote_periods(raw) + ending + b".\r\n")
    return [client.getreply() for _ in range(n)]


def open_data(sock) -> object:
    """Greeting, EHLO, MAIL, RCPT fbl@, DATA on a raw socket; returns its reader at 354."""
    f = sock.makefile("rb")
    f.readline()
    for cmd in (b"EHLO x\r\n", b"MAIL FROM:<a@b.test>\r\n", b"RCPT TO:<fbl@fb.test>\r\n",
                b"DATA\r\n"):
        sock.sendall(cmd)
        line = f.readline()
        while line[3:4] == b"-":  # multi-line EHLO reply
            line = f.readline()
        assert line[:1] in (b"2", b"3"), line
    assert line.startswith(b"354"), line
    return f


def inbound_rows(engine) -> list[dict]:
    t = InboundMessage.__table__
    with engine.connect() as conn:
        return [dict(r._mapping) for r in conn.execute(
            sa.select(t.c.id, t.c.state, t.c.reason, t.c.kind, t.c.message_id, t.c.mail_from,
                      t.c.rcpt_tos, t.c.duplicate_of, t.c.error, t.c.attempts).order_by(t.c.id))]


def free_port() -> int:
    """A loopback port nothing listens on (bound, then released)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout: float = 20.0, what: str = "condition", log=lambda: ""):
    """predicate()'s first true value, polled every 0.2 s; AssertionError after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"no {what} within {timeout}s\n{log()}".rstrip())


def wait_all_done(engine, expected: int, timeout: float = 60) -> list[dict]:
    """The inbound rows once ``expected`` are stored and none is still ``received``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = inbound_rows(engine)
        if len(rows) >= expected and all(r["state"] != "received" for r in rows):
            return rows
        if time.monotonic() > deadline:
            states = [r["state"] for r in rows]
            raise AssertionError(f"not processed in {timeout}s: {len(rows)} rows, {states[-20:]}")
        time.sleep(0.1)


def reply_code(reply: str) -> int:
    """``451`` of a reply constant such as ``smtp.STORE_FAILED``."""
    return int(reply.split()[0])


def reply_text(reply: str) -> bytes:
    """What smtplib hands back as the text of that reply."""
    return reply.split(" ", 1)[1].encode()


class Sender(threading.Thread):
    """Load: unsubscribe mails in a loop over reconnecting sessions, each reply remembered
    as (code, text, rcpt). ``port_ref[0]`` is read at each connect, so a test can restart
    the server on another port underneath it (kill -9)."""

    def __init__(self, port_ref: list[int], rcpts: list[str], stop: threading.Event,
                 seed_: int) -> None:
        super().__init__(daemon=True)
        self.port_ref, self.rcpts, self.stop = port_ref, rcpts, stop
        self.rng = random.Random(seed_)
        self.replies: list[tuple[int, bytes, str]] = []

    @property
    def acked(self) -> list[int]:
        """The ids the 250s named."""
        return [int(text.rsplit(b" ", 1)[1]) for code, text, _ in self.replies if code == 250]

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                client = smtplib.SMTP("127.0.0.1", self.port_ref[0], timeout=15)
                client.ehlo()
                while not self.stop.is_set():
                    rcpt = self.rng.choice(self.rcpts)
                    client.mail("")
                    client.rcpt(rcpt)
                    code, text = client.data(message(subject="unsubscribe"))
                    self.replies.append((code, text, rcpt))
                    if code != 250:
                        time.sleep(0.1)
            except (smtplib.SMTPException, OSError):
                time.sleep(0.05)


CHROMIUM = "/usr/bin/chromium"


@contextlib.contextmanager
def chromium_page():
    """A page in headless Debian Chromium driven by Playwright (never a downloaded
    browser); skips the test, saying why, when either is missing."""
    import pytest

    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright not installed")
    if not os.path.exists(CHROMIUM):
        pytest.skip(f"Debian's chromium is not installed ({CHROMIUM})")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=[
            "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync", "--no-first-run"])
        try:
            yield browser.new_page()
        finally:
            browser.close()
