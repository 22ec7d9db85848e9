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

Targets (DESIGN's): >= 0.5x the bare endpoint; p99 < 25 ms at 80% of the maximum.

    .venv/bin/python bench/api.py [--requests 3000] [--connections 16] [--json]

The load generator is a few lines of asyncio speaking HTTP/1.1 itself (httpx would cost
more CPU than the servers on a 2-core machine), and runs in this process.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGETS = {"leads / bare": 0.5, "p99 at 80% (ms)": 25.0}


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
                    connections: int) -> dict:
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
            status = await _one(reader, writer, _request("/v1/leads", bodies.next(), key))
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


def _hooks(port: int, database: str, args: argparse.Namespace) -> dict:
    """Signed webhooks at full speed: the rate of 200s, and when the last was processed."""
    import sqlalchemy as sa

    from feedback_mta.store import db

    bodies = MailgunBodies("hook")
    with _contacts(database, args.requests) as engine:
        engine = db.reader(engine)  # polling must not take SQLite's write lock
        posted = asyncio.run(closed_loop(port, "x", bodies, args.requests, args.connections,
                                         "/hooks/mailgun"))
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

    def __enter__(self):
        return self.engine

    def __exit__(self, *exc) -> None:
        self.engine.dispose()


def run(args: argparse.Namespace) -> dict:
    result: dict = {}
    bare = Child([sys.executable, "bench/bare_api.py"], None)
    try:
        asyncio.run(closed_loop(bare.port, "x", Bodies("w"), 300, args.connections))
        result["bare"] = asyncio.run(closed_loop(bare.port, "x", Bodies("b"), args.requests,
                                                 args.connections))
    finally:
        bare.stop()

    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        database = args.database or f"sqlite:///{work / 'bench.sqlite3'}"
        config = _config(work, database)
        _cli(config, "db", "upgrade")
        account = _cli(config, "account", "add", "Bench Dealer")["id"]
        key = _cli(config, "key", "add", "--account", str(account))["key"]
        serve = Child([sys.executable, "-m", "feedback_mta", "serve", "--no-smtp", "--config",
                       str(config)], "http.started")
        try:
            asyncio.run(closed_loop(serve.port, key, Bodies("warm"), 300, args.connections))
            leads = asyncio.run(closed_loop(serve.port, key, Bodies("c"), args.requests,
                                            args.connections))
            result["leads"] = leads
            result["ratio"] = round(leads["rate"] / result["bare"]["rate"], 3)
            result["at_80"] = asyncio.run(open_loop(
                serve.port, key, Bodies("o"), 0.8 * leads["rate"], args.requests,
                args.connections))

            receiver = Receiver()
            _cli(config, "webhook", "add", receiver.url, "--account", str(account))
            n = args.webhook_leads
            registered = asyncio.run(closed_loop(serve.port, key, Bodies("h"), n,
                                                 args.connections))
            last_answer = time.perf_counter()
            # contact.created, contact.consent_recorded and lead.created each; webhook.created
            expected = 3 * n + 1
            deadline = time.monotonic() + 300
            while len(receiver.arrivals) < expected and time.monotonic() < deadline:
                time.sleep(0.05)
            arrivals = receiver.arrivals
            span = arrivals[-1] - arrivals[0] if len(arrivals) > 1 else float("nan")
            result["webhooks"] = {
                "events": expected, "delivered": len(arrivals),
                "rate": round((len(arrivals) - 1) / span, 1) if span == span else None,
                "trailing_s": round(arrivals[-1] - last_answer, 2) if arrivals else None,
                "registrations_rate": registered["rate"]}
            receiver.server.shutdown()
            result["hooks"] = _hooks(serve.port, database, args)
        finally:
            serve.stop()
    result["verdicts"] = [
        ("leads / bare", result["ratio"], TARGETS["leads / bare"],
         result["ratio"] >= TARGETS["leads / bare"]),
        ("p99 at 80% (ms)", result["at_80"]["p99_ms"], TARGETS["p99 at 80% (ms)"],
         result["at_80"]["p99_ms"] < TARGETS["p99 at 80% (ms)"])]
    return result


def report(r: dict) -> None:
    print(f"bare uvicorn endpoint   {r['bare']['rate']:8.1f} req/s   {r['bare']['codes']}")
    print(f"POST /v1/leads          {r['leads']['rate']:8.1f} req/s   {r['leads']['codes']}"
          f"   {r['ratio']:.2f}x")
    a = r["at_80"]
    print(f"at 80% ({a['rate']:.0f}/s)         p50 {a['p50_ms']:.1f} ms  p99 {a['p99_ms']:.1f} ms"
          f"   {a['codes']}")
    w = r["webhooks"]
    print(f"webhook deliveries      {w['rate'] or 0:8.1f} /s      {w['delivered']}/{w['events']}"
          f" delivered, the last {w['trailing_s']} s after the last registration")
    h = r["hooks"]
    print(f"POST /hooks/mailgun     {h['rate']:8.1f} req/s   {h['codes']}"
          f"   {h['rate'] / r['bare']['rate']:.2f}x; all processed {h['processed_after_s']} s"
          f" after the last 200 ({h['undeliverable']} contacts unmailable)")
    for name, value, target, ok in r["verdicts"]:
        print(f"  {'met ' if ok else 'MISS'}  {name}: {value} (target {target})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3000)
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--webhook-leads", type=int, default=500)
    parser.add_argument("--database", metavar="URL",
                        help="default: a scratch SQLite file; e.g. postgresql+psycopg://...")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    result = run(args)
    if args.json:
        print(json.dumps(result))
    else:
        report(result)


if __name__ == "__main__":
    main()
