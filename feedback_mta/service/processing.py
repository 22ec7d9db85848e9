"""The processing process: parse, classify and act beside ``serve``, so each has a core.

CPython runs one thread at a time per process. In one process the SMTP sessions (the
event loop), the intake writer and the processors take turns on one core, and processing
is most of the work (parse, classify, the handler's transaction). With ``[processing]
own_process`` (the default) ``serve`` starts one more process for the processors
(``process.Processor``) and nothing else; ``serve --workers N`` starts one per worker.

* serve -> processing, over a socket pair: the ids the intake committed and the sweep
  found. They are hints: a message stays ``received`` until a processor commits its
  outcome, and the sweep finds whatever a lost hint left.
* processing -> serve, once per batch: each finished message (for the metrics), each
  committed audit event (for the listeners: complaint counts, the webhook senders, woken
  at once as in one process) and the outbound mail queued (for the outbox).
* Stopping: ``serve`` says stop once the intake committed what it held; the batch in
  hand is finished, what is queued stays ``received`` for the next start. The processing
  process ignores SIGTERM and SIGINT (systemd and a terminal's Ctrl-C send them to
  ``serve``, which decides) and is killed with ``serve`` if that dies (PR_SET_PDEATHSIG).
  If it dies first, ``serve`` stops and exits 1, and systemd restarts both.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import threading
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from sqlalchemy.engine import Engine

from feedback_mta import logs
from feedback_mta.actions import audit
from feedback_mta.addresses import AddressBook
from feedback_mta.config import Config
from feedback_mta.handlers.base import Settings
from feedback_mta.service import heap, process
from feedback_mta.service.systemd import die_with_parent
from feedback_mta.store import db

log = logs.get(__name__)

#: How long ``stop`` waits for the batch in hand before it kills the process.
STOP_TIMEOUT = 30.0

# What the processing process relays, one list per batch:
_DONE, _EVENT, _MAIL = "done", "event", "mail"


class ProcessingProcess:
    """``serve``'s side: the same face as ``process.Processor`` (``submit``, ``sweep``,
    ``alive``, ``processed``), with the processors in a process of their own."""

    def __init__(self, config: Config, engine: Engine, *,
                 on_mail: Callable[[list[int]], None] | None = None,
                 on_exit: Callable[[int | None], None] | None = None) -> None:
        self._engine = engine
        self._on_mail = on_mail
        self._on_exit = on_exit
        self._send_lock = threading.Lock()
        self._stopping = False
        self.processed = 0
        context = multiprocessing.get_context("spawn")  # a fresh interpreter: no fork in threads
        self._conn, child = context.Pipe()
        self._process = context.Process(
            target=_main, args=(config, logs.settings(), child, os.getpid()),
            name="feedback-mta-processing", daemon=True)
        self._child_end = child
        self._relay = threading.Thread(target=self._listen, name="processing-relay",
                                       daemon=True)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    def start(self) -> None:
        self._process.start()
        self._child_end.close()
        self._relay.start()

    @property
    def alive(self) -> bool:
        return self._process.is_alive() and self._relay.is_alive()

    def submit(self, ids: list[int]) -> None:
        if ids:
            self._send(list(ids))

    def sweep(self) -> int:
        """Hand over every stored message still ``received`` (see ``Processor.sweep``)."""
        ids = process.received_ids(self._engine)
        self.submit(ids)
        return len(ids)

    def stop(self, timeout: float = STOP_TIMEOUT) -> None:
        """Let the batch in hand finish, hear the last of it, and end the process."""
        self._stopping = True
        self._send(None)
        self._relay.join(timeout)
        self._process.join(timeout if not self._relay.is_alive() else 0.1)
        if self._process.is_alive():
            log.warning("processing.killed", pid=self._process.pid)
            self._process.kill()
            self._process.join()
        self._conn.close()

    def _send(self, item: list[int] | None) -> None:
        # Gone: its exit is reported, and the sweep recovers what it did not take.
        with self._send_lock, contextlib.suppress(OSError, ValueError):
            self._conn.send(item)

    def _listen(self) -> None:
        """The relay thread: what the processing process did, told here."""
        while True:
            try:
                batch = self._conn.recv()
            except (EOFError, OSError):
                break
            try:
                self._heard(batch)
            except Exception:  # a listener's bug must not end the relay
                log.exception("processing.relay_error")
        if not self._stopping:
            self._process.join(5)
            code = self._process.exitcode
            log.error("processing.exited", pid=self._process.pid, code=code)
            if self._on_exit is not None:
                self._on_exit(code)

    def _heard(self, batch: list[tuple[Any, ...]]) -> None:
        for item in batch:
            if item[0] == _DONE:
                process.count(item[1], item[2], item[3])
                self.processed += 1
            elif item[0] == _EVENT:
                audit.hear(item[1], item[2])
            elif item[0] == _MAIL and self._on_mail is not None:
                self._on_mail(item[1])


class _Relay:
    """The processing process's side of the socket: what its processors did, sent to
    ``serve`` after each batch."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._lock = threading.Lock()
        self._pending: list[tuple[Any, ...]] = []

    def count(self, kind: str, state: str, seconds: float) -> None:
        self._add((_DONE, kind, state, seconds))

    def event(self, action: str, fields: dict[str, Any]) -> None:
        self._add((_EVENT, action, fields))

    def mail(self, ids: list[int]) -> None:
        self._add((_MAIL, list(ids)))

    def _add(self, item: tuple[Any, ...]) -> None:
        with self._lock:
            self._pending.append(item)

    def flush(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
            if batch:
                with contextlib.suppress(OSError, ValueError):  # serve is gone; we are next
                    self._conn.send(batch)


class _RelayingProcessor(process.Processor):
    def __init__(self, relay: _Relay, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._relay = relay

    def run_batch(self, batch: list[int]) -> None:
        try:
            super().run_batch(batch)
        finally:
            self._relay.flush()


def _main(config: Config, log_settings: dict, conn: Connection, parent: int) -> None:
    """The processing process: processors fed by ``serve`` until it says stop."""
    die_with_parent(parent, signal.SIGKILL)
    os.nice(config.processing.nice)  # the answers to clients go first (``[processing] nice``)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, signal.SIG_IGN)
    logs.configure_as(log_settings)
    engine = db.create_engine(config.database, pool_size=2 + config.processing.workers)
    relay = _Relay(conn)
    audit.listen(relay.event)
    processor = _RelayingProcessor(
        relay, engine, AddressBook.from_config(config), workers=config.processing.workers,
        settings=Settings.from_config(config), on_mail=relay.mail, counter=relay.count)
    processor.start()
    log.info("processing.started", pid=os.getpid(), frozen_objects=heap.freeze_startup())
    try:
        while True:
            try:
                ids = conn.recv()
            except (EOFError, OSError):  # serve is gone
                break
            if ids is None:
                break
            processor.submit(ids)
    finally:
        processor.stop()
        relay.flush()
        conn.close()
        engine.dispose()
