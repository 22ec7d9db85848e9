"""The service: its components started in order and stopped in reverse, on one exit stack.

``Service`` is the one assembly of the flow. Started (``async with Service(config)``), it
checks (or upgrades) the schema, starts the metrics endpoint, the webhook senders, the
outbox, the processors and the intake writer, queues whatever a previous run left
``received``, starts the scheduler, then listens: HTTP (``[http] listen``) and SMTP or
LMTP (unless ``smtp=False``). Stopped, it undoes the same steps backwards: the listeners
close, idle SMTP sessions are told 421, sessions in the middle of DATA and HTTP requests
finish (up to ``drain_timeout``), the intake commits what it holds, the processors finish
the message in hand, the senders stop, the engine is disposed.

Why one exit stack: a step that fails half-way through start-up stops exactly what was
started before it, and a new component is one method in ``_STEPS`` with its own stop,
instead of a line in a start sequence and another in a stop sequence kept in step by hand.

Three ways to run it, one assembly:

* ``run``, for ``feedback-mta serve``: the process's signals (SIGTERM, SIGINT) stop it,
  the start-up heap is frozen, systemd is told READY / STOPPING;
* ``workers.supervise`` runs ``main`` in each forked worker of ``serve --workers N``;
* ``Controller`` runs it on a thread of its own with its own event loop, the way
  aiosmtpd's ``Controller`` runs a test server: ``start()`` returns once it listens (port 0:
  the ports it bound are on the controller), ``stop()`` drains and joins. Tests, and any
  program that embeds the service, use it; it installs no signal handler.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import threading
from collections.abc import Awaitable, Callable
from contextlib import AsyncExitStack
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Engine

from feedback_mta import counters, logs
from feedback_mta.addresses import AddressBook
from feedback_mta.config import EXAMPLE_SECRET, Config
from feedback_mta.edge import sockets
from feedback_mta.edge.intake import Intake
from feedback_mta.edge.limits import Limits
from feedback_mta.edge.smtp import FeedbackHandler, Sessions, protocol_factory
from feedback_mta.edge.tls import TlsError, TlsFiles
from feedback_mta.handlers.base import Settings
from feedback_mta.http.server import HttpServer
from feedback_mta.jobs import review
from feedback_mta.service import heap, metrics, scheduler
from feedback_mta.service.outbox import Outbox
from feedback_mta.service.process import Processor
from feedback_mta.service.processing import ProcessingProcess
from feedback_mta.service.systemd import notify_systemd, start_watchdog, watchdog_interval
from feedback_mta.service.webhooks import Sender
from feedback_mta.store import db

log = logs.get(__name__)


def prepare_database(config: Config) -> Engine:
    # The intake, the processors, the outbox, the webhook senders, HTTP requests' threads.
    engine = db.create_engine(config.database, pool_size=8 + config.processing.workers)
    if config.database.auto_upgrade:
        before, after = db.upgrade(engine)
        if before != after:
            log.info("db.upgraded", before=before, after=after)
    db.check_schema(engine)
    return engine


@dataclass(frozen=True)
class Worker:
    """What a forked worker knows of its place: its index, the shared port, its pipe."""

    index: int
    count: int
    port: int
    fd: int  # write end: "<port>\n" once listening, then "W" for each watchdog round
    http_port: int = 0

    def metrics_port(self, base: int) -> int:
        return base + self.index if base else 0


class ListenError(Exception):
    """A listener could not be bound; the message names the setting."""


class ProcessingExited(Exception):
    """The processing process died: serve stopped too (exit 1, and systemd restarts it)."""


def _listen_error(setting: str, exc: OSError) -> ListenError:
    return ListenError(f"cannot listen on {setting}: {exc.strerror}")


class Service:
    """Every component of one ``serve`` (or one worker of ``serve --workers``).

    ``async with Service(config) as service`` starts them and stops them on leaving;
    ``await service.wait()`` returns once ``stop()`` was called or the processing process
    died (``failure`` then says so). After start-up ``smtp_address``, ``http_address`` and
    ``metrics_address`` are where it listens, each None when that listener is off."""

    def __init__(self, config: Config, *, worker: Worker | None = None, smtp: bool = True,
                 freeze_heap: bool = False) -> None:
        if not smtp and config.http.address is None:
            raise ListenError("--no-smtp leaves nothing to serve: set [http] listen")
        self.config = config
        self.worker = worker
        self.smtp = smtp
        self.freeze_heap = freeze_heap
        #: Scheduled work runs once, in the first (or only) worker.
        self.leader = worker is None or worker.index == 0
        self.book = AddressBook.from_config(config)
        self.smtp_address: tuple[str, int] | None = None
        self.http_address: tuple[str, int] | None = None
        self.metrics_address: tuple[str, int] | None = None
        self.failure: ProcessingExited | None = None
        self._stack = AsyncExitStack()
        self._stopped: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._facts: dict[str, Any] = {}

    # -- the components, in start order; each pushes its own stop --------------------------

    @property
    def _steps(self) -> tuple[Callable[[AsyncExitStack], Awaitable[None]], ...]:
        return (self._database, self._metrics, self._sender, self._outbox, self._processor,
                self._intake, self._recover, self._scheduler, self._http, self._smtp_server,
                self._watchdog)

    async def _database(self, stack: AsyncExitStack) -> None:
        self.tls = self._tls()
        self.engine = await asyncio.to_thread(prepare_database, self.config)
        stack.callback(self.engine.dispose)
        if self.config.security.secret_key == EXAMPLE_SECRET:
            log.warning("config.example_secret",
                        hint="set [security] secret_key to a long random string before real use")

    def _tls(self) -> TlsFiles | None:
        if not self.config.smtp.tls_cert:
            return None
        try:
            return TlsFiles(self.config.smtp.tls_cert, self.config.smtp.tls_key)
        except TlsError as exc:
            raise ListenError(str(exc)) from None

    async def _metrics(self, stack: AsyncExitStack) -> None:
        """First of the listeners, so that /healthz answers during start-up."""
        if self.config.metrics.address is None:
            return
        host, port = self.config.metrics.address
        if self.worker is not None:
            port = self.worker.metrics_port(port)
        try:
            endpoint = metrics.Endpoint(host, port, self.engine).start()
        except OSError as exc:
            raise _listen_error(f"{self.config.metrics.listen} ([metrics] listen)", exc) from None
        stack.callback(endpoint.stop)
        bound_host, bound_port = endpoint.address
        self.metrics_address = (str(bound_host), bound_port)
        log.info("metrics.started", host=bound_host, port=bound_port)

    async def _sender(self, stack: AsyncExitStack) -> None:
        sender = Sender(self.engine, self.config.webhooks)
        sender.start()
        stack.push_async_callback(asyncio.to_thread, sender.stop,
                                  timeout=self.config.webhooks.timeout + 5)

    async def _outbox(self, stack: AsyncExitStack) -> None:
        self.outbox = Outbox(self.engine, self.config.outbound)
        self.outbox.start()
        if self.config.unsendable:
            log.warning("config.no_relay", unsendable=self.config.unsendable,
                        hint="set [outbound] relay: nothing we send leaves without one")
        stack.push_async_callback(asyncio.to_thread, self.outbox.stop)

    async def _processor(self, stack: AsyncExitStack) -> None:
        self.processor: Processor | ProcessingProcess
        if self.config.processing.own_process:
            self.processor = ProcessingProcess(self.config, self.engine,
                                               on_mail=self.outbox.submit,
                                               on_exit=self._processing_exited)
        else:
            self.processor = Processor(self.engine, self.book,
                                       workers=self.config.processing.workers,
                                       settings=Settings.from_config(self.config),
                                       on_mail=self.outbox.submit)
        self.processor.start()
        stack.push_async_callback(asyncio.to_thread, self.processor.stop)

    async def _intake(self, stack: AsyncExitStack) -> None:
        self.intake = Intake(self.engine, on_stored=self.processor.submit)
        self.intake.start()
        stack.push_async_callback(asyncio.to_thread, self.intake.stop)

    async def _recover(self, stack: AsyncExitStack) -> None:
        """What a previous run left: messages still ``received``, mail still due, review
        deadlines that passed while no server ran (kept now, before we listen)."""
        self._facts["recovered"] = await asyncio.to_thread(self.processor.sweep)
        await asyncio.to_thread(self.outbox.flush)
        self._facts["reviews_caught_up"] = (
            await asyncio.to_thread(review.expire_due, self.engine) if self.leader else 0)

    async def _scheduler(self, stack: AsyncExitStack) -> None:
        if not self.leader:
            return
        jobs = scheduler.start(self.config, self.processor, self.outbox, self.engine,
                               self.book)
        stack.push_async_callback(asyncio.to_thread, jobs.shutdown, wait=True)

    async def _http(self, stack: AsyncExitStack) -> None:
        if self.config.http.address is None:
            return
        host, port = self.config.http.address
        try:
            sock = sockets.bound(host, port if self.worker is None else self.worker.http_port,
                                 reuse_port=self.worker is not None)
        except OSError as exc:
            raise _listen_error(f"{self.config.http.listen} ([http] listen)", exc) from None
        http = HttpServer(self.config, self.engine, sock, self.intake, self.outbox.submit)
        await http.start()
        stack.push_async_callback(http.stop)
        self.http_address = http.address
        log.info("http.started", host=http.address[0], port=http.address[1],
                 worker=self.worker.index if self.worker is not None else None)

    async def _smtp_server(self, stack: AsyncExitStack) -> None:
        self.sessions = Sessions(self.config.smtp.max_sessions,
                                 Limits.from_config(self.config.smtp))
        counters.SESSIONS.set_function(lambda: len(self.sessions.active))
        if not self.smtp:
            return
        smtp = self.config.smtp
        handler = FeedbackHandler(self.config, self.book, self.intake)
        try:
            server = await asyncio.get_running_loop().create_server(
                protocol_factory(self.config, handler, self.sessions, self.tls),
                host=smtp.host, port=smtp.port if self.worker is None else self.worker.port,
                reuse_address=True, reuse_port=self.worker is not None, backlog=1024)
        except OSError as exc:
            raise _listen_error(f"{smtp.host}:{smtp.port} ([smtp] host, port)", exc) from None
        stack.push_async_callback(self._drain, server)
        host, port = server.sockets[0].getsockname()[:2]
        self.smtp_address = (host, port)

    async def _drain(self, server: asyncio.Server) -> None:
        """Close the listener, say 421 to idle sessions, let DATA in flight finish."""
        server.close()
        self.sessions.close_idle()
        self._facts["drained"] = await self.sessions.wait_empty(self.config.smtp.drain_timeout)
        await server.wait_closed()

    async def _watchdog(self, stack: AsyncExitStack) -> None:
        ping: Callable[[], object]
        if self.worker is not None:  # the supervisor tells systemd once every worker listens
            ping = functools.partial(os.write, self.worker.fd, b"W")
        else:
            ping = functools.partial(notify_systemd, "WATCHDOG=1")
        task = start_watchdog(self.intake, self.processor, ping,
                              watchdog_interval(any_pid=self.worker is not None))
        if task is not None:
            stack.callback(task.cancel)

    # -- the whole -------------------------------------------------------------------------

    async def __aenter__(self) -> Service:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        async with AsyncExitStack() as stack:
            stack.push_async_callback(self._stopping)  # runs last on the way out
            for step in self._steps:
                await step(stack)
            self._stack = stack.pop_all()  # started: stopped by __aexit__ from now on
        self._started()
        return self

    def _started(self) -> None:
        frozen = heap.freeze_startup() if self.freeze_heap else None
        bound = self.smtp_address or self.http_address
        assert bound is not None
        log.info("server.started", host=bound[0],
                 port=self.smtp_address[1] if self.smtp_address else None,
                 protocol=("lmtp" if self.config.smtp.lmtp else "smtp") if self.smtp else None,
                 domain=self.config.smtp.domain, starttls=self.tls is not None,
                 proxy_protocol=self.config.smtp.proxy_protocol,
                 http_port=self.http_address[1] if self.http_address else None,
                 recovered=self._facts.get("recovered"),
                 reviews_caught_up=self._facts.get("reviews_caught_up"), pid=os.getpid(),
                 processing_pid=(self.processor.pid
                                 if isinstance(self.processor, ProcessingProcess) else None),
                 worker=self.worker.index if self.worker is not None else None,
                 frozen_objects=frozen)

    async def _stopping(self) -> None:
        log.info("server.stopped", drained=self._facts.get("drained", True),
                 stored=getattr(getattr(self, "intake", None), "stored", 0),
                 processed=getattr(getattr(self, "processor", None), "processed", 0),
                 refused_sessions=getattr(getattr(self, "sessions", None), "refused", 0))

    async def __aexit__(self, *exc_info: object) -> None:
        log.info("server.stopping", sessions=len(self.sessions.active))
        await self._stack.aclose()

    def stop(self) -> None:
        """Ask the service to stop (from any thread); ``wait`` then returns."""
        if self._loop is not None and self._stopped is not None:
            self._loop.call_soon_threadsafe(self._stopped.set)

    async def wait(self) -> None:
        """Until ``stop()``, or until the processing process died."""
        assert self._stopped is not None, "start the service first"
        await self._stopped.wait()

    def _processing_exited(self, code: int | None) -> None:
        self.failure = ProcessingExited(f"the processing process exited (code {code}); what "
                                        "it had not finished is processed on the next start")
        self.stop()


def main(config: Config, *, worker: Worker | None = None, smtp: bool = True) -> None:
    """``run`` on libuv's event loop (uvloop) where it is installed, else asyncio's own.

    uvloop runs the loop's own work (sockets, timers, callbacks) in C, where most of an
    SMTP session's time goes besides aiosmtpd's own. Without it (a platform with no
    wheel) nothing else changes."""
    with asyncio.Runner(loop_factory=_loop_factory()) as runner:
        runner.run(run(config, worker=worker, smtp=smtp))


def _loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency, on the platforms it builds on
        return None
    return uvloop.new_event_loop


async def run(config: Config, *, worker: Worker | None = None, smtp: bool = True) -> None:
    """``feedback-mta serve``: serve until SIGTERM/SIGINT; as one of ``serve --workers N``
    when ``worker`` is set; HTTP only when ``smtp`` is False. Only here are the process's
    signals taken and systemd told."""
    import signal

    service = Service(config, worker=worker, smtp=smtp, freeze_heap=True)
    async with service:
        bound = service.smtp_address or service.http_address
        assert bound is not None
        if worker is not None:  # the supervisor tells systemd once every worker listens
            os.write(worker.fd, f"{bound[1]}\n".encode())
        else:
            notify_systemd(f"READY=1\nSTATUS=listening on {bound[0]}:{bound[1]}")
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, service.stop)
        await service.wait()
        if worker is None:
            notify_systemd("STOPPING=1\nSTATUS=draining sessions")
    if service.failure is not None:
        raise service.failure


class Controller:
    """The service on a thread of its own, with its own event loop (as aiosmtpd's
    ``Controller`` runs a test server): ``start()`` returns once every listener is bound
    and raises what start-up raised; ``stop()`` drains, stops every component and joins.
    No signal handler is installed: the embedding program (a test) owns the process."""

    def __init__(self, config: Config, *, smtp: bool = True) -> None:
        self.service = Service(config, smtp=smtp)
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="feedback-mta-service",
                                        daemon=True)

    def start(self, timeout: float = 60) -> Controller:
        self._thread.start()
        if not self._ready.wait(timeout):
            raise TimeoutError(f"the service did not start within {timeout} s")
        if self._error is not None:
            raise self._error
        return self

    def stop(self, timeout: float = 60) -> None:
        self.service.stop()
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise TimeoutError(f"the service did not stop within {timeout} s")

    def _run(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # start-up's error, for start() to raise
            self._error = self._error or exc
        finally:
            self._ready.set()

    async def _serve(self) -> None:
        async with self.service:
            self._ready.set()
            with contextlib.suppress(asyncio.CancelledError):
                await self.service.wait()
