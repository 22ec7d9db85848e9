"""The SMTP / LMTP edge: who may send us what, and the reply codes.

* RCPT: only the addresses we own (``addresses.AddressBook``), with a genuine token where
  one is needed; anything else is ``550 5.1.1``. The server is never a relay.
* DATA: the message goes to ``intake.Intake.store``; ``250`` only once it is committed,
  ``451 4.3.0`` if it could not be. LMTP (RFC 2033) answers once per recipient.
* Limits: SIZE in EHLO and ``552 5.3.4`` past ``max_message_size``; ``452 4.5.3`` past
  ``max_recipients``; idle and DATA timeouts; ``421 4.3.2`` past ``max_sessions``; per client
  address (``limits``) ``421 4.7.0`` past its sessions or connection rate, ``450 4.7.1`` past
  its message rate.
* Transport: STARTTLS with ``[smtp] tls_cert``/``tls_key`` (``tls``); with ``[smtp]
  proxy_protocol`` a PROXY v1/v2 header first, and its client address is the one we log,
  store and limit (``client_ip``).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Callable, Iterable
from typing import Any, AnyStr, cast

from aiosmtpd.lmtp import LMTP
from aiosmtpd.smtp import SMTP, Envelope, Session

from feedback_mta import counters, logs
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.edge.intake import Arrival, Intake, StoreError
from feedback_mta.edge.limits import Limits, Refusal
from feedback_mta.edge.tls import TlsFiles

log = logs.get(__name__)

# Reply codes we send, as named constants (tests assert them).
OK_MAIL = "250 2.1.0 Ok"
OK_RCPT = "250 2.1.5 Ok"
NO_SUCH_USER = "550 5.1.1 Recipient address rejected: no such mailbox here"
TOO_MANY_RCPTS = "452 4.5.3 Too many recipients"
STORE_FAILED = "451 4.3.0 Could not store the message, try again later"
TOO_MANY_SESSIONS = "421 4.3.2 Too many connections, try again later"
SHUTTING_DOWN = "421 4.3.2 Service shutting down, try again later"
TOO_BIG = "552 5.3.4 Message too big for system"
SIZE_TOO_BIG = "552 5.3.4 Message size exceeds fixed maximum message size"
LINE_TOO_LONG = "500 5.5.2 Line too long (see RFC 5321 4.5.3.1.6)"
TIMEOUT = "421 4.4.2 Timeout exceeded, closing connection"
TOO_MANY_FROM_IP = "421 4.7.0 Too many connections from your address, try again later"
CONNECTION_RATE = "421 4.7.0 Too many new connections from your address, try again later"
MESSAGE_RATE = "450 4.7.1 Too much mail from your address, try again later"

_LIMIT_REPLIES = {Refusal.SESSIONS: TOO_MANY_FROM_IP, Refusal.CONNECTION_RATE: CONNECTION_RATE,
                  Refusal.MESSAGE_RATE: MESSAGE_RATE}


def stored(message_id: int) -> str:
    return f"250 2.0.0 Ok: stored as {message_id}"


#: aiosmtpd's own replies, rewritten to carry RFC 3463 enhanced status codes.
_REWRITES = {
    b"552 Error: Too much mail data": TOO_BIG.encode(),
    b"552 Error: message size exceeds fixed maximum message size": SIZE_TOO_BIG.encode(),
    b"500 Line too long (see RFC5321 4.5.3.1.6)": LINE_TOO_LONG.encode(),
}


def client_ip(session: Session) -> str | None:
    """The client's address: the one a PROXY header named, else the TCP peer's."""
    proxy = getattr(session, "proxy_data", None)
    if proxy is not None and proxy.valid and proxy.src_addr is not None:
        return str(proxy.src_addr)
    peer = session.peer
    if isinstance(peer, tuple) and peer:
        return str(peer[0])
    return None if peer is None else str(peer)


class FeedbackHandler:
    """aiosmtpd handler: the RCPT and DATA hooks, nothing else."""

    def __init__(self, config: Config, book: AddressBook, intake: Intake) -> None:
        self.book = book
        self.intake = intake
        self.lmtp = config.smtp.lmtp
        self.max_recipients = config.smtp.max_recipients
        self.store_timeout = config.smtp.store_timeout

    def __dir__(self) -> list[str]:
        """The hooks only (``_command_names``)."""
        return _command_names(self, super().__dir__)

    async def handle_PROXY(self, server: FeedbackSMTP, session: Session, envelope: Envelope,
                           proxy_data) -> bool:
        """The PROXY header told us who the client is: now the per-client limits apply."""
        return server.admit()

    async def handle_MAIL(self, server: FeedbackSMTP, session: Session, envelope: Envelope,
                          address: str, mail_options: list[str]) -> str:
        ip = client_ip(session)
        refusal = server.sessions.limits.message(ip)
        if refusal is not None:
            log.info("smtp.limited", peer=ip, limit=refusal.value)
            return _LIMIT_REPLIES[refusal]
        envelope.mail_from = address
        envelope.mail_options.extend(mail_options)
        return OK_MAIL

    async def handle_RCPT(self, server: FeedbackSMTP, session: Session, envelope: Envelope,
                          address: str, rcpt_options: list[str]) -> str:
        if len(envelope.rcpt_tos) >= self.max_recipients:
            return TOO_MANY_RCPTS
        if self.book.resolve(address) is None:
            counters.RCPT_REFUSED.inc()
            log.info("smtp.rcpt_refused", peer=client_ip(session), rcpt=address[:254])
            return NO_SUCH_USER
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(rcpt_options)
        return OK_RCPT

    async def handle_DATA(self, server: FeedbackSMTP, session: Session, envelope: Envelope) -> str:
        started = time.perf_counter()
        mail_from = envelope.mail_from or ""
        arrival = Arrival(
            raw=bytes(envelope.original_content or b""),
            mail_from="" if mail_from == "<>" else mail_from,
            rcpt_tos=tuple(envelope.rcpt_tos),
            protocol="lmtp" if self.lmtp else "smtp",
            peer=client_ip(session),
            helo=(session.host_name or "")[:255] or None,
        )
        tls = session.ssl is not None
        try:
            message_id = await self.intake.store(arrival, self.store_timeout)
        except StoreError as exc:
            counters.STORE_FAILED.inc()
            counters.INTAKE_SECONDS.observe(time.perf_counter() - started)
            log.warning("message.store_failed", peer=arrival.peer, size=len(arrival.raw),
                        error=str(exc))
            return self._reply(STORE_FAILED, envelope)
        seconds = time.perf_counter() - started
        counters.ACCEPTED.labels(arrival.protocol).inc()
        counters.INTAKE_SECONDS.observe(seconds)
        log.info("message.accepted", id=message_id, peer=arrival.peer, size=len(arrival.raw),
                 rcpts=len(arrival.rcpt_tos), protocol=arrival.protocol, tls=tls,
                 store_ms=round(seconds * 1000, 2))
        return self._reply(stored(message_id), envelope)

    def _reply(self, status: str, envelope: Envelope) -> str:
        if not self.lmtp:
            return status
        # RFC 2033 4.2: one reply per accepted recipient, in RCPT order.
        code, _, text = status.partition(" ")
        return "\r\n".join(f"{code} {text} <{rcpt}>" for rcpt in envelope.rcpt_tos)


class Sessions:
    """The sessions in flight: the cap on their number, and the drain on shutdown."""

    def __init__(self, limit: int, limits: Limits) -> None:
        self.limit = limit
        #: Per client address; the SMTP hooks reach them as ``server.sessions.limits``.
        self.limits = limits
        self.active: set[Any] = set()
        self.closing = False
        self.refused = 0

    def close_idle(self) -> None:
        """Tell sessions that are not in the middle of DATA to come back later."""
        self.closing = True
        for proto in list(self.active):
            if not proto.busy:
                proto.say_goodbye()

    async def wait_empty(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.active and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        for proto in list(self.active):  # past the deadline: cut them off
            proto.say_goodbye()
        return not self.active


#: An address as nearly every client sends it: ``<dot-atom@dot-atom>``, then parameters.
_ATOM = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_PLAIN_PATH = re.compile(
    rf"[ \t]*<({_ATOM}(?:\.{_ATOM})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*)>[ \t]*([^(]*)", re.S)
#: The null reverse-path of bounces and reports (RFC 5321 4.5.5); what follows is kept as is.
_NULL_PATH = re.compile(r"[ \t]*<>(.*)", re.S)
#: Per class: the names aiosmtpd looks for in ``dir()`` of each new protocol and handler.
_COMMAND_NAMES: dict[type, list[str]] = {}


def _command_names(obj: object, names: Callable[[], Iterable[str]]) -> list[str]:
    """The command, hook and AUTH method names among ``names()`` (``dir`` of ``obj``),
    listed once per class. aiosmtpd builds its command tables from ``dir()`` and
    ``inspect.getmembers`` of every new protocol and of its handler, which read every
    attribute (properties included): 52 of the 83 us it took to make a protocol, for
    names that never change. The full ``dir`` alone costs 12 us, four times per
    connection, so it is not even listed after the first."""
    cls = type(obj)
    found = _COMMAND_NAMES.get(cls)
    if found is None:
        found = _COMMAND_NAMES[cls] = [
            name for name in names() if name.startswith(("smtp_", "auth_", "handle_"))]
    return found


class FeedbackSMTP(SMTP):
    """Counts the session, rewrites replies, applies the DATA timeout, drains on shutdown.

    What aiosmtpd leaves no hook for is done by overriding its session methods here, in
    one class: admitting the client before the greeting (``_handle_client``), the DATA
    timeout (``_reset_timeout``), a 421 before a timeout hangs up (``_timeout_cb``), and
    two costs it pays per connection or command that we pay once (``__dir__``,
    ``_getaddr``).
    ``tests/test_transport.py`` and ``tests/test_floods.py`` pin each of them, so an
    aiosmtpd upgrade that changes them fails there first (``aiosmtpd<2`` in
    ``pyproject.toml``: a major version is a deliberate upgrade)."""

    sessions: Sessions
    data_timeout: float
    #: ``[smtp] proxy_protocol``: the client is admitted once its PROXY header names it.
    expects_proxy = False
    busy = False
    #: The client address counted in ``sessions.limits`` (released on connection_lost).
    admitted: str | None = None
    #: The lines of a multi-line reply so far (``push``).
    _held: tuple[bytes, ...] = ()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # again after STARTTLS, for the TLS transport
        self.sessions.active.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sessions.active.discard(self)
        if self.admitted is not None:
            self.sessions.limits.close(self.admitted)
            self.admitted = None
        super().connection_lost(error)

    async def _handle_client(self) -> None:
        # Without a PROXY header the TCP peer is the client; with one, ``handle_PROXY``
        # admits the address it names, before the greeting either way.
        if not self.expects_proxy and not self.admit():
            return
        await super()._handle_client()

    def admit(self) -> bool:
        """Count this session against its client's limits, or say 421 and hang up."""
        assert self.session is not None  # made with the connection
        ip = client_ip(self.session)
        refusal = self.sessions.limits.open(ip)
        if refusal is None:
            self.admitted = ip
            return True
        counters.SESSIONS_REFUSED.inc()
        log.info("smtp.limited", peer=ip, limit=refusal.value)
        self.hang_up(_LIMIT_REPLIES[refusal])
        return False

    async def push(self, status: AnyStr) -> None:
        """Rewrite aiosmtpd's replies (``_REWRITES``); hold the lines of a multi-line reply
        (``250-...``, EHLO's five) and send them with its last line, in one write: one
        send instead of five, and the client reads the reply at once."""
        line = (status.encode("utf-8" if self.enable_SMTPUTF8 else "ascii")
                if isinstance(status, str) else bytes(status))
        if line[3:4] == b"-" and b"\n" not in line:
            self._held += (line,)
            return
        line = _REWRITES.get(line, line)
        if self._held:
            line, self._held = b"\r\n".join((*self._held, line)), ()
        await super().push(line)

    async def smtp_DATA(self, arg: str) -> None:
        self.busy = True
        self._reset_timeout(self.data_timeout)
        try:
            await super().smtp_DATA(arg)
        finally:
            self.busy = False
            if self.transport is not None:
                self._reset_timeout()
        if self.sessions.closing:
            self.say_goodbye()

    def __dir__(self) -> list[str]:
        """The command and AUTH methods only (``_command_names``)."""
        return _command_names(self, super().__dir__)

    def _getaddr(self, arg: str) -> tuple[str | None, str | None]:
        """aiosmtpd's MAIL/RCPT address reader, without its cost for the plain case.

        It runs the email package's RFC 5322 parser and defines a class on every call;
        an angle address of dot-atoms gives the same (address, parameters) by a regular
        expression (``tests/test_transport.py`` compares the two), anything else still
        goes to it."""
        match = _PLAIN_PATH.fullmatch(arg) if arg else None
        if match is None:
            null = _NULL_PATH.fullmatch(arg) if arg else None
            return ("<>", null.group(1)) if null else super()._getaddr(arg)
        address = match.group(1)
        if self.local_part_limit and len(address.rpartition("@")[0]) > self.local_part_limit:
            return None, None
        return address, match.group(2)

    def _timeout_cb(self) -> None:
        # aiosmtpd just hangs up; a reply tells the client (and its log) why.
        self.hang_up(TIMEOUT)

    def say_goodbye(self) -> None:
        self.hang_up(SHUTTING_DOWN)

    def hang_up(self, reply: str) -> None:
        """Say ``reply`` (a 421) and close, unless the connection is already going."""
        # uvloop's transports do not derive from asyncio's classes: no isinstance here.
        transport = cast("asyncio.WriteTransport | None", self.transport)
        if transport is not None and not transport.is_closing():
            transport.write(reply.encode() + b"\r\n")
            transport.close()


class FeedbackLMTP(FeedbackSMTP, LMTP):
    """The same session rules, speaking LMTP (RFC 2033) for Postfix in front."""


class _Refuse(asyncio.Protocol):
    """Answers ``421`` and hangs up: more sessions than ``max_sessions``."""

    def connection_made(self, transport):
        transport.write(TOO_MANY_SESSIONS.encode() + b"\r\n")
        transport.close()


def protocol_factory(config: Config, handler: FeedbackHandler, sessions: Sessions,
                     tls: TlsFiles | None = None):
    cls = FeedbackLMTP if config.smtp.lmtp else FeedbackSMTP
    smtp = config.smtp

    def factory() -> asyncio.Protocol:
        if len(sessions.active) >= sessions.limit or sessions.closing:
            sessions.refused += 1
            counters.SESSIONS_REFUSED.inc()
            return _Refuse()
        proto = cls(
            handler,
            data_size_limit=smtp.max_message_size,
            hostname=config.banner_hostname,
            ident="feedback-mta",
            timeout=smtp.idle_timeout,
            enable_SMTPUTF8=True,
            tls_context=tls.context() if tls is not None else None,
            require_starttls=False,
            proxy_protocol_timeout=smtp.proxy_timeout if smtp.proxy_protocol else None,
        )
        proto.sessions = sessions
        proto.data_timeout = smtp.data_timeout
        proto.expects_proxy = smtp.proxy_protocol
        return proto

    return factory
