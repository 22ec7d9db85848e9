"""Where a webhook may be sent: never inside (DESIGN.md, "HTTP").

A subscription's URL is the platform's to choose, so it is hostile: it may name the cloud's
metadata service (``169.254.169.254``), loopback spelled so a string check misses it
(``http://0x7f000001/``, ``http://2130706433/``, ``http://127.1/``, ``[::ffff:127.0.0.1]``),
our own metrics port, a private network, or carry ``user:pass@``. ``check_url`` refuses those
when a subscription is added; ``refusal`` is asked again of every address a name resolves to
when a delivery connects (``service.webhooks``), so a name that resolves somewhere else later
(DNS rebinding) is refused too. ``[webhooks] allow_private_networks`` lets tests and local
receivers through; nothing else does.

Pure but for ``resolve`` (the system's resolver, bounded in time).
"""

from __future__ import annotations

import ipaddress
import re
import socket
import threading
from urllib.parse import SplitResult, urlsplit

Address = ipaddress.IPv4Address | ipaddress.IPv6Address

#: How long ``check_url`` waits for a name's addresses when a subscription is added.
ADD_RESOLVE_SECONDS = 2.0
_NAT64 = ipaddress.IPv6Network("64:ff9b::/96")
#: What ``inet_aton`` may take for an IPv4 literal in the forms URLs allow: hex, octal,
#: decimal, fewer than four parts (``0x7f000001``, ``0177.0.0.1``, ``2130706433``, ``127.1``).
_NUMERIC_HOST = re.compile(r"^[0-9a-fx.]+$", re.IGNORECASE)


class Refused(ValueError):
    """A URL or address a webhook may not be sent to (the message says why)."""


def literal_address(host: str) -> Address | None:
    """The address ``host`` is written as, in any form the resolver would take; None for a
    name."""
    host = host.strip("[]").split("%", 1)[0]
    try:
        return ipaddress.ip_address(host)
    except ValueError:
        pass
    if _NUMERIC_HOST.match(host):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(host))
        except OSError:
            return None
    return None


def refusal(address: Address) -> str | None:
    """Why a webhook may not be sent to ``address`` (``"loopback"``, ``"link-local"``, ...);
    None when it is a public address."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or (
            ipaddress.IPv4Address(int(address) & 0xFFFFFFFF) if address in _NAT64 else None)
        if embedded is not None:
            return refusal(embedded)
    for reason, hit in (("unspecified", address.is_unspecified),
                        ("loopback", address.is_loopback),
                        ("link-local", address.is_link_local),
                        ("multicast", address.is_multicast),
                        ("reserved", address.is_reserved),
                        ("private", address.is_private)):
        if hit:
            return reason
    return None if address.is_global else "non-public"


def check_address(address: Address, host: str, *, allow_private: bool) -> None:
    """Refused (naming the host and why) unless ``address`` is public or private ones are
    allowed."""
    reason = None if allow_private else refusal(address)
    if reason is not None:
        shown = host if host == str(address) else f"{host} ({address})"
        raise Refused(f"{shown} is not a public address ({reason}); webhooks go only to "
                      "public ones ([webhooks] allow_private_networks)")


def resolve(host: str, port: int, timeout: float) -> list[Address]:
    """The addresses ``host`` resolves to, waiting at most ``timeout`` seconds (the system's
    resolver cannot be told when to give up: it is asked on a thread of its own). OSError
    when it does not answer in time or has no address."""
    literal = literal_address(host)
    if literal is not None:
        return [literal]
    answer: list[object] = []

    def ask() -> None:
        try:
            answer.append(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
        except OSError as exc:
            answer.append(exc)

    thread = threading.Thread(target=ask, name="webhooks-resolve", daemon=True)
    thread.start()
    thread.join(max(0.0, timeout))
    if not answer:
        raise OSError(f"no answer from the resolver for {host} in {timeout:g} s")
    found = answer[0]
    if isinstance(found, OSError):
        raise found
    addresses: list[Address] = []
    for _family, _type, _proto, _name, sockaddr in found:  # type: ignore[attr-defined]
        address = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
        if address not in addresses:
            addresses.append(address)
    if not addresses:
        raise OSError(f"no address for {host}")
    return addresses


def check_url(url: str, *, allow_private: bool) -> SplitResult:
    """``url`` split, when a webhook may be sent to it: http(s), a host, no ``user:pass@``,
    and (unless private networks are allowed) a host that is, or resolves now to, public
    addresses only. A name that does not resolve now is let through: each delivery resolves
    it again and checks what it finds."""
    try:
        parts = urlsplit(url.strip())
        port = parts.port
    except ValueError as exc:
        raise Refused(f"not an http(s) URL: {url!r} ({exc})") from None
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Refused(f"not an http(s) URL: {url!r}")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        raise Refused("a webhook URL may not carry a user name or password (user:pass@); "
                      "the signature is what authenticates us")
    if allow_private:
        return parts
    host = parts.hostname
    try:
        addresses = resolve(host, port or (443 if parts.scheme == "https" else 80),
                            ADD_RESOLVE_SECONDS)
    except OSError:
        return parts
    for address in addresses:
        check_address(address, host, allow_private=False)
    return parts
