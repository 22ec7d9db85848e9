"""The one worker-thread base (``runner.Runner``) that the intake, the processors and the
outbox stand on: batches that grow with the load, draining or dropping on stop, and a
thread that outlives an error in its batch."""

from __future__ import annotations

import threading

from feedback_mta.runner import Runner
from tests.support import wait_until


class Recorder(Runner[int]):
    name = "recorder"

    def __init__(self, threads: int = 1, max_batch: int = 4) -> None:
        super().__init__(threads=threads, max_batch=max_batch)
        self.batches: list[list[int]] = []
        self.errors: list[list[int]] = []
        self.gate = threading.Event()
        self.gate.set()

    def run_batch(self, batch: list[int]) -> None:
        self.gate.wait(10)
        if 13 in batch:
            raise RuntimeError("unlucky")
        self.batches.append(batch)

    def failed(self, batch: list[int], exc: Exception) -> None:
        self.errors.append(batch)


def test_batches_take_what_arrived_meanwhile_up_to_the_limit():
    runner = Recorder(max_batch=4)
    runner.gate.clear()
    runner.start()
    runner.put(0)
    wait_until(lambda: runner._queue.empty(), what="the first item taken")
    for i in range(1, 7):  # arrive while the first batch is held at the gate
        runner.put(i)
    runner.gate.set()
    runner.stop()
    assert runner.batches == [[0], [1, 2, 3, 4], [5, 6]]
    assert not runner.alive


def test_an_error_fails_its_batch_only_and_the_thread_lives_on():
    runner = Recorder(max_batch=1)
    runner.start()
    for i in (12, 13, 14):
        runner.put(i)
    wait_until(lambda: len(runner.batches) == 2, what="the batches after the error")
    assert runner.alive and runner.errors == [[13]]
    runner.stop()
    assert runner.batches == [[12], [14]]


def test_stop_drains_or_drops_what_is_queued():
    draining = Recorder(max_batch=1)
    draining.gate.clear()
    draining.start()
    for i in range(3):
        draining.put(i)
    threading.Timer(0.2, draining.gate.set).start()
    assert draining.stop() == []
    assert draining.batches == [[0], [1], [2]]

    dropping = Recorder(max_batch=1)
    dropping.gate.clear()
    dropping.start()
    dropping.put(0)
    wait_until(lambda: dropping._queue.empty(), what="the first item taken")
    dropping.put(1)
    dropping.put(2)
    threading.Timer(0.2, dropping.gate.set).start()
    assert dropping.stop(drain=False) == [1, 2]
    assert dropping.batches == [[0]]


def test_several_threads_each_stop():
    runner = Recorder(threads=3, max_batch=2)
    runner.start()
    assert runner.alive
    items = [i for i in range(40) if i != 13]
    for i in items:
        runner.put(i)
    runner.stop()
    assert not runner.alive
    assert sorted(i for batch in runner.batches for i in batch) == items
