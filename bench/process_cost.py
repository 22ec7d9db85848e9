"""What the processing process spends per message, offline and repeatable.

    python bench/process_cost.py                        # CPU ms per message (this machine, now)
    python bench/process_cost.py --profile out.prof     # and a cProfile of the measured part
    python bench/process_cost.py --callgrind            # instructions per message (valgrind)

No SMTP and no server: the bench's mix (``load.build``: complaints, DSNs, unsubscribes,
dealer replies, unknown mail) goes through the real intake into a copy of ``--quick``'s
seeded SQLite database (``seed.py``: 100 accounts, 10,000 contacts), and is then processed
the way the processing process does it (``process.process_batch``, ``--batch`` messages a
transaction, the committed events, counts and mail relayed over a pipe, JSON log lines at
``info`` to /dev/null). The first ``--warm`` messages warm it up (imports, compiled
statements) and are not counted.

``--callgrind`` runs that processing twice under ``valgrind --tool=callgrind``, over
``--messages`` and over twice as many, each on a fresh copy of the same stored database,
and prints the difference in instructions over the difference in messages: the start,
the imports and the warm-up cancel out, and instruction counts do not depend on what else
the machine is doing (this shared 2-core machine's speed drifts by half within an hour).
The CPU time of the default mode does; compare it only in alternated runs.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from multiprocessing.connection import Connection
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path[:0] = [str(HERE.parent), str(HERE)]

import load  # noqa: E402
import run as run_bench  # noqa: E402
import seed  # noqa: E402
import sqlalchemy as sa  # noqa: E402

from feedback_mta import config as config_mod  # noqa: E402
from feedback_mta import logs  # noqa: E402
from feedback_mta.actions import audit  # noqa: E402
from feedback_mta.addresses import AddressBook  # noqa: E402
from feedback_mta.edge.intake import Arrival, Intake  # noqa: E402
from feedback_mta.handlers.base import Settings  # noqa: E402
from feedback_mta.service import process, processing  # noqa: E402
from feedback_mta.store import db  # noqa: E402

SHAPE = seed.Shape(100, 10_000)  # bench/run.py --quick's


def write_config(work: Path) -> Path:
    """``bench/run.py``'s configuration (its domain and secret), on ``work/cost.sqlite3``."""
    return run_bench.write_config(work, f"sqlite:///{work / 'cost.sqlite3'}", "cost")


def prepare(work: Path, count: int) -> Path:
    """A seeded database in ``work`` holding ``count`` stored messages of the bench's mix."""
    path = write_config(work)
    cfg = config_mod.load(path, env={})
    book = AddressBook.from_config(cfg)
    seed.fresh_copy(SHAPE, book, work / "cost.sqlite3")
    engine = db.create_engine(cfg.database)
    intake = Intake(engine)
    intake.start()
    try:
        futures = [intake.submit(Arrival(raw, sender, (rcpt,)))
                   for sender, rcpt, raw in load.build(count, book, SHAPE, random.Random(7))]
        for future in futures:
            future.result(60)
    finally:
        intake.stop()
        engine.dispose()
    return path


def run(config: Path, warm: int, count: int, batch: int, profile: Path | None,
        statements: bool = False) -> float:
    """Process the first ``warm`` stored messages, then ``count`` more, ``batch`` to a
    transaction; CPU seconds per message of the latter."""
    cfg = config_mod.load(config, env={})
    with open(os.devnull, "w") as sink:
        logs.configure("info", "json", stream=sink)
        engine = db.create_engine(cfg.database)
        if statements:
            seen: list[str] = []
            sa.event.listen(engine, "before_cursor_execute",
                            lambda *a: seen.append(" ".join(a[2].split())[:150]))
        # What is relayed goes to another process, as to ``serve``: here ``cat``, to
        # /dev/null (valgrind does not follow it; a thread here would count its reading).
        read_end, write_end = os.pipe()
        drain = subprocess.Popen(["cat"], stdin=read_end, stdout=subprocess.DEVNULL)
        os.close(read_end)
        ours = Connection(write_end, readable=False)
        relay = processing._Relay(ours)
        audit.listen(relay.event)
        book, settings = AddressBook.from_config(cfg), Settings.from_config(cfg)
        process.TRANSACTION_SECONDS = float("inf")  # ``batch`` a transaction, however slow

        def span(first: int, last: int) -> None:
            for start in range(first, last, batch):
                ids = list(range(start, min(last, start + batch)))
                process.process_batch(engine, book, ids, settings, relay.mail, relay.count)
                relay.flush()

        span(1, warm + 1)
        profiler = cProfile.Profile() if profile else None
        started = time.process_time()
        if profiler:
            profiler.enable()
        if statements:
            seen.clear()
        span(warm + 1, warm + count + 1)
        if statements:
            for text, n in collections.Counter(seen).most_common():
                print(f"{n / count:6.3f}  {text}")
        if profiler:
            profiler.disable()
            profiler.dump_stats(profile)
        seconds = time.process_time() - started
        engine.dispose()
        ours.close()
        drain.wait()
    return seconds / count


def callgrind(work: Path, stored: Path, args: argparse.Namespace) -> None:
    totals = []
    for count in (args.messages, 2 * args.messages):
        copy = work / f"run-{count}"
        copy.mkdir()
        for name in ("cost.sqlite3", "cost.sqlite3-wal"):
            if (stored.parent / name).exists():
                shutil.copyfile(stored.parent / name, copy / name)
        out = copy / "callgrind.out"
        subprocess.run(
            ["valgrind", "--tool=callgrind", f"--callgrind-out-file={out}",
             sys.executable, __file__, "--run", str(write_config(copy)),
             "--warm", str(args.warm), "--messages", str(count), "--batch", str(args.batch)],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            env={**os.environ, "PYTHONHASHSEED": "0"})  # the same run, the same count
        totals.append(int(re.search(r"^(?:summary|totals): (\d+)", out.read_text(),
                                    re.MULTILINE)[1]))
        if args.keep:
            shutil.copyfile(out, args.keep.with_suffix(f".{count}"))
    per = (totals[1] - totals[0]) / args.messages
    print(f"{per / 1e6:.3f}M instructions a message ({args.messages} messages, "
          f"{args.batch} a transaction; totals {totals[0]:,} and {totals[1]:,})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=400, help="measured (a multiple of 5)")
    parser.add_argument("--warm", type=int, default=80)
    parser.add_argument("--batch", type=int, default=16, help="messages a transaction")
    parser.add_argument("--callgrind", action="store_true",
                        help="instructions per message under valgrind (minutes)")
    parser.add_argument("--keep", type=Path, metavar="FILE",
                        help="with --callgrind: keep the two callgrind.out files as FILE.N")
    parser.add_argument("--profile", type=Path, metavar="FILE",
                        help="cProfile stats of the measured part")
    parser.add_argument("--statements", action="store_true",
                        help="the SQL statements run per message, most frequent first")
    parser.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # one measured run
    args = parser.parse_args()
    if args.run:
        run(args.run, args.warm, args.messages, args.batch, None)
        return
    logs.configure("warning", "json", stream=sys.stderr)
    work = Path(tempfile.mkdtemp(prefix="fbmta-cost-"))
    try:
        total = args.warm + (2 if args.callgrind else 1) * args.messages
        stored = prepare(work, total)
        if args.callgrind:
            callgrind(work, work / "cost.sqlite3", args)
        else:
            ms = run(stored, args.warm, args.messages, args.batch, args.profile,
                     args.statements) * 1000
            print(f"{ms:.3f} ms CPU a message ({args.messages} messages, "
                  f"{args.batch} a transaction)")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
