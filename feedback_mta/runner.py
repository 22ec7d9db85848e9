"""One base for the service's worker threads (Mailman's Runner, in threads).

The intake writer, the processors and the outbox each take items from a queue on threads of
their own. ``Runner`` owns that part once: the queue, starting, liveness (the watchdog asks),
stopping (draining what is queued, or dropping it when whatever is dropped is recovered from
the database anyway), and batching: a thread waits for one item, then takes what else
arrived meanwhile, so batches grow with the load and never add delay. A subclass says only
what to do with one batch (``run_batch``) and, if it wants its own log line, what to say when
that raised (``failed``).
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any, Generic, TypeVar

from feedback_mta import logs

log = logs.get(__name__)

T = TypeVar("T")

_STOP = object()


def batches(source: queue.Queue[object], limit: int, stop: object) -> Iterator[list[object]]:
    """Lists of up to ``limit`` items: each waits for one, then takes what else is already
    queued. Ends at the ``stop`` sentinel, after the batch that came before it."""
    while True:
        item = source.get()
        if item is stop:
            return
        batch = [item]
        while len(batch) < limit:
            try:
                item = source.get_nowait()
            except queue.Empty:
                break
            if item is stop:
                yield batch
                return
            batch.append(item)
        yield batch


class LoopPromise(Generic[T]):
    """An asyncio future of a request waiting on a runner, resolved from the runner's
    thread on the request's loop. (``asyncio.wrap_future`` of a ``concurrent.futures.Future``
    chains two futures and their callbacks for every item.)"""

    __slots__ = ("_future", "_loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, future: asyncio.Future[T]) -> None:
        self._loop = loop
        self._future = future

    def set_running_or_notify_cancel(self) -> bool:
        return not self._future.done()  # done: the request gave up waiting

    def set_result(self, result: T) -> None:
        self._tell(result, None)

    def set_exception(self, exception: BaseException) -> None:
        self._tell(None, exception)

    def _tell(self, result: Any, exception: BaseException | None) -> None:
        # RuntimeError: the loop closed (the server stopped), and nobody is waiting.
        with contextlib.suppress(RuntimeError):
            self._loop.call_soon_threadsafe(_resolve, self._future, result, exception)


def _resolve(future: asyncio.Future[Any], result: Any, exception: BaseException | None
             ) -> None:
    if future.done():  # timed out meanwhile
        return
    if exception is not None:
        future.set_exception(exception)
    else:
        future.set_result(result)


class Runner(Generic[T]):
    """Threads that run batches of queued items until stopped."""

    #: Thread names are ``<name>-<n>`` (``intake-0``, ``processor-1``, ``outbox-0``).
    name = "runner"

    def __init__(self, *, threads: int = 1, max_batch: int = 1) -> None:
        self.max_batch = max_batch
        self._queue: queue.Queue[object] = queue.Queue()
        self._threads = [threading.Thread(target=self._loop, name=f"{self.name}-{i}",
                                          daemon=True) for i in range(threads)]

    def run_batch(self, batch: list[T]) -> None:
        """Do the work of one batch (the subclass's one job)."""
        raise NotImplementedError

    def failed(self, batch: list[T], exc: Exception) -> None:
        """``run_batch`` raised: the thread lives on; what was lost is recovered elsewhere
        (the sweep, the outbox flush). Say so."""
        log.exception(f"{self.name}.error", items=len(batch))

    def start(self) -> None:
        for thread in self._threads:
            thread.start()

    @property
    def alive(self) -> bool:
        """Every thread runs (the systemd watchdog is withheld otherwise)."""
        return bool(self._threads) and all(t.is_alive() for t in self._threads)

    def put(self, item: T) -> None:
        self._queue.put(item)

    def take_more(self, batch: list[T]) -> None:
        """Add to ``batch`` what else is queued now, up to ``max_batch``: for a subclass
        that waited (for a lock) after its batch was taken, so that what arrived meanwhile
        goes in with it instead of waiting its own turn."""
        while len(batch) < self.max_batch:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return
            if item is _STOP:
                self._queue.put(_STOP)  # for ``_loop``, after this batch
                return
            batch.append(item)  # type: ignore[arg-type]

    def stop(self, *, drain: bool = True, timeout: float | None = None) -> list[T]:
        """Stop the threads once the batch in hand is done. ``drain``: what is queued is
        run first; otherwise it is dropped and returned (the caller knows it is safe)."""
        dropped: list[T] = []
        if not drain:
            while True:
                try:
                    dropped.append(self._queue.get_nowait())  # type: ignore[arg-type]
                except queue.Empty:
                    break
        running = [t for t in self._threads if t.is_alive()]
        for _ in running:
            self._queue.put(_STOP)
        for thread in running:
            thread.join(timeout)
        return dropped

    def _loop(self) -> None:
        for batch in batches(self._queue, self.max_batch, _STOP):
            items: list[T] = batch  # type: ignore[assignment]
            try:
                self.run_batch(items)
            except Exception as exc:
                self.failed(items, exc)
