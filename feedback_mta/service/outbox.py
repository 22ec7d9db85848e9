"""Delivering the mail we send (acknowledgements, digests) through ``[outbound] relay``.

A transactional outbox. The handler queues the mail (``Mail.queue``; composed by
``actions.mail``) in the same
transaction that flags the lead, so a crash can neither flag without answering nor answer
without flagging. After the commit the ``Outbox`` thread delivers it. Delivery failures
are retried by the scheduler (``outbox.flush``), up to ``max_attempts``, then the mail is
left ``failed`` with its error. A crash between the relay's 250 and our ``sent`` can send
one mail twice; that is the trade against ever losing one. A review page sign-in mail
whose link can no longer sign in (it expired while the relay was away, say) is never
sent: it is left ``expired`` (``mail.expired``). ``feedback-mta outbox`` lists, retries
and purges them.

What we send follows RFC 3834: ``Auto-Submitted: auto-replied``, the null envelope sender
(so no bounce or vacation reply ever comes back to us), threaded to the reply with
In-Reply-To / References. We never answer auto-replies or the null sender: those never
reach the reply handler with a command.
"""

from __future__ import annotations

import re
import smtplib
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from feedback_mta import counters, logs
from feedback_mta.actions import review
from feedback_mta.config import OutboundConfig
from feedback_mta.runner import Runner
from feedback_mta.store import db
from feedback_mta.store.models import OutboundMessage, OutboundState, table_of, utcnow

log = logs.get(__name__)

_T = table_of(OutboundMessage)

class _Permanent(Exception):
    pass


_BARE_LF = re.compile(rb"(?<!\r)\n")


def _send(cfg: OutboundConfig, mail_from: str, rcpt_to: str, raw: bytes) -> None:
    # smtplib sends bytes as they are: bare LF line ends (what bytes(EmailMessage) gives) make
    # the whole mail one "line" to a strict server, refused as too long past 1,000 bytes.
    raw = _BARE_LF.sub(b"\r\n", raw)
    address = cfg.relay_address
    if address is None:
        raise RuntimeError("no [outbound] relay configured")
    with smtplib.SMTP(address[0], address[1], timeout=cfg.timeout) as client:
        client.ehlo_or_helo_if_needed()
        try:
            client.sendmail(mail_from, [rcpt_to], raw)
        except smtplib.SMTPRecipientsRefused as exc:
            code, text = next(iter(exc.recipients.values()))
            if 500 <= code < 600:
                raise _Permanent(f"{code} {text.decode(errors='replace')}") from None
            raise
        except (smtplib.SMTPDataError, smtplib.SMTPSenderRefused) as exc:
            if 500 <= exc.smtp_code < 600:
                raise _Permanent(f"{exc.smtp_code} {exc.smtp_error!r}") from None
            raise


class RelayProblem(Exception):
    """The relay could not be reached or would not talk to us; the message says how."""


def probe(cfg: OutboundConfig, timeout: float | None = None) -> str:
    """Connect, EHLO and QUIT, sending nothing: the relay's greeting line when it answers.

    For ``check-config``: the errors name the relay and say what went wrong in the words
    an admin would search for (refused, timed out, no such host, a 4xx/5xx greeting).
    """
    address = cfg.relay_address
    if address is None:
        raise RelayProblem("no [outbound] relay configured")
    where = cfg.relay
    timeout = cfg.timeout if timeout is None else timeout
    try:
        with smtplib.SMTP(timeout=timeout) as client:
            code, greeting = client.connect(address[0], address[1])
            if code != 220:
                raise RelayProblem(f"relay {where}: greeted with {code} "
                                   f"{greeting.decode(errors='replace')}")
            code, text = client.ehlo()
            if code != 250:
                raise RelayProblem(f"relay {where}: refused EHLO: {code} "
                                   f"{text.decode(errors='replace')}")
            return f"220 {greeting.decode(errors='replace').splitlines()[0]}"
    except RelayProblem:
        raise
    except smtplib.SMTPServerDisconnected as exc:  # smtplib's word for a read timeout too
        if "timed out" in str(exc):
            raise RelayProblem(f"relay {where}: no answer within {timeout:g}s") from None
        raise RelayProblem(f"relay {where}: closed the connection without a reply") from None
    except smtplib.SMTPException as exc:  # (a subclass of OSError: before it)
        raise RelayProblem(f"relay {where}: {type(exc).__name__}: {exc}") from None
    except TimeoutError:
        raise RelayProblem(f"relay {where}: no answer within {timeout:g}s") from None
    except ConnectionRefusedError:
        raise RelayProblem(f"relay {where}: connection refused (nothing listens there)"
                           ) from None
    except OSError as exc:  # socket.gaierror for unknown names, unreachable networks, ...
        raise RelayProblem(f"relay {where}: {exc.strerror or exc}") from None


def _expire_if_dead(conn: sa.Connection, mail_id: int, row: Any,
                    now: datetime) -> bool:
    """Leave a sign-in mail ``expired`` when its link can no longer sign in; whether it
    was. In the claim's transaction: nothing else tries the mail meanwhile."""
    if row.purpose != review.SIGN_IN or not review.link_expired(conn, row.raw, now):
        return False
    conn.execute(sa.update(_T).where(_T.c.id == mail_id).values(
        state=OutboundState.EXPIRED.value,
        last_error="the sign-in link expired before the mail could be sent"))
    return True


def deliver_one(engine: Engine, cfg: OutboundConfig, mail_id: int) -> str | None:
    """One attempt at one queued mail; its new state, or None if it was not ours to try."""
    now = utcnow()
    with engine.begin() as conn:  # claim this attempt: other threads and nodes skip it
        claimed = conn.execute(
            sa.update(_T).where(_T.c.id == mail_id, _T.c.state == OutboundState.QUEUED,
                                _T.c.next_attempt_at <= now)
            .values(attempts=_T.c.attempts + 1,
                    next_attempt_at=now + timedelta(seconds=cfg.retry_interval))).rowcount
        row = conn.execute(sa.select(_T.c.mail_from, _T.c.rcpt_to, _T.c.raw, _T.c.attempts,
                                     _T.c.purpose).where(_T.c.id == mail_id)).one_or_none()
        expired = bool(claimed) and row is not None and _expire_if_dead(conn, mail_id, row,
                                                                        now)
    if not claimed or row is None:
        return None
    if expired:
        counters.OUTBOUND.labels("expired").inc()
        log.warning("mail.expired", outbound_id=mail_id, purpose=row.purpose,
                    attempts=row.attempts, link_id=review.link_of(row.raw))
        return OutboundState.EXPIRED.value
    try:
        _send(cfg, row.mail_from, row.rcpt_to, row.raw)
    except Exception as exc:
        error = f"{type(exc).__name__}: {exc}"[:500]
        final = isinstance(exc, _Permanent) or row.attempts >= cfg.max_attempts
        state = OutboundState.FAILED if final else OutboundState.QUEUED
        with engine.begin() as conn:
            conn.execute(sa.update(_T).where(_T.c.id == mail_id)
                         .values(state=state.value, last_error=error))
        counters.OUTBOUND.labels("failed" if final else "deferred").inc()
        (log.error if final else log.warning)(
            "mail.failed" if final else "mail.deferred", outbound_id=mail_id,
            purpose=row.purpose, attempts=row.attempts, error=error[:200])
        return state.value
    with engine.begin() as conn:
        conn.execute(sa.update(_T).where(_T.c.id == mail_id)
                     .values(state=OutboundState.SENT.value, sent_at=utcnow(), last_error=None))
    counters.OUTBOUND.labels("sent").inc()
    log.info("mail.sent", outbound_id=mail_id, purpose=row.purpose, attempts=row.attempts)
    return OutboundState.SENT.value


def due_ids(engine: Engine, limit: int = 1000) -> list[int]:
    with db.reader(engine).connect() as conn:
        return list(conn.execute(
            sa.select(_T.c.id).where(_T.c.state == OutboundState.QUEUED,
                                     _T.c.next_attempt_at <= utcnow())
            .order_by(_T.c.id).limit(limit)).scalars())


_STOP = object()


class Outbox(Runner[int]):
    """One thread that delivers queued mail, so a slow relay never holds up processing.
    Without a relay it does nothing (and starts no thread)."""

    name = "outbox"

    def __init__(self, engine: Engine, cfg: OutboundConfig) -> None:
        super().__init__(threads=1 if cfg.relay_address is not None else 0)
        self._engine = engine
        self._cfg = cfg

    @property
    def enabled(self) -> bool:
        return self._cfg.relay_address is not None

    def submit(self, ids: list[int]) -> None:
        if self.enabled:
            for mail_id in ids:
                self.put(mail_id)

    def flush(self) -> int:
        """Queue every mail that is due (retries, or left by a crash or another node)."""
        ids = due_ids(self._engine) if self.enabled else []
        self.submit(ids)
        return len(ids)

    def stop(self, *, drain: bool = True, timeout: float | None = None) -> list[int]:
        return super().stop(drain=drain, timeout=self._cfg.timeout + 5)

    def run_batch(self, batch: list[int]) -> None:
        for mail_id in batch:
            deliver_one(self._engine, self._cfg, mail_id)

    def failed(self, batch: list[int], exc: Exception) -> None:
        # The database, not the mail: the scheduler's flush tries again.
        log.exception("mail.deliver_error", outbound_id=batch[0])
