"""HTTP connections that cannot be used to deny service: a header timeout, an idle timeout
and HTTP's own connection caps, around uvicorn's h11 protocol.

Why: uvicorn waits for a request head for ever (its keep-alive timer runs only after a
response, and any byte cancels it), and its one cap (``limit_concurrency``) counts every
open socket against every route: 200 sockets that sent nothing, or half a header, had
every request answered 503 for as long as they stayed open.

What each connection gets (``[http]``):

- ``header_timeout``: from its start, or from the end of its last response, to a complete
  request head. Past it the socket is closed: with ``408`` problem+json when part of a
  head came (a slowloris), silently when nothing did (a 408 on a socket a client had not
  used yet makes a client that raced a request onto it fail; nginx closes silently too).
- ``idle_timeout`` (at most ``header_timeout``): a keep-alive connection silent that long
  after a response is closed silently. Once a byte of the next request comes, the header
  timeout (still counted from the end of the response) is what bounds it.
- ``max_connections``: past it a new connection is answered ``503`` problem+json with
  ``Retry-After`` at once, without reading its request, and closed; the connections
  already open are untouched. ``max_connections_per_ip`` (an IPv6 /64 counts as one
  address; ``limit_exempt`` networks are not counted): ``429`` likewise. The peer address
  is the client: uvicorn's proxy headers are off.
- uvicorn's plain-text ``400 Invalid HTTP request received.`` is problem+json; its
  plain-text ``503`` at ``limit_concurrency`` cannot happen, that cap is off (these replace
  it: a connection carries one request at a time, so tasks are bounded by connections).

How: a subclass of uvicorn's ``H11Protocol``, handed to ``uvicorn.Config(http=...)``, its
public way to choose the protocol class (so h11 is always used, never httptools: one
protocol is watched). It overrides the asyncio protocol methods and four of
``H11Protocol``'s own (``handle_events`` to cork a new request's writes, ``Corked``;
``on_response_complete`` to start waiting for the next head; ``send_400_response``;
``shutdown``); it reads h11's public state (``conn.their_state``, ``conn.our_state``,
``conn.trailing_data``) and takes a socket it is closing out of uvicorn's
``ServerState.connections``, the set uvicorn's shutdown waits on. A signed webhook that
came whole in one read is answered without h11 (``Guarded``, ``whole_request``): its task
goes in uvicorn's ``ServerState.tasks``, which its shutdown waits for. None of uvicorn's
protocol internals is a documented API, so there is no other way to watch a socket before
its first request; ``tests/test_http_connections.py`` fails if these names change.
A refused or timed-out socket is closed gracefully ("lingering close", as nginx does):
the answer, a FIN, then whatever the client still sends is dropped until it closes or
``LINGER`` seconds pass, so the answer is not lost to a reset caused by unread input.
"""

from __future__ import annotations

import asyncio
import enum
import ipaddress
import json
import math
import re
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, ClassVar, Protocol, cast

import h11
from starlette.types import Message, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol

from feedback_mta import counters, logs
from feedback_mta.config import HttpConfig
from feedback_mta.edge.limits import client_address, networks
from feedback_mta.http import problems

log = logs.get(__name__)

#: Seconds a refused or timed-out socket is kept after its answer for the client to close.
LINGER = 1.0


class Refusal(enum.Enum):
    TOTAL = "max_connections"
    PER_IP = "max_connections_per_ip"


def answer(status: int, detail: str, headers: Iterable[tuple[str, str]] = ()) -> bytes:
    """A whole ``Connection: close`` HTTP/1.1 response carrying a problem document."""
    body = json.dumps(problems.body(status, detail)).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
             f"content-type: {problems.MEDIA_TYPE}", f"content-length: {len(body)}",
             "connection: close", *(f"{name}: {value}" for name, value in headers)]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class Gate:
    """HTTP's connection caps: the count of open connections, in all and by address.
    Pure bookkeeping (and the sockets being closed, to end them on stop)."""

    def __init__(self, *, max_connections: int, per_ip: int, header_timeout: float,
                 idle_timeout: float, exempt: Iterable[str] = ()) -> None:
        self.max_connections, self.per_ip = max_connections, per_ip
        self.header_timeout, self.idle_timeout = header_timeout, idle_timeout
        self.exempt = networks(exempt)
        self.open = 0
        self.by_client: dict[str, int] = {}
        #: Sockets answered and being closed: ended at once on stop.
        self.closing: set[asyncio.Transport] = set()
        retry = str(max(1, math.ceil(header_timeout)))
        self.refusals = {
            Refusal.TOTAL: answer(
                503, f"more than {max_connections} connections are open "
                     "([http] max_connections); try again shortly",
                [("retry-after", retry)]),
            Refusal.PER_IP: answer(
                429, f"more than {per_ip} connections are open from your address "
                     "([http] max_connections_per_ip)",
                [("retry-after", retry)]),
        }

    @classmethod
    def from_config(cls, http: HttpConfig) -> Gate:
        return cls(max_connections=http.max_connections, per_ip=http.max_connections_per_ip,
                   header_timeout=http.header_timeout, idle_timeout=http.idle_timeout,
                   exempt=http.limit_exempt)

    def client(self, host: str | None) -> str | None:
        """What ``max_connections_per_ip`` counts ``host`` as: its address, its IPv6 /64,
        or None (exempt, or no IP address: a Unix socket)."""
        address = client_address(host) if host is not None else None
        if address is None or any(address in network for network in self.exempt):
            return None
        if isinstance(address, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((address, 64), strict=False))
        return str(address)

    def admit(self, client: str | None) -> Refusal | None:
        """A new connection from ``client``: None (counted; ``release`` it) or why not."""
        if self.open >= self.max_connections:
            return Refusal.TOTAL
        if client is not None:
            held = self.by_client.get(client, 0)
            if held >= self.per_ip:
                return Refusal.PER_IP
            self.by_client[client] = held + 1
        self.open += 1
        counters.HTTP_CONNECTIONS.set(self.open)
        return None

    def release(self, client: str | None) -> None:
        self.open -= 1
        counters.HTTP_CONNECTIONS.set(self.open)
        if client is None:
            return
        left = self.by_client.get(client, 0) - 1
        if left > 0:
            self.by_client[client] = left
        else:
            self.by_client.pop(client, None)

    def end_closing(self) -> None:
        """End the sockets still being closed (the service stops)."""
        for transport in list(self.closing):
            transport.abort()
        self.closing.clear()


class Direct(Protocol):
    """What answers requests a connection read whole itself, before uvicorn and the app
    (``hooks.Fast``: signed webhooks); ``Guarded`` hands it those (``whole_request``)."""

    limit: int

    @property
    def paths(self) -> frozenset[str]:
        """The paths it answers (``POST`` only)."""
        ...

    async def direct(self, scope: Scope, body: bytes, send: Send) -> None:
        ...


#: A header field as h11 takes it (RFC 9110's token, then a value of visible characters
#: and inner spaces; no line folding).
_FIELD = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*"
                    rb"((?:[\x21-\x7e\x80-\xff]+(?:[ \t]+[\x21-\x7e\x80-\xff]+)*)?)[ \t]*")
#: Fields that ask for more than one whole request answered in turn: h11 takes those.
_NOT_DIRECT = frozenset({b"transfer-encoding", b"expect", b"connection", b"upgrade"})
#: Each status's reason phrase, for an answer's status line.
_PHRASES = {status.value: status.phrase.encode() for status in HTTPStatus}
#: The longest request head read directly (h11's own limit).
_MAX_HEAD = 16 * 1024
#: The most digits of a Content-Length read directly (h11's ``CONTENT_LENGTH_MAX_DIGITS``).
_MAX_DIGITS = 20


def whole_request(data: bytes, paths: frozenset[str], limit: int
                  ) -> tuple[str, list[tuple[bytes, bytes]], bytes] | None:
    """(path, header fields with lower-case names, body) of ``data`` when it is exactly one
    plain request that ``Direct`` answers: ``POST`` to one of ``paths`` over HTTP/1.1, every
    field well formed, one ``Host``, one ``Content-Length`` (at most ``limit``) and the
    whole body, nothing after it, none of ``_NOT_DIRECT``. None otherwise: then h11 reads
    it as any other request (and answers what is malformed)."""
    end = data.find(b"\r\n\r\n", 0, _MAX_HEAD)
    if end < 0:
        return None
    lines = data[:end].split(b"\r\n")
    first = lines[0]
    if not (first.startswith(b"POST /") and first.endswith(b" HTTP/1.1")):
        return None
    path = first[5:-9].decode("latin-1")
    if path not in paths:
        return None
    fields: list[tuple[bytes, bytes]] = []
    length = None
    hosts = 0
    for line in lines[1:]:
        match = _FIELD.fullmatch(line)
        if match is None:
            return None
        name, value = match[1].lower(), match[2]
        if name == b"content-length":
            # More digits than any length within a limit has are h11's to refuse (and
            # int() refuses more than 4,300 digits with an error of its own).
            if length is not None or not value.isdigit() or len(value) > _MAX_DIGITS:
                return None
            length = int(value)
        elif name == b"host":
            hosts += 1
        elif name in _NOT_DIRECT:
            return None
        fields.append((name, value))
    body = data[end + 4:]
    if hosts != 1 or length is None or length > limit or len(body) != length:
        return None
    return path, fields, body


class Guarded(H11Protocol):
    """uvicorn's h11 protocol with the gate's caps and the two timeouts (module docstring);
    ``protocol(gate)`` gives the class bound to one server's gate.

    A request that came whole in one read and that ``direct`` answers (a signed webhook:
    ``whole_request``) is handed to it without h11, uvicorn's request cycle or the app,
    and its answer written in one piece; the connection reads nothing more until then,
    and goes on as after any response. Anything else goes to h11 as before."""

    gate: ClassVar[Gate]
    direct: ClassVar[Direct | None] = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._client: str | None = None
        self._peer: str | None = None
        self._counted = False
        self._finishing = False
        #: The one deadline of the wait for a request head, and which it is.
        self._deadline: asyncio.TimerHandle | None = None
        self._idle = False
        self._since = 0.0
        self._linger: asyncio.TimerHandle | None = None
        #: A request handed to ``direct`` is being answered; close once it is.
        self._answering = False
        self._close_after = False
        #: Its answer's status and header fields, until its body is sent.
        self._started: Message | None = None

    # --- asyncio.Protocol ---------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        peer = transport.get_extra_info("peername")
        self._peer = peer[0] if isinstance(peer, tuple) and peer else None
        self._client = self.gate.client(self._peer)
        refusal = self.gate.admit(self._client)
        if refusal is not None:
            self.transport = transport
            counters.HTTP_CLOSED.labels(refusal.value).inc()
            log.info("http.limited", peer=self._peer, limit=refusal.value)
            self._finish(self.gate.refusals[refusal])
            return
        self._counted = True
        super().connection_made(transport)
        self._watch()

    def data_received(self, data: bytes) -> None:
        if self._finishing:
            return  # read and dropped while the socket is being closed
        direct = self.direct
        if direct is not None and not self._answering and data.startswith(b"POST /") \
                and self.conn.our_state is h11.IDLE and self.conn.their_state is h11.IDLE \
                and not self.conn.trailing_data[0]:
            request = whole_request(data, direct.paths, direct.limit)
            if request is not None:
                self._answer_directly(direct, *request)
                return
        super().data_received(data)
        self._watch()

    def _answer_directly(self, direct: Direct, path: str, fields: list[tuple[bytes, bytes]],
                         body: bytes) -> None:
        self._unset_keepalive_if_required()
        self._stop_waiting()
        self._answering = True
        self.flow.pause_reading()  # one request at a time, as h11 would
        scope = {"type": "http", "asgi": {"version": "3.0", "spec_version": "2.3"},
                 "http_version": "1.1", "server": self.server, "client": self.client,
                 "scheme": self.scheme, "method": "POST", "root_path": "", "path": path,
                 "raw_path": path.encode("latin-1"), "query_string": b"", "headers": fields,
                 "state": self.app_state.copy()}
        task = self.loop.create_task(self._directly(direct, scope, body))
        task.add_done_callback(self.tasks.discard)
        self.tasks.add(task)  # uvicorn's shutdown waits for it

    async def _directly(self, direct: Direct, scope: dict[str, Any], body: bytes) -> None:
        try:
            await direct.direct(scope, body, self._send_direct)
        finally:
            self._answering = False
            self._started = None
            self.on_response_complete()
            if self._close_after:
                self.transport.close()

    async def _send_direct(self, message: Message) -> None:
        """The answer's two ASGI messages, written as one HTTP/1.1 response."""
        if message["type"] == "http.response.start":
            self._started = message
            return
        started = self._started
        assert started is not None and not message.get("more_body", False)
        status = started["status"]
        head = [b"HTTP/1.1 %d %s\r\n" % (status, _PHRASES[status])]
        for name, value in (*self.server_state.default_headers, *started.get("headers", ())):
            head += (name, b": ", value, b"\r\n")
        head.append(b"\r\n")
        if not self.transport.is_closing():
            self.transport.write(b"".join(head) + message.get("body", b""))

    def connection_lost(self, exc: Exception | None) -> None:
        self._stop_waiting()
        if self._linger is not None:
            self._linger.cancel()
            self._linger = None
        self.gate.closing.discard(self.transport)
        if not self._counted:
            return  # refused: uvicorn never saw it
        self._counted = False
        self.gate.release(self._client)
        super().connection_lost(exc)

    def pause_writing(self) -> None:
        if self._counted:
            super().pause_writing()

    def resume_writing(self) -> None:
        if self._counted:
            super().resume_writing()

    # --- H11Protocol's own ----------------------------------------------------------------

    def handle_events(self) -> None:
        super().handle_events()
        cycle = self.cycle
        if cycle is not None and cycle.transport is self.transport:
            # A new request's, not yet started: its writes go through the cork.
            cycle.transport = cast(asyncio.Transport, Corked(self.transport))

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._watch(after_response=True)

    def send_400_response(self, msg: str) -> None:
        self._finish(answer(400, "not a valid HTTP/1.1 request (or a request head still "
                                 "incomplete past 16 KiB)"))

    def shutdown(self) -> None:
        if self._finishing:
            self.transport.abort()
            return
        if self._answering:
            self._close_after = True  # once its answer is written
            return
        super().shutdown()

    # --- the wait for a request head ------------------------------------------------------

    def _watch(self, after_response: bool = False) -> None:
        """Start, move or stop the deadline of the wait for a request head."""
        if self._finishing or self._answering or self.transport.is_closing() \
                or self.conn.their_state is not h11.IDLE:
            self._stop_waiting()  # a request is being read or answered: no deadline
            return
        now = self.loop.time()
        started = bool(self.conn.trailing_data[0])
        if self._deadline is None:
            self._since = now
            self._idle = after_response and not started
            self._wait(self.gate.idle_timeout if self._idle else self.gate.header_timeout)
        elif self._idle and started:
            self._idle = False  # the next request began: its head by header_timeout
            self._deadline.cancel()
            self._wait(self.gate.header_timeout)

    def _wait(self, seconds: float) -> None:
        self._deadline = self.loop.call_at(self._since + seconds, self._expired)

    def _stop_waiting(self) -> None:
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None

    def _expired(self) -> None:
        self._deadline = None
        if self._finishing or self._answering or self.transport.is_closing() \
                or self.conn.their_state is not h11.IDLE:
            return
        if self._idle:
            counters.HTTP_CLOSED.labels("idle_timeout").inc()
            self._finish(None)
            return
        received = len(self.conn.trailing_data[0])
        counters.HTTP_CLOSED.labels("header_timeout").inc()
        log.info("http.header_timeout", peer=self._peer, received=received,
                 seconds=self.gate.header_timeout)
        self._finish(answer(408, f"no complete request head within "
                                 f"{self.gate.header_timeout:g} s ([http] header_timeout)")
                     if received else None)

    def _finish(self, response: bytes | None) -> None:
        """Answer (or not) and close: a FIN after the answer, then the client's input is
        dropped until it closes or ``LINGER`` s pass."""
        self._finishing = True
        self._stop_waiting()
        if self._counted:
            self.connections.discard(self)  # uvicorn's shutdown need not wait for it
        transport = self.transport
        if response:
            transport.write(response)
        if not response or len(self.gate.closing) >= self.gate.max_connections \
                or not transport.can_write_eof():
            transport.close()
            return
        transport.write_eof()
        self.gate.closing.add(transport)
        self._linger = self.loop.call_later(LINGER, transport.abort)


class Corked:
    """The transport as one request's cycle sees it: the response head is held until the
    next write (the body, or the end of a response without one), so that a small answer
    leaves in one ``send`` and one segment instead of two. ``close`` sends what is held
    first; everything else is the transport's."""

    __slots__ = ("_held", "_transport")

    def __init__(self, transport: asyncio.Transport) -> None:
        self._transport = transport
        self._held: bytes | None = None

    def write(self, data: bytes) -> None:
        held = self._held
        if held is None:
            if data[9:10] != b"1":  # a 100 Continue goes at once: the client waits for it
                self._held = data
            else:
                self._transport.write(data)
            return
        self._held = b""  # the head went out: the rest as it comes
        self._transport.write(held + data if held else data)

    def close(self) -> None:
        if self._held:
            self._transport.write(self._held)
        self._held = b""
        self._transport.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def protocol(gate: Gate, direct: Direct | None = None) -> type[Guarded]:
    """The protocol class for one server (uvicorn makes one instance per connection)."""

    class Bound(Guarded):
        pass

    Bound.gate = gate
    Bound.direct = direct
    return Bound
