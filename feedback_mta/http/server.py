"""uvicorn on the service's own event loop, beside the SMTP listener.

``serve`` owns the process's signals and its shutdown order, so uvicorn is started and
stopped through its ``startup``/``shutdown`` steps rather than its ``serve`` (which would
take SIGTERM for itself). Limits follow SMTP's: at most ``[smtp] max_sessions``
connections at once (503 past that), bodies up to ``[smtp] max_message_size`` (413).
"""

from __future__ import annotations

import socket
from collections.abc import Callable

import uvicorn
from sqlalchemy.engine import Engine

from feedback_mta.config import Config
from feedback_mta.edge.intake import Intake
from feedback_mta.http.app import create_app


class HttpServer:
    def __init__(self, config: Config, engine: Engine, sock: socket.socket,
                 intake: Intake | None = None,
                 on_mail: Callable[[list[int]], None] = lambda ids: None) -> None:
        self.sock = sock
        self.config = uvicorn.Config(
            create_app(config, engine, intake, on_mail), lifespan="off", log_config=None,
            log_level="warning",
            access_log=False, limit_concurrency=config.smtp.max_sessions,
            timeout_keep_alive=5, timeout_graceful_shutdown=int(config.smtp.drain_timeout),
            server_header=False, proxy_headers=False)
        self.server = uvicorn.Server(self.config)

    @property
    def address(self) -> tuple[str, int]:
        host, port = self.sock.getsockname()[:2]
        return host, port

    async def start(self) -> None:
        self.config.load()
        self.server.lifespan = self.config.lifespan_class(self.config)
        await self.server.startup(sockets=[self.sock])

    async def stop(self) -> None:
        self.server.should_exit = True
        await self.server.shutdown(sockets=[self.sock])
