"""The benchmark's mail and its SMTP clients.

``build`` makes distinct messages (every Message-ID and target differs, so none is a
duplicate) in five equal parts, each aimed at a random contact or lead of the seeded
database, with genuine tokens:

* ARF complaints (RFC 5965) to the feedback-loop box, the original carrying our
  ``X-Feedback-Token``;
* DSNs (RFC 3464, a Postfix hard bounce) to ``bounce+TOKEN``;
* unsubscribe mails to ``unsubscribe+TOKEN``;
* dealer replies "SPAM" to ``reply+TOKEN``, from the lead's account admin;
* unknown mail to the feedback-loop box.

``closed_loop`` keeps ``concurrency`` sessions busy (the maximum rate); ``open_loop`` starts
messages at a fixed rate (the time-to-250 at a given load). The clock for time-to-250
runs from the final "." to the reply.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from seed import Shape

from feedback_mta import tokens
from feedback_mta.addresses import AddressBook, Box

FIXTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "messages"
PAD = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n" * 20

Message = tuple[str, str, bytes]  # MAIL FROM, RCPT TO, raw


def _arf(book: AddressBook, contact_id: int, mid: str, domain: str) -> bytes:
    template = (FIXTURES / "arf-rfc5965-abuse.eml").read_bytes()
    token = tokens.make(book.secrets[0], tokens.Purpose.FEEDBACK, contact_id)
    # The returned original starts after the empty line below its part headers.
    report = re.sub(rb"(Content-Disposition: inline\r?\n\r?\n)",
                    rb"\1X-Feedback-Token: " + token.encode() + rb"\r\n", template, count=1)
    return (f"Message-ID: {mid}\r\n".encode()
            + report.replace(b"<fbl@fb.test>", f"<fbl@{domain}>".encode()))


def build(n: int, book: AddressBook, shape: Shape, rng: random.Random) -> list[Message]:
    dsn = (FIXTURES / "dsn-postfix-hard.eml").read_bytes()
    domain = book.domain
    fbl = f"fbl@{domain}"
    out: list[Message] = []
    for i in range(n):
        mid = f"<bench-{i}-{rng.getrandbits(64):x}@isp.bench>"
        contact = rng.randint(1, shape.contacts)
        pick = i % 5
        if pick == 0:
            out.append(("", fbl, _arf(book, contact, mid, domain)))
        elif pick == 1:
            out.append(("", book.address(Box.BOUNCE, contact),
                        f"Message-ID: {mid}\r\n".encode() + dsn))
        elif pick == 2:
            sender = f"c{contact}@people.bench"
            out.append((sender, book.address(Box.UNSUBSCRIBE, contact), (
                f"From: {sender}\r\nSubject: unsubscribe\r\nMessage-ID: {mid}\r\n\r\n"
                f"unsubscribe\r\n{PAD}").encode()))
        elif pick == 3:
            lead = rng.randint(1, shape.leads)
            dealer = shape.dealer(shape.account_of_contact(shape.contact_of_lead(lead)))
            out.append((dealer, book.address(Box.REPLY, lead), (
                f"From: {dealer}\r\nSubject: Re: New lead\r\nMessage-ID: {mid}\r\n"
                f"\r\nSPAM\r\n\r\n> {PAD}").encode()))
        else:
            out.append((f"x{i}@else.bench", fbl, (
                f"From: x{i}@else.bench\r\nSubject: hello {i}\r\nMessage-ID: {mid}\r\n\r\n"
                f"{PAD}").encode()))
    return out


@dataclass
class Tally:
    latencies: list[float] = field(default_factory=list)
    codes: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    client_cpu: float = 0.0

    def count(self, code: str) -> None:
        self.codes[code] = self.codes.get(code, 0) + 1

    def pct(self, p: float) -> float:
        values = sorted(self.latencies)
        if not values:
            return float("nan")
        return values[min(len(values) - 1, int(len(values) * p))] * 1000

    @property
    def accepted(self) -> int:
        return self.codes.get("250", 0)


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


class _Client:
    """One SMTP connection at a time; pipelines MAIL/RCPT/DATA like a real MTA would not
    need to, to keep the client's own cost small next to the server's."""

    def __init__(self, port: int, reuse: bool) -> None:
        self.port = port
        self.reuse = reuse
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def send(self, message: Message, tally: Tally) -> None:
        mail_from, rcpt, raw = message
        try:
            if self.writer is None:
                self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
                await _reply(self.reader)
                self.writer.write(b"EHLO bench\r\n")
                await _reply(self.reader)
            self.writer.write(f"MAIL FROM:<{mail_from}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
            for _ in range(3):
                await _reply(self.reader)
            body = raw.replace(b"\r\n.", b"\r\n..")
            self.writer.write(body + (b"" if body.endswith(b"\r\n") else b"\r\n"))
            started = time.perf_counter()
            self.writer.write(b".\r\n")
            line = await _reply(self.reader)
            tally.latencies.append(time.perf_counter() - started)
            tally.count(line[:3].decode())
            if not self.reuse:
                await self.close()
        except (ConnectionError, OSError):
            tally.count("conn-error")
            self.writer = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.write(b"QUIT\r\n")
            with contextlib.suppress(ConnectionError, OSError):
                await _reply(self.reader)
            self.writer.close()
            self.writer = None


async def closed_loop(port: int, messages: list[Message], concurrency: int,
                      reuse: bool = False) -> Tally:
    """``concurrency`` sessions send back to back until the messages run out."""
    tally = Tally()
    pending = list(reversed(messages))

    async def session() -> None:
        client = _Client(port, reuse)
        while pending:
            await client.send(pending.pop(), tally)
        await client.close()

    started = time.perf_counter()
    await asyncio.gather(*(session() for _ in range(concurrency)))
    tally.seconds = time.perf_counter() - started
    return tally


async def open_loop(port: int, messages: list[Message], rate: float, max_sessions: int = 200,
                    reuse: bool = False) -> Tally:
    """Start one message every 1/``rate`` s whatever the replies, on free sessions."""
    tally = Tally()
    idle: list[_Client] = []
    busy = asyncio.Semaphore(max_sessions)
    tasks = []

    async def one(message: Message) -> None:
        client = idle.pop() if idle else _Client(port, reuse)
        try:
            await client.send(message, tally)
        finally:
            idle.append(client)
            busy.release()

    started = time.perf_counter()
    for i, message in enumerate(messages):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await busy.acquire()
        tasks.append(asyncio.create_task(one(message)))
    await asyncio.gather(*tasks)
    tally.seconds = time.perf_counter() - started
    for client in idle:
        await client.close()
    return tally
