"""The listening sockets made by hand (the HTTP listener, the ports of ``--workers``)."""

from __future__ import annotations

import asyncio
import socket

import pytest

from feedback_mta.edge import sockets


@pytest.mark.parametrize("host", ["127.0.0.1", "::1"])
def test_accepted_connections_send_at_once(host):
    """Nagle's algorithm is off on what the listener accepts (asyncio sets TCP_NODELAY only
    when the socket says it is TCP): a response written in two parts must not wait for
    the client's delayed ACK (it cost 40 ms per HTTP request)."""
    try:
        sock = sockets.bound(host, 0)
    except OSError as exc:  # no IPv6 on this machine
        pytest.skip(f"cannot bind {host}: {exc}")
    seen: list[int] = []

    async def main() -> None:
        accepted = asyncio.Event()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport):  # type: ignore[override]
                raw = transport.get_extra_info("socket")
                seen.append(raw.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                accepted.set()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        port = sock.getsockname()[1]
        _, writer = await asyncio.open_connection(host, port)
        await asyncio.wait_for(accepted.wait(), 5)
        writer.close()
        server.close()
        await server.wait_closed()

    asyncio.run(main())
    assert seen and seen[0] != 0
