"""Durable intake: the raw message and its envelope are committed before we say 250.

The SMTP handler hands each message to ``Intake.store`` and awaits it. One writer thread
takes everything that arrived meanwhile and inserts it in one transaction (group commit):
one fsync serves many sessions, and no database work runs on the event loop thread.
Only when the commit returned does the session's future resolve and the 250 go out;
if the commit fails the session answers 451 and the client retries later.

Committed ids go next to ``process.Processor`` (parse -> classify -> act).
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hashlib
import re
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.engine import Engine

from feedback_mta import logs
from feedback_mta.runner import LoopPromise, Runner
from feedback_mta.store.models import (
    HookNonce,
    InboundMessage,
    MessageState,
    table_of,
    utcnow,
)

log = logs.get(__name__)

_TABLE = table_of(InboundMessage)

#: Header fields that relays add or rewrite; the same message relayed twice differs only in
#: these, so they are left out of the content hash.
_TRACE = frozenset({
    b"received", b"return-path", b"delivered-to", b"x-original-to", b"authentication-results",
    b"received-spf", b"x-envelope-from", b"x-envelope-to", b"x-rcpt-to", b"envelope-to",
    b"dkim-filter", b"x-ms-exchange-organization-authas",
})
_TRACE_PREFIXES = (b"arc-", b"x-spam", b"x-virus", b"x-amavis", b"x-ms-exchange-")
_HEADER_END = re.compile(rb"\r?\n\r?\n")


@dataclass(frozen=True)
class Arrival:
    """One SMTP/LMTP transaction (the envelope and the raw bytes, as received), or one
    request (or one event of it) over HTTP: then ``provider`` says whose, ``raw`` is the
    body and ``key`` the content hash, from the provider's event id."""

    raw: bytes
    mail_from: str
    rcpt_tos: tuple[str, ...]
    protocol: str = "smtp"
    peer: str | None = None
    helo: str | None = None
    received_at: datetime = field(default_factory=utcnow)
    provider: str | None = None
    key: str | None = None
    #: A signed request's one-time value (Mailgun's token): stored with the arrival, in
    #: its transaction; seen before with another ``key``, the arrival is ``Replayed``.
    nonce: str | None = None


def split_headers(raw: bytes) -> tuple[bytes, bytes]:
    """(header block, body) at the first empty line; all header when there is none."""
    match = _HEADER_END.search(raw)
    if match is None:
        return raw, b""
    return raw[: match.start()], raw[match.end():]


def header_fields(header_block: bytes) -> list[tuple[bytes, bytes]]:
    """Unfolded (lower-case name, value) pairs; lines that are not fields are skipped."""
    fields: list[list[bytes]] = []
    for line in re.split(rb"\r?\n", header_block):
        if line[:1] in (b" ", b"\t"):
            if fields:
                fields[-1][1] += b" " + line.strip()
            continue
        name, colon, value = line.partition(b":")
        if colon and name and b" " not in name.strip():
            fields.append([name.strip().lower(), value.strip()])
    return [(n, v) for n, v in fields]


def fingerprint(raw: bytes, rcpt_tos: Sequence[str]) -> tuple[str | None, str]:
    """(Message-ID without brackets, content hash) of a raw message for these recipients.

    The hash covers the recipients (the same message to two of our boxes is two pieces of
    feedback), and the message without trace headers, with line endings normalized (relays
    add Received lines and may turn LF into CRLF).
    """
    head, body = split_headers(raw)
    message_id = None
    digest = hashlib.sha256()
    digest.update("\n".join(sorted(r.lower() for r in rcpt_tos)).encode("utf-8", "replace"))
    digest.update(b"\0")
    for name, value in header_fields(head):
        if name == b"message-id" and message_id is None:
            message_id = value.decode("ascii", "replace").strip().strip("<>").strip()[:998] or None
        if name in _TRACE or name.startswith(_TRACE_PREFIXES):
            continue
        digest.update(name + b":" + value + b"\n")
    digest.update(b"\0")
    digest.update(body.replace(b"\r\n", b"\n"))
    return message_id, digest.hexdigest()


def _row(arrival: Arrival) -> dict:
    if arrival.key is not None:
        message_id, content_hash = None, arrival.key
    else:
        message_id, content_hash = fingerprint(arrival.raw, arrival.rcpt_tos)
    return {
        "received_at": arrival.received_at,
        "protocol": arrival.protocol,
        "peer": arrival.peer,
        "helo": arrival.helo,
        "mail_from": arrival.mail_from,
        "rcpt_tos": list(arrival.rcpt_tos),
        "size": len(arrival.raw),
        "message_id": message_id,
        "content_hash": content_hash,
        "raw": arrival.raw,
        "state": MessageState.RECEIVED.value,
        "attempts": 0,
        "provider": arrival.provider,
    }


_NONCES = table_of(HookNonce)


class StoreError(Exception):
    """The message could not be committed; the client must be told to retry (451)."""


class Replayed(Exception):
    """A signed request's nonce was seen before with another event: refused, not stored."""


class _Promise(Protocol):
    """Where an arrival's id (or why not) goes: what ``_write`` asks of a future."""

    def set_running_or_notify_cancel(self) -> bool: ...

    def set_result(self, result: int) -> None: ...

    def set_exception(self, exception: BaseException) -> None: ...


_Pending = tuple[Arrival, _Promise]


class Intake(Runner[_Pending]):
    """Commits arrivals in batches on one writer thread and reports committed ids. Without
    the writer nothing is stored and every DATA ends 451, so the watchdog asks ``alive``;
    ``stop`` commits what is queued first."""

    name = "intake"

    def __init__(self, engine: Engine, on_stored: Callable[[list[int]], None] | None = None,
                 *, max_batch: int = 256) -> None:
        super().__init__(threads=1, max_batch=max_batch)
        self._engine = engine
        self._on_stored = on_stored or (lambda ids: None)
        self.batches = 0
        self.stored = 0

    def submit(self, arrival: Arrival) -> concurrent.futures.Future[int]:
        future: concurrent.futures.Future[int] = concurrent.futures.Future()
        self.put((arrival, future))
        return future

    async def store(self, arrival: Arrival, timeout: float) -> int:
        """The id of the committed row; StoreError if it was not committed in time."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[int] = loop.create_future()
        self.put((arrival, LoopPromise(loop, future)))
        try:
            async with asyncio.timeout(timeout):
                return await future
        except TimeoutError:
            # It may still commit later; the client retries and the copy is deduplicated.
            raise StoreError(f"not committed within {timeout:g}s") from None

    def run_batch(self, batch: list[_Pending]) -> None:
        self._write(batch)

    def failed(self, batch: list[_Pending], exc: Exception) -> None:
        # Not a store error (those are answered in _write): a bug. The writer lives on;
        # these sessions time out into 451 and their clients retry.
        log.exception("intake.error", items=len(batch))

    def _write(self, batch: list[_Pending]) -> None:
        started = time.perf_counter()
        try:
            ids = self._insert(batch)
        except Exception as exc:
            if len(batch) == 1:
                self._fail(batch, exc)
                return
            # One bad row must not fail its neighbours: retry them one by one.
            for one in batch:
                self._write([one])
            return
        self.batches += 1
        commit_ms = round((time.perf_counter() - started) * 1000, 2)
        for (_, future), message_id in zip(batch, ids, strict=True):
            if not future.set_running_or_notify_cancel():
                continue
            if message_id is None:
                future.set_exception(Replayed("a nonce seen before with another event"))
            else:
                future.set_result(message_id)
        stored = [i for i in ids if i is not None]
        self.stored += len(stored)
        log.debug("intake.committed", count=len(stored), commit_ms=commit_ms)
        try:
            self._on_stored(stored)
        except Exception:  # the sweep will find them; never lose the writer thread
            log.exception("intake.notify_failed", ids=stored)

    def _insert(self, batch: list[_Pending]) -> list[int | None]:
        """The ids of the batch's rows, in order; None for an arrival refused as a replay.
        Nonces go in the same transaction (one commit), the first of a nonce winning.

        Once the transaction has begun (on SQLite, once the write lock is ours, which may
        have taken a processing transaction's length), what arrived meanwhile joins
        ``batch``: it would otherwise wait for that lock again, after this commit."""
        rows = [_row(arrival) for arrival, _ in batch]
        stmt = sa.insert(_TABLE).returning(_TABLE.c.id, sort_by_parameter_order=True)
        with self._engine.begin() as conn:
            self.take_more(batch)
            rows += [_row(arrival) for arrival, _ in batch[len(rows):]]
            arrivals = [arrival for arrival, _ in batch]
            replayed = self._replays(conn, arrivals) if any(a.nonce for a in arrivals) else set()
            kept = [row for n, row in enumerate(rows) if n not in replayed]
            ids = iter([row.id for row in conn.execute(stmt, kept)] if kept else [])
            return [None if n in replayed else next(ids) for n in range(len(rows))]

    @staticmethod
    def _replays(conn: sa.Connection, arrivals: list[Arrival]) -> set[int]:
        """Record the nonces; the positions of arrivals whose nonce signed another event.
        A nonce new to the table and alone in the batch is its arrival's (the insert
        returns it): only the others (seen before, or twice in the batch) are read back."""
        # (position, (provider, nonce), content hash) of each signed arrival.
        signed = [(n, (a.provider or "", a.nonce), a.key or "")
                  for n, a in enumerate(arrivals) if a.nonce]
        now = utcnow()
        values = [{"provider": provider, "nonce": nonce, "content_hash": content,
                   "seen_at": now} for _, (provider, nonce), content in signed]
        insert = (sqlite_insert if conn.dialect.name == "sqlite" else pg_insert)(_NONCES)
        new = {(r.provider, r.nonce) for r in conn.execute(
            insert.on_conflict_do_nothing().returning(_NONCES.c.provider, _NONCES.c.nonce),
            values)}
        times = Counter(key for _, key, _ in signed)
        unsure = [(n, key, content) for n, key, content in signed
                  if times[key] > 1 or key not in new]
        if not unsure:
            return set()
        stored = {(r.provider, r.nonce): r.content_hash for r in conn.execute(
            sa.select(_NONCES.c.provider, _NONCES.c.nonce, _NONCES.c.content_hash).where(
                _NONCES.c.nonce.in_([nonce for _, (_, nonce), _ in unsure])))}
        return {n for n, key, content in unsure if stored.get(key) != content}

    @staticmethod
    def _fail(batch, exc: Exception) -> None:
        log.error("intake.store_failed", count=len(batch), error=logs.error_line(exc))
        for _, future in batch:
            if future.set_running_or_notify_cancel():
                future.set_exception(StoreError(f"{type(exc).__name__}"))
