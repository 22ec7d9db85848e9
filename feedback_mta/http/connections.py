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
protocol is watched). It overrides the asyncio protocol methods and three of
``H11Protocol``'s own (``on_response_complete`` to start waiting for the next head,
``send_400_response``, ``shutdown``); it reads h11's public state (``conn.their_state``,
``conn.trailing_data``) and takes a socket it is closing out of uvicorn's
``ServerState.connections``, the set uvicorn's shutdown waits on. None of uvicorn's
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
from collections.abc import Iterable
from http import HTTPStatus
from typing import Any, ClassVar, cast

import h11
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


class Guarded(H11Protocol):
    """uvicorn's h11 protocol with the gate's caps and the two timeouts (module docstring);
    ``protocol(gate)`` gives the class bound to one server's gate."""

    gate: ClassVar[Gate]

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
        super().data_received(data)
        self._watch()

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
        super().shutdown()

    # --- the wait for a request head ------------------------------------------------------

    def _watch(self, after_response: bool = False) -> None:
        """Start, move or stop the deadline of the wait for a request head."""
        if self._finishing or self.transport.is_closing() \
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
        if self._finishing or self.transport.is_closing() \
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


def protocol(gate: Gate) -> type[Guarded]:
    """The protocol class for one server (uvicorn makes one instance per connection)."""

    class Bound(Guarded):
        pass

    Bound.gate = gate
    return Bound
