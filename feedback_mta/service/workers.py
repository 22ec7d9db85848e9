"""``serve --workers N``: N server processes on one port, for more than one core.

CPython runs one thread at a time per process, so one ``serve`` is bound to one core: the
SMTP event loop, the intake writer and the processors share it. With ``--workers N`` a
supervisor upgrades the schema once, then forks N workers. Each binds the SMTP port with
``SO_REUSEPORT`` (the kernel spreads new connections across them) and has its own event
loop, intake, processors and database engine; nothing is shared but the database, where
messages are claimed with a conditional UPDATE exactly as between nodes (``process``).

* Worker 0 alone runs the scheduler (sweeps, review deadlines, digests, retention), so
  jobs are not run N times; its sweep also picks up what another worker left.
* ``[metrics] listen`` with port P: worker i serves on P + i (port 0: each picks one).
  Counters are per worker; sum them in Prometheus (``sum without (instance)``).
* systemd: the supervisor is the main PID. It says READY=1 when every worker listens,
  and WATCHDOG=1 only while every worker reports in (its loop turns, its threads live).
* A worker that dies takes the service down: the supervisor stops the others (they
  drain) and exits 1, and systemd restarts it; what was stored is recovered on start.
  SIGTERM/SIGINT are passed to every worker, which drain as a single ``serve`` does.
"""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import socket
import time

from feedback_mta import logs
from feedback_mta.config import Config
from feedback_mta.edge.sockets import bound
from feedback_mta.service.systemd import die_with_parent, notify_systemd, watchdog_interval

log = logs.get(__name__)

#: How long the supervisor waits for every worker to listen.
START_TIMEOUT = 120.0


def supervise(config: Config, count: int, *, smtp: bool = True) -> int:
    """Run ``count`` workers until SIGTERM/SIGINT (exit 0) or one of them dies (exit 1)."""
    from feedback_mta.service import serve  # the workers' code; imported before forking

    serve.prepare_database(config).dispose()  # migrate once, not N times at once
    # The ports, bound but not listening: learnt when 0, and held until every worker has
    # bound its own (a bound socket that does not listen gets no connections).
    held: list[socket.socket] = []
    port = http_port = 0
    if config.http.address is not None:
        try:
            held.append(bound(*config.http.address, reuse_port=True, listen=False))
        except OSError as exc:
            raise serve.ListenError(f"cannot listen on {config.http.listen} ([http] listen): "
                                    f"{exc.strerror}") from None
        http_port = port = held[-1].getsockname()[1]
    if smtp:
        try:
            held.append(bound(config.smtp.host, config.smtp.port, reuse_port=True,
                              listen=False))
        except OSError as exc:
            raise serve.ListenError(f"cannot listen on {config.smtp.host}:{config.smtp.port} "
                                    f"([smtp] host, port): {exc.strerror}") from None
        port = held[-1].getsockname()[1]
    elif not held:
        raise serve.ListenError("--no-smtp leaves nothing to serve: set [http] listen")
    children: dict[int, tuple[int, int]] = {}  # pid -> (index, read end)
    supervisor = os.getpid()
    for index in range(count):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            die_with_parent(supervisor)
            logs.bind_process(worker=index)
            for sock in held:
                sock.close()
            os.close(read)
            for _, other in children.values():
                os.close(other)
            code = 0
            try:
                serve.main(config, worker=serve.Worker(index, count, port, write, http_port),
                           smtp=smtp)
            except BaseException as exc:  # reported; the exit code tells the supervisor
                log.error("server.worker_failed", worker=index, error=logs.error_line(exc))
                code = 1
            os._exit(code)
        os.close(write)
        children[pid] = (index, read)
    return _Supervisor(children, held, port).run()


class _Supervisor:
    def __init__(self, children: dict[int, tuple[int, int]], held: list[socket.socket],
                 port: int) -> None:
        self.children = children
        self.held = held
        self.port = port
        self.selector = selectors.DefaultSelector()
        self.listening: set[int] = set()
        self.pinged: dict[int, float] = {}
        self.stopping = False
        self.failed = False
        wake_read, self.wake = os.pipe()
        os.set_blocking(self.wake, False)
        self.selector.register(wake_read, selectors.EVENT_READ, None)
        for pid, (_, fd) in children.items():
            self.selector.register(fd, selectors.EVENT_READ, pid)

    def run(self) -> int:

        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, self._on_signal)
        interval = watchdog_interval()
        started = time.monotonic()
        last_ping = 0.0
        while self.children:
            for key, _ in self.selector.select(timeout=0.5):
                if key.data is None:
                    os.read(key.fd, 512)
                else:
                    self._read(key.data, key.fd)
            self._reap()
            now = time.monotonic()
            if self.held and len(self.listening) == len(self.children):
                for sock in self.held:
                    sock.close()
                self.held = []
                log.info("server.workers_started", port=self.port, workers=len(self.children),
                         pids=sorted(self.children))
                notify_systemd(f"READY=1\nSTATUS=listening on port {self.port} with "
                               f"{len(self.children)} workers")
            if self.held and now - started > START_TIMEOUT and not self.stopping:
                log.error("server.workers_not_ready", listening=len(self.listening),
                          workers=len(self.children))
                self._stop(failed=True)
            if (interval and now - last_ping >= interval and not self.stopping
                    and self.children and all(now - self.pinged.get(pid, 0) < 2 * interval
                                              for pid in self.children)):
                notify_systemd("WATCHDOG=1")
                last_ping = now
        return 1 if self.failed else 0

    def _on_signal(self, signum, _frame) -> None:
        self.stopping = True
        for pid in self.children:
            with _gone():
                os.kill(pid, signal.SIGTERM)
        with _gone():
            os.write(self.wake, b"x")

    def _stop(self, failed: bool) -> None:

        self.failed = self.failed or failed
        if not self.stopping:
            notify_systemd("STOPPING=1\nSTATUS=a worker exited; stopping the others")
        self._on_signal(signal.SIGTERM, None)

    def _read(self, pid: int, fd: int) -> None:
        data = os.read(fd, 512)
        if not data:
            self.selector.unregister(fd)
            return
        if b"\n" in data:
            self.listening.add(pid)
        self.pinged[pid] = time.monotonic()

    def _reap(self) -> None:
        for pid in list(self.children):
            done, status = os.waitpid(pid, os.WNOHANG)
            if not done:
                continue
            index, fd = self.children.pop(pid)
            with _gone():
                self.selector.unregister(fd)
            os.close(fd)
            code = os.waitstatus_to_exitcode(status)
            if not self.stopping or code != 0:
                log.error("server.worker_exited", worker=index, pid=pid, code=code)
                self._stop(failed=True)


def _gone() -> contextlib.suppress:
    """Ignore what fails because a process or a pipe is already gone."""
    return contextlib.suppress(OSError, KeyError, ValueError)
