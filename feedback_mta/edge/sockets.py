"""Listening sockets made by hand, where the event loop's ``create_server`` cannot be used:
the HTTP listener handed to uvicorn, and the ports ``serve --workers`` holds for its
workers."""

from __future__ import annotations

import socket


def bound(host: str, port: int, *, reuse_port: bool = False,
          listen: bool = True) -> socket.socket:
    """A TCP socket bound to ``host:port`` (port 0: a free one), listening unless told not
    to. ``reuse_port`` (SO_REUSEPORT) lets the workers of ``serve --workers`` bind the same
    port, the kernel spreading connections over them; a socket that is bound but does not
    listen holds the port and gets no connections."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP said out loud: asyncio turns Nagle's algorithm off (TCP_NODELAY) only on
    # sockets whose proto says TCP, and accepted sockets copy it from this one. With proto
    # 0, a response written in two parts (headers, body) waited for the client's delayed
    # ACK: 40 ms on every HTTP request.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    if reuse_port:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    sock.bind((host, port))
    if listen:
        sock.listen(1024)
        sock.setblocking(False)
    return sock
