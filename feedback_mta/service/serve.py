"""``feedback-mta serve``: wires the flow together and runs it until SIGTERM / SIGINT.

Start: check (or upgrade) the schema, start the intake writer, the processors and the
webhook senders, queue whatever a previous run left ``received``, start the scheduler, then
listen: SMTP (unless ``--no-smtp``) and HTTP (``[http] listen``). Stop: close the
listeners, tell idle sessions 421, let sessions in the middle of DATA and HTTP requests
finish (up to ``drain_timeout``), commit what the intake holds, finish the message in
hand, exit 0.
"""

from __future__ import annotations

import asyncio
import functools
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

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


def prepare_database(config: Config):
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


def main(config: Config, *, worker: Worker | None = None, smtp: bool = True) -> None:
    """``run`` on libuv's event loop (uvloop) where it is installed, else asyncio's own.

    uvloop runs the loop's own work (sockets, timers, callbacks) in C, where most of an
    SMTP session's time goes besides aiosmtpd's own. Without it (a platform with no
    wheel) nothing else changes."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - a dependency, on the platforms it builds on
        factory = None
    else:
        factory = uvloop.new_event_loop
    with asyncio.Runner(loop_factory=factory) as runner:
        runner.run(run(config, worker=worker, smtp=smtp))


async def run(config: Config, *, worker: Worker | None = None, smtp: bool = True) -> None:
    """Serve until SIGTERM/SIGINT; as one of ``serve --workers N`` when ``worker`` is set;
    HTTP only when ``smtp`` is False."""
    if not smtp and config.http.address is None:
        raise ListenError("--no-smtp leaves nothing to serve: set [http] listen")
    tls = None
    if config.smtp.tls_cert:
        try:
            tls = TlsFiles(config.smtp.tls_cert, config.smtp.tls_key)
        except TlsError as exc:
            raise ListenError(str(exc)) from None
    engine = prepare_database(config)
    endpoint = None
    if config.metrics.address is not None:  # first, so /healthz answers during start-up
        try:
            host, port = config.metrics.address
            if worker is not None:
                port = worker.metrics_port(port)
            endpoint = metrics.Endpoint(host, port, engine).start()
        except OSError as exc:
            raise ListenError(f"cannot listen on {config.metrics.listen} ([metrics] listen): "
                              f"{exc.strerror}") from None
        log.info("metrics.started", host=endpoint.address[0], port=endpoint.address[1])
    book = AddressBook.from_config(config)
    if config.security.secret_key == EXAMPLE_SECRET:
        log.warning("config.example_secret",
                    hint="set [security] secret_key to a long random string before real use")
    outbox = Outbox(engine, config.outbound)
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    exited: list[int | None] = []  # the processing process's exit code, if it died

    def processing_exited(code: int | None) -> None:
        exited.append(code)
        loop.call_soon_threadsafe(stop.set)

    processor: Processor | ProcessingProcess
    if config.processing.own_process:
        processor = ProcessingProcess(config, engine, on_mail=outbox.submit,
                                      on_exit=processing_exited)
    else:
        processor = Processor(engine, book, workers=config.processing.workers,
                              settings=Settings.from_config(config), on_mail=outbox.submit)
    intake = Intake(engine, on_stored=processor.submit)
    sender = Sender(engine, config.webhooks)
    outbox.start()
    processor.start()
    intake.start()
    sender.start()
    recovered = processor.sweep()
    outbox.flush()
    # Scheduled work runs once, in the first (or only) worker.
    leader = worker is None or worker.index == 0
    # Deadlines that passed while no server ran are kept now, before we listen.
    caught_up = await asyncio.to_thread(review.expire_due, engine) if leader else 0
    jobs = scheduler.start(config, processor, outbox, engine, book) if leader else None

    http = None
    if config.http.address is not None:
        host, port = config.http.address
        try:
            sock = sockets.bound(host, port if worker is None else worker.http_port,
                                 reuse_port=worker is not None)
        except OSError as exc:
            raise ListenError(f"cannot listen on {config.http.listen} ([http] listen): "
                              f"{exc.strerror}") from None
        http = HttpServer(config, engine, sock, intake, outbox.submit)
        await http.start()
        log.info("http.started", host=http.address[0], port=http.address[1],
                 worker=worker.index if worker is not None else None)

    sessions = Sessions(config.smtp.max_sessions, Limits.from_config(config.smtp))
    counters.SESSIONS.set_function(lambda: len(sessions.active))
    handler = FeedbackHandler(config, book, intake)
    server = None
    if smtp:
        try:
            server = await loop.create_server(
                protocol_factory(config, handler, sessions, tls),
                host=config.smtp.host, port=config.smtp.port if worker is None else worker.port,
                reuse_address=True, reuse_port=worker is not None, backlog=1024)
        except OSError as exc:
            raise ListenError(f"cannot listen on {config.smtp.host}:{config.smtp.port} "
                              f"([smtp] host, port): {exc.strerror}") from None
        bound = server.sockets[0].getsockname()
    else:
        assert http is not None
        bound = http.address
    frozen = heap.freeze_startup()
    log.info("server.started", host=bound[0], port=bound[1] if smtp else None,
             protocol=("lmtp" if config.smtp.lmtp else "smtp") if smtp else None,
             domain=config.smtp.domain, starttls=tls is not None,
             proxy_protocol=config.smtp.proxy_protocol,
             http_port=http.address[1] if http is not None else None,
             recovered=recovered, reviews_caught_up=caught_up, pid=os.getpid(),
             processing_pid=processor.pid if isinstance(processor, ProcessingProcess) else None,
             worker=worker.index if worker is not None else None, frozen_objects=frozen)
    ping: Callable[[], object]
    if worker is not None:  # the supervisor tells systemd once every worker listens
        os.write(worker.fd, f"{bound[1]}\n".encode())
        ping = functools.partial(os.write, worker.fd, b"W")
    else:
        notify_systemd(f"READY=1\nSTATUS=listening on {bound[0]}:{bound[1]}")
        ping = functools.partial(notify_systemd, "WATCHDOG=1")
    watchdog = start_watchdog(intake, processor, ping,
                               watchdog_interval(any_pid=worker is not None))

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()

    log.info("server.stopping", sessions=len(sessions.active))
    if worker is None:
        notify_systemd("STOPPING=1\nSTATUS=draining sessions")
    if watchdog is not None:
        watchdog.cancel()
    if server is not None:
        server.close()
    sessions.close_idle()
    drained = await sessions.wait_empty(config.smtp.drain_timeout)
    if server is not None:
        await server.wait_closed()
    if http is not None:
        await http.stop()
    if jobs is not None:
        jobs.shutdown(wait=True)
    if endpoint is not None:
        endpoint.stop()
    await asyncio.to_thread(intake.stop)
    await asyncio.to_thread(processor.stop)
    await asyncio.to_thread(outbox.stop)
    await asyncio.to_thread(sender.stop, timeout=config.webhooks.timeout + 5)
    engine.dispose()
    log.info("server.stopped", drained=drained, stored=intake.stored,
             processed=processor.processed, refused_sessions=sessions.refused)
    if exited:
        raise ProcessingExited(f"the processing process exited (code {exited[0]}); what it "
                               "had not finished is processed on the next start")
