"""HTTP API speed: lead registrations per second and their latency, next to a bare uvicorn
endpoint that does nothing, in the same run on the same machine; and webhook deliveries
per second to a local receiver.

1. **Ceiling**: ``bench/bare_api.py``, one FastAPI endpoint answering 201 without work,
   under the same load: ``--connections`` keep-alive connections, each sending its next
   request when the last was answered, for ``--requests``.
2. **feedback-mta**: ``serve`` with ``[http] listen`` on a scratch SQLite database (or
   ``--database URL``), ``POST /v1/leads`` with a new address each time (a contact and a lead
   written, screened, two audit events committed). The ratio of the two rates is the figure.
3. **Latency at 80%**: requests sent at a fixed pace, 80% of the rate measured in 2, each on
   its own schedule (open loop, so a slow answer cannot hide the ones behind it): p50, p99.
4. **Webhooks**: a subscription to a local receiver (answers 204 at once), then leads
   registered at full speed; deliveries per second from the first to the last, and how far
   the last one trailed the last registration.
5. **Feedback over HTTPS**: signed Mailgun ``failed`` events (permanent) posted to
   ``/hooks/mailgun`` at full speed, each verified, committed before its 200 and then
   processed (a contact made unmailable, two audit events); requests per second next to
   the bare endpoint, and how long until the last one was processed.

Targets: ``POST /v1/leads`` >= 0.25x the bare endpoint, signed Mailgun webhooks >= 0.5x,
each with p99 < 25 ms at 80% of its maximum, and the webhooks processed within 2 s of the
last 200; on SQLite and on PostgreSQL (``--postgresql``, a scratch database on that server,
when it answers). The CPU the server used per request is printed next to each rate.

    .venv/bin/python bench/api.py [--requests 3000] [--connections 16] [--json]
        [--postgresql postgresql+psycopg://postgres@127.0.0.1:5432 | --no-postgresql]
        [--profile DIR]  (py-spy records the server, GIL holders, per phase)

The load generator is a few lines of asyncio speaking HTTP/1.1 itself (httpx would cost
more CPU than the servers on a 2-core machine), and runs in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PG_SERVER = "postgresql+psycopg://postgres@127.0.0.1:5432"
#: (name, the figure's key path, target, True: at least / False: below)
TARGETS = [("leads / bare", ("leads", "ratio"), 0.25, True),
           ("leads p99 at 80% (ms)", ("leads", "at_80", "p99_ms"), 25.0, False),
           ("hooks / bare", ("hooks", "ratio"), 0.5, True),
           ("hooks p99 at 80% (ms)", ("hooks", "at_80", "p99_ms"), 25.0, False),
           ("hooks processed after the last 200 (s)", ("hooks", "processed_after_s"), 2.0,
            False)]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time the process used so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds(pid: int) -> float:
    """The same for the process's children (``serve``'s processing process), living ones."""
    total = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        for child in (task / "children").read_text().split():
            with contextlib.suppress(FileNotFoundError, ProcessLookupError):
                total += cpu_seconds(int(child))
    return total


def _request(path: str, body: bytes, key: str) -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: bench\r\nAuthorization: Bearer {key}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
            ).encode() + body


async def _one(reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
               data: bytes) -> int:
    writer.write(data)
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n"):
        if line.lower().startswith(b"content-length:"):
            length = int(line.split(b":", 1)[1])
    await reader.readexactly(length)
    return status


class Bodies:
    """A new lead each time (a new address: a contact and a lead created)."""

    def __init__(self, prefix: str) -> None:
        self.n = 0
        self.prefix = prefix

    def next(self) -> bytes:
        self.n += 1
        return json.dumps({"email": f"{self.prefix}{self.n}@people.test", "first": "Ann",
                           "last": "Lee", "ip": "192.0.2.1",
                           "comments": "Please call me about the car."}).encode()


class MailgunBodies(Bodies):
    """A signed Mailgun ``failed`` (permanent) event for a new contact each time."""

    KEY = "bench-mailgun-signing-key"

    def next(self) -> bytes:
        import hashlib
        import hmac

        self.n += 1
        stamp, token = str(int(time.time())), f"{self.prefix}-{self.n}-{time.time_ns()}"
        signature = hmac.new(self.KEY.encode(), (stamp + token).encode(),
                             hashlib.sha256).hexdigest()
        return json.dumps({
            "signature": {"timestamp": stamp, "token": token, "signature": signature},
            "event-data": {"id": f"{self.prefix}-{self.n}", "event": "failed",
                           "severity": "permanent", "reason": "bounce",
                           "recipient": f"{self.prefix}{self.n}@people.test",
                           "delivery-status": {"code": 550, "message": "5.1.1 user unknown"}},
        }).encode()


async def closed_loop(port: int, key: str, bodies: Bodies, requests: int,
                      connections: int, path: str = "/v1/leads") -> dict:
    """Each connection sends its next request when the last was answered."""
    codes: dict[int, int] = {}
    left = requests

    async def worker() -> None:
        nonlocal left
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while left > 0:
                left -= 1
                status = await _one(reader, writer, _request(path, bodies.next(), key))
                codes[status] = codes.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    seconds = time.perf_counter() - started
    return {"rate": round(requests / seconds, 1), "seconds": round(seconds, 2),
            "codes": {str(k): v for k, v in sorted(codes.items())}}


async def open_loop(port: int, key: str, bodies: Bodies, rate: float, requests: int,
                    connections: int, path: str = "/v1/leads") -> dict:
    """Requests on a fixed schedule; latency from when each was due, so queueing counts."""
    latencies: list[float] = []
    codes: dict[int, int] = {}
    pool: asyncio.Queue = asyncio.Queue()
    for _ in range(connections):
        pool.put_nowait(await asyncio.open_connection("127.0.0.1", port))
    start = time.perf_counter() + 0.05

    async def one(i: int) -> None:
        due = start + i / rate
        await asyncio.sleep(max(0.0, due - time.perf_counter()))
        reader, writer = await pool.get()
        try:
            status = await _one(reader, writer, _request(path, bodies.next(), key))
        finally:
            pool.put_nowait((reader, writer))
        latencies.append((time.perf_counter() - due) * 1000)
        codes[status] = codes.get(status, 0) + 1

    await asyncio.gather(*(one(i) for i in range(requests)))
    while not pool.empty():
        pool.get_nowait()[1].close()
    latencies.sort()
    return {"rate": round(rate, 1), "p50_ms": round(latencies[len(latencies) // 2], 2),
            "p99_ms": round(latencies[int(len(latencies) * 0.99) - 1], 2),
            "codes": {str(k): v for k, v in sorted(codes.items())}}


class Receiver:
    """A webhook endpoint that answers 204 at once and notes when each delivery came."""

    def __init__(self) -> None:
        arrivals = self.arrivals = []

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers["content-length"]))
                arrivals.append(time.perf_counter())
                self.send_response(204)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


def _cli(config: Path, *args: str) -> dict:
    done = subprocess.run([sys.executable, "-m", "feedback_mta", *args, "--json", "--config",
                           str(config)], capture_output=True, text=True, check=True, cwd=ROOT)
    return json.loads(done.stdout)


def _config(work: Path, database: str) -> Path:
    path = work / "bench-api.toml"
    path.write_text(
        f'[database]\nurl = "{database}"\n'
        '[smtp]\nhost = "127.0.0.1"\nport = 0\ndomain = "fb.test"\nlmtp = false\n'
        'max_message_size = "1MB"\nmax_sessions = 1000\n'
        '[security]\nsecret_key = "bench-secret-key-0123456789"\n'
        '[http]\nlisten = "127.0.0.1:0"\n[quality]\nallowed_domains = ["test"]\n'
        # The bench's webhook receiver is on loopback.
        '[webhooks]\nallow_private_networks = true\n'
        f'[webhooks.mailgun]\nsigning_key = "{MailgunBodies.KEY}"\naccount = 1\n'
        '[logging]\nformat = "json"\nlevel = "info"\n')
    return path


class Child:
    def __init__(self, argv: list[str], event: str | None) -> None:
        self.proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     cwd=ROOT, text=True,
                                     env={**os.environ, "PYTHONPATH": str(ROOT)})
        assert self.proc.stdout is not None
        if event is None:
            self.port = int(self.proc.stdout.readline())
        else:
            for line in self.proc.stdout:
                if f'"{event}"' in line:
                    self.port = json.loads(line)["port"]
                    break
            else:
                raise RuntimeError(f"{argv} did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout or ()],
                         daemon=True).start()

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()


class Spy:
    """py-spy recording the server (the thread holding the GIL) while a phase runs."""

    def __init__(self, pid: int, profile: Path | None, name: str) -> None:
        self.proc = None
        if profile is not None:
            spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
            self.proc = subprocess.Popen(
                [spy, "record", "--pid", str(pid), "--format", "raw", "--gil", "--threads",
                 "--rate", "200", "-o", str(profile / f"{name}.txt")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(1)

    def __enter__(self) -> Spy:
        return self

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.wait(60)


def measured(serve: Child, bare_rate: float, args: argparse.Namespace, name: str,
             bodies: Bodies, key: str, path: str) -> dict:
    """The closed-loop rate (and its ratio to the bare endpoint, and the server's CPU per
    request), then p50/p99 in open loop at 80% of that rate."""
    pid = serve.proc.pid
    with Spy(pid, args.profile, f"{args.label}-{name}"):
        before = cpu_seconds(pid), children_cpu_seconds(pid), time.process_time()
        done = asyncio.run(closed_loop(serve.port, key, bodies, args.requests,
                                       args.connections, path))
        after = cpu_seconds(pid), children_cpu_seconds(pid), time.process_time()
    done["ratio"] = round(done["rate"] / bare_rate, 3)
    cpu, processing, bench = (b - a for a, b in zip(before, after, strict=True))
    done["cpu_ms"] = round(1000 * cpu / args.requests, 2)
    # While the closed loop ran: the processing process's CPU and this load generator's,
    # a request (the three share the machine's cores).
    done["processing_cpu_ms"] = round(1000 * processing / args.requests, 2)
    done["bench_cpu_ms"] = round(1000 * bench / args.requests, 2)
    done["at_80"] = asyncio.run(open_loop(serve.port, key, type(bodies)(f"{bodies.prefix}o"),
                                          0.8 * done["rate"], args.requests,
                                          args.connections, path))
    return done


def _hooks(serve: Child, bare_rate: float, database: str, args: argparse.Namespace) -> dict:
    """Signed webhooks at full speed: the rate of 200s, and when the last was processed."""
    import sqlalchemy as sa

    from feedback_mta.store import db

    with _contacts(database, args.requests) as engine:
        engine = db.reader(engine)  # polling must not take SQLite's write lock
        posted = measured(serve, bare_rate, args, "hooks", MailgunBodies("hook"), "x",
                          "/hooks/mailgun")
        answered = time.perf_counter()
        query = sa.text("SELECT count(*) FROM inbound_message WHERE provider = 'mailgun' "
                        "AND state = 'received'")
        deadline = time.monotonic() + 300
        with engine.connect() as conn:
            while conn.execute(query).scalar() and time.monotonic() < deadline:
                conn.rollback()
                time.sleep(0.02)
            undeliverable = conn.execute(sa.text(
                "SELECT count(*) FROM contact WHERE undeliverable_at IS NOT NULL "
                "AND email LIKE 'hook%'")).scalar()
    return {**posted, "processed_after_s": round(time.perf_counter() - answered, 2),
            "undeliverable": undeliverable}


class _contacts:
    """The contacts the webhooks name, made up front (one transaction)."""

    def __init__(self, database: str, n: int) -> None:
        from feedback_mta import logs
        from feedback_mta.actions import CLI, unit_of_work
        from feedback_mta.config import DatabaseConfig
        from feedback_mta.store import db

        logs.configure("warning", "json", sys.stderr)  # stdout carries the figures only

        self.engine = db.create_engine(DatabaseConfig(url=database))
        with unit_of_work(self.engine, CLI) as uow:
            for i in range(1, n + 1):
                uow.contacts.add(1, f"hook{i}@people.test", "Ann", "Lee")
            for i in range(1, n + 1):
                uow.contacts.add(1, f"hooko{i}@people.test", "Ann", "Lee")

    def __enter__(self):
        return self.engine

    def __exit__(self, *exc) -> None:
        self.engine.dispose()


def bare(args: argparse.Namespace) -> dict:
    child = Child([sys.executable, "bench/bare_api.py"], None)
    try:
        asyncio.run(closed_loop(child.port, "x", Bodies("w"), 300, args.connections))
        before = cpu_seconds(child.proc.pid), time.process_time()
        done = asyncio.run(closed_loop(child.port, "x", Bodies("b"), args.requests,
                                       args.connections))
        after = cpu_seconds(child.proc.pid), time.process_time()
        cpu, bench = (b - a for a, b in zip(before, after, strict=True))
        done["cpu_ms"] = round(1000 * cpu / args.requests, 2)
        done["bench_cpu_ms"] = round(1000 * bench / args.requests, 2)
        return done
    finally:
        child.stop()


def engine_run(args: argparse.Namespace, bare_rate: float, database: str | None) -> dict:
    """One engine's figures: leads, webhook deliveries, signed Mailgun events."""
    result: dict = {}
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        database = database or f"sqlite:///{work / 'bench.sqlite3'}"
        config = _config(work, database)
        _cli(config, "db", "upgrade")
        account = _cli(config, "account", "add", "Bench Dealer")["id"]
        key = _cli(config, "key", "add", "--account", str(account))["key"]
        serve = Child([sys.executable, "-m", "feedback_mta", "serve", "--no-smtp", "--config",
                       str(config)], "http.started")
        try:
            asyncio.run(closed_loop(serve.port, key, Bodies("warm"), 300, args.connections))
            if "leads" in args.phases:
                result["leads"] = measured(serve, bare_rate, args, "leads", Bodies("c"), key,
                                           "/v1/leads")
            if "hooks" in args.phases:
                result["hooks"] = _hooks(serve, bare_rate, database, args)
            if "webhooks" in args.phases:
                # Last: the subscription stays, and its sender would load the phases after it.
                result["webhooks"] = _deliveries(serve, config, account, key, args)
        finally:
            serve.stop()
    result["verdicts"] = verdicts(result)
    return result


def _deliveries(serve: Child, config: Path, account: int, key: str,
                args: argparse.Namespace) -> dict:
    receiver = Receiver()
    _cli(config, "webhook", "add", receiver.url, "--account", str(account))
    n = args.webhook_leads
    registered = asyncio.run(closed_loop(serve.port, key, Bodies("h"), n, args.connections))
    last_answer = time.perf_counter()
    # contact.created, contact.consent_recorded and lead.created each; webhook.created
    expected = 3 * n + 1
    deadline = time.monotonic() + 300
    while len(receiver.arrivals) < expected and time.monotonic() < deadline:
        time.sleep(0.05)
    arrivals = receiver.arrivals
    span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
    receiver.server.shutdown()
    return {"events": expected, "delivered": len(arrivals),
            "rate": round((len(arrivals) - 1) / span, 1) if span == span else None,
            "trailing_s": round(arrivals[-1] - last_answer, 2) if arrivals else None,
            "registrations_rate": registered["rate"]}


def verdicts(result: dict) -> list[tuple[str, float, float, bool]]:
    found = []
    for name, keys, target, at_least in TARGETS:
        if keys[0] not in result:
            continue  # a phase not run (--phases)
        value = result
        for k in keys:
            value = value[k]
        found.append((name, value, target, value >= target if at_least else value < target))
    return found


def _alive(pid: int) -> bool:
    """Whether a process of this machine has this pid."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class _pg_database:
    """A scratch database on the PostgreSQL server, dropped afterwards; None when the
    server does not answer."""

    def __init__(self, server: str | None) -> None:
        import sqlalchemy as sa

        self.url = None
        self.admin = None
        # One database a run: two runs on one server must not drop each other's.
        self.name = f"fbmta_bench_api_{os.getpid()}"
        if server is None:
            return
        try:
            self.admin = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT",
                                          connect_args={"connect_timeout": 3})
            self._drop_abandoned()
            self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self._run(f'CREATE DATABASE "{self.name}"')
            self.url = f"{server}/{self.name}"
        except sa.exc.SQLAlchemyError:
            self.admin = None

    def _run(self, sql: str) -> None:
        import sqlalchemy as sa

        assert self.admin is not None
        with self.admin.connect() as conn:
            conn.execute(sa.text(sql))

    def _drop_abandoned(self) -> None:
        """Drop the databases of earlier runs on this machine whose process is gone (a run
        killed before its ``__exit__``); those of runs still going are left alone."""
        import sqlalchemy as sa

        assert self.admin is not None
        with self.admin.connect() as conn:
            names = conn.execute(sa.text(
                "SELECT datname FROM pg_database WHERE datname LIKE 'fbmta_bench_api_%'"))
            stale = [name for (name,) in names
                     if name.rpartition("_")[2].isdigit()
                     and not _alive(int(name.rpartition("_")[2]))]
        for name in stale:
            self._run(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')

    def __enter__(self) -> str | None:
        return self.url

    def __exit__(self, *exc) -> None:
        if self.admin is not None:
            self._run(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
            self.admin.dispose()


def run(args: argparse.Namespace) -> dict:
    result: dict = {"bare": bare(args)}
    rate = result["bare"]["rate"]
    if args.sqlite or args.database is not None:
        args.label = "sqlite"
        result["sqlite"] = engine_run(args, rate, args.database)
    if args.database is None:
        with _pg_database(args.postgresql) as url:
            if url is not None:
                args.label = "postgresql"
                result["postgresql"] = engine_run(args, rate, url)
    return result


def report(r: dict) -> None:
    b = r["bare"]
    print(f"bare uvicorn endpoint     {b['rate']:8.1f} req/s   {b['cpu_ms']:.2f} ms CPU/request"
          f" (this load generator {b['bench_cpu_ms']:.2f} ms)   {b['codes']}")
    for engine in ("sqlite", "postgresql"):
        if engine not in r:
            continue
        e = r[engine]
        print(f"-- {engine}")
        for name, path in (("leads", "POST /v1/leads"), ("hooks", "POST /hooks/mailgun")):
            if name not in e:
                continue
            f = e[name]
            a = f["at_80"]
            print(f"{path:24s}  {f['rate']:8.1f} req/s   {f['ratio']:.3f}x   "
                  f"{f['cpu_ms']:.2f} ms CPU/request   {f['codes']}")
            print(f"  meanwhile, CPU/request: processing {f['processing_cpu_ms']:.2f} ms, "
                  f"this load generator {f['bench_cpu_ms']:.2f} ms")
            print(f"  at 80% ({a['rate']:.0f}/s)        p50 {a['p50_ms']:.1f} ms  "
                  f"p99 {a['p99_ms']:.1f} ms   {a['codes']}")
        if "hooks" in e:
            h = e["hooks"]
            print(f"  hooks all processed {h['processed_after_s']} s after the last 200 "
                  f"({h['undeliverable']} contacts unmailable)")
        if "webhooks" in e:
            w = e["webhooks"]
            print(f"webhook deliveries        {w['rate'] or 0:8.1f} /s      "
                  f"{w['delivered']}/{w['events']} delivered, the last {w['trailing_s']} s "
                  "after the last registration")
        for name, value, target, ok in e["verdicts"]:
            print(f"  {'met ' if ok else 'MISS'}  {name}: {value} (target {target})")


PHASES = ("leads", "hooks", "webhooks")


def _phases(text: str) -> tuple[str, ...]:
    chosen = tuple(p.strip() for p in text.split(",") if p.strip())
    if not chosen or not set(chosen) <= set(PHASES):
        raise argparse.ArgumentTypeError(f"phases are {', '.join(PHASES)}")
    return chosen


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--webhook-leads", type=int, default=500)
    parser.add_argument("--database", metavar="URL",
                        help="this database only (default: a scratch SQLite file, then a "
                             "scratch database on --postgresql)")
    parser.add_argument("--postgresql", metavar="SERVER", default=PG_SERVER,
                        help=f"PostgreSQL server for the second run (default {PG_SERVER})")
    parser.add_argument("--no-postgresql", dest="postgresql", action="store_const",
                        const=None)
    parser.add_argument("--no-sqlite", dest="sqlite", action="store_false",
                        help="PostgreSQL only")
    parser.add_argument("--profile", type=Path, metavar="DIR",
                        help="py-spy record the server (GIL holders) per phase into DIR")
    parser.add_argument("--phases", type=_phases, default=PHASES, metavar="LIST",
                        help="comma-separated, of " + ",".join(PHASES) + " (default: all)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)


if __name__ == "__main__":
    main()
