"""Per-client limits: sessions at once, new sessions and messages per minute, by address.

Why: one misbehaving host (a bot, an MTA retrying in a loop, a flood of forged reports)
must not take the session slots and the database time every other sender needs. The
semantics are Postfix anvil(8)'s: a concurrency count, and rates over a minute, each 0 for
"no limit", with exempt networks (Postfix itself in front of us, over LMTP, is one client
for everything it relays). Rates are token buckets: a burst up to the per-minute figure,
refilled evenly, so a sender at the limit is slowed, never locked out for a whole minute.

Pure bookkeeping, no I/O; the SMTP edge turns a refusal into its reply code.
"""

from __future__ import annotations

import enum
import functools
import ipaddress
import time
from collections.abc import Callable, Iterable


class Refusal(enum.Enum):
    SESSIONS = "sessions_per_ip"
    CONNECTION_RATE = "connections_per_minute_per_ip"
    MESSAGE_RATE = "messages_per_minute_per_ip"


class _Rate:
    """Token buckets per address: ``per_minute`` at once, refilled at ``per_minute`` / 60 s."""

    #: Idle buckets are forgotten once there are this many (memory stays bounded under a
    #: flood from many addresses); a bucket idle for a minute is full anyway.
    PRUNE_AT = 10000

    def __init__(self, per_minute: int, clock: Callable[[], float]) -> None:
        self.per_minute = per_minute
        self.clock = clock
        self.buckets: dict[str, tuple[float, float]] = {}

    def take(self, ip: str) -> bool:
        if not self.per_minute:
            return True
        now = self.clock()
        tokens, stamp = self.buckets.get(ip, (float(self.per_minute), now))
        tokens = min(float(self.per_minute), tokens + (now - stamp) * self.per_minute / 60.0)
        if tokens < 1.0:
            self.buckets[ip] = (tokens, now)
            return False
        self.buckets[ip] = (tokens - 1.0, now)
        if len(self.buckets) > self.PRUNE_AT:
            self.buckets = {k: v for k, v in self.buckets.items() if now - v[1] < 60.0}
        return True


Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address


def networks(written: Iterable[str]) -> tuple[Network, ...]:
    """``limit_exempt``'s networks, as SMTP's and HTTP's limits read them."""
    return tuple(ipaddress.ip_network(n, strict=False) for n in written)


def client_address(ip: str) -> Address | None:
    """A peer's address as the limits count it: its zone dropped, an IPv4-mapped IPv6
    address as the IPv4 one it is; None for what is no IP address."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


class Limits:
    def __init__(self, *, sessions_per_ip: int, connections_per_minute: int = 0,
                 messages_per_minute: int = 0, exempt: Iterable[str] = (),
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.sessions_per_ip = sessions_per_ip
        self.exempt = networks(exempt)
        self.open_sessions: dict[str, int] = {}
        #: Reading the address and testing the networks, asked twice per message (session
        #: and MAIL), cost as much as the session's rate buckets: kept per address.
        self._exempt = functools.lru_cache(maxsize=_Rate.PRUNE_AT)(self._find_exempt)
        self._connections = _Rate(connections_per_minute, clock)
        self._messages = _Rate(messages_per_minute, clock)

    @classmethod
    def from_config(cls, smtp) -> Limits:
        return cls(sessions_per_ip=smtp.max_sessions_per_ip,
                   connections_per_minute=smtp.connections_per_minute_per_ip,
                   messages_per_minute=smtp.messages_per_minute_per_ip,
                   exempt=smtp.limit_exempt)

    def is_exempt(self, ip: str | None) -> bool:
        if ip is None:  # a Unix socket, or a PROXY header without addresses (LOCAL)
            return True
        return self._exempt(ip)

    def _find_exempt(self, ip: str) -> bool:
        address = client_address(ip)
        return address is None or any(address in net for net in self.exempt)

    def open(self, ip: str | None) -> Refusal | None:
        """A new session from ``ip``: None (counted; ``close`` it later) or why not."""
        if self.is_exempt(ip):
            return None
        assert ip is not None
        if self.open_sessions.get(ip, 0) >= self.sessions_per_ip:
            return Refusal.SESSIONS
        if not self._connections.take(ip):
            return Refusal.CONNECTION_RATE
        self.open_sessions[ip] = self.open_sessions.get(ip, 0) + 1
        return None

    def close(self, ip: str | None) -> None:
        if ip is None or ip not in self.open_sessions:
            return
        left = self.open_sessions[ip] - 1
        if left > 0:
            self.open_sessions[ip] = left
        else:
            del self.open_sessions[ip]

    def message(self, ip: str | None) -> Refusal | None:
        """A new transaction (MAIL FROM) from ``ip``: None, or why not."""
        if self.is_exempt(ip) or self._messages.take(ip):  # type: ignore[arg-type]
            return None
        return Refusal.MESSAGE_RATE
