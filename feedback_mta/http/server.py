"""uvicorn on the service's own event loop, beside the SMTP listener.

``serve`` owns the process's signals and its shutdown order, so uvicorn is started and
stopped through its ``startup``/``shutdown`` steps rather than its ``serve`` (which would
take SIGTERM for itself). Connections are HTTP's own (``connections``: ``[http]``
header and idle timeouts, ``max_connections`` and ``max_connections_per_ip``, answers as
problem+json); bodies up to ``[smtp] max_message_size`` (413).
"""

from __future__ import annotations

import asyncio
import math
import socket
from collections.abc import Callable

import uvicorn
from sqlalchemy.engine import Engine

from feedback_mta.config import Config
from feedback_mta.edge.intake import Intake
from feedback_mta.http import connections
from feedback_mta.http.app import create_app


class HttpServer:
    def __init__(self, config: Config, engine: Engine, sock: socket.socket,
                 intake: Intake | None = None,
                 on_mail: Callable[[list[int]], None] = lambda ids: None) -> None:
        self.sock = sock
        self.gate = connections.Gate.from_config(config.http)
        app = create_app(config, engine, intake, on_mail)
        protocol = connections.protocol(self.gate, app.direct)
        #: Work an answer leaves behind (the review page's sign-ins): started and stopped
        #: with the server.
        self.sign_ins = app.services.sign_ins
        #: The registrations' writer: started with the server, stopped (what is queued
        #: committed first) once no request is left.
        self.together = app.services.together
        self.config = uvicorn.Config(
            app, lifespan="off", log_config=None,
            log_level="warning", access_log=False,
            # The connections' own protocol keeps the caps and both timeouts; uvicorn's
            # keep-alive timer is set past them (it never fires first), its
            # limit_concurrency (a plain-text 503 counting idle sockets) is off, and no
            # WebSocket upgrade hands a socket to a protocol that does not count it.
            http=protocol, ws="none", limit_concurrency=None,
            timeout_keep_alive=math.ceil(config.http.header_timeout) + 1,
            timeout_graceful_shutdown=int(config.smtp.drain_timeout),
            server_header=False, proxy_headers=False)
        self.server = uvicorn.Server(self.config)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        self.sign_ins.start()
        self.together.start()
        await self.server.startup(sockets=[self.sock])

    async def stop(self) -> None:
        self.server.should_exit = True
        self.gate.end_closing()
        await self.server.shutdown(sockets=[self.sock])
        await asyncio.to_thread(self.together.stop)
        await asyncio.to_thread(self.sign_ins.stop)  # what was asked for is still sent
