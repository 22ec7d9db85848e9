"""Throughput and time-to-250 of ``feedback-mta serve`` next to a bare aiosmtpd server.

    python bench/run.py [--messages 3000] [--concurrency 20] [--contacts 1000] [--reuse]

Both servers run on this machine in the same run and get the same load: ``--concurrency``
sessions sending distinct ~2 KB messages (a mix of ARF complaints, DSNs, unsubscribe mails
with genuine tokens, dealer replies and unknown mail). For feedback-mta the clock stops
when every accepted message is processed, so the figure is the whole path (accept, store,
parse, classify, act), not just the 250. Prints messages/s, p50/p99 time-to-250 (from the
final "." to the reply), peak RSS, and the ratio to the bare server.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from feedback_mta import config as config_mod  # noqa: E402
from feedback_mta import db, logs  # noqa: E402
from feedback_mta.actions import CLI, unit_of_work  # noqa: E402
from feedback_mta.addresses import AddressBook, Box  # noqa: E402
from feedback_mta.models import InboundMessage  # noqa: E402

FIXTURES = ROOT / "tests" / "fixtures" / "messages"
SECRET = "bench-secret-0123456789abcdef"
DOMAIN = "fb.bench"
PAD = ("Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor.\r\n" * 20)


def peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def build_messages(n: int, book: AddressBook, contact_ids: list[int], lead_ids: list[int],
                   rng: random.Random) -> list[tuple[str, str, bytes]]:
    arf = (FIXTURES / "arf-rfc5965-abuse.eml").read_bytes()
    dsn = (FIXTURES / "dsn-postfix-hard.eml").read_bytes()
    out = []
    for i in range(n):
        mid = f"<bench-{i}-{rng.getrandbits(48):x}@isp.bench>"
        pick = i % 5
        if pick == 0:
            raw = f"Message-ID: {mid}\r\n".encode() + arf
            out.append(("", f"fbl@{DOMAIN}", raw))
        elif pick == 1:
            raw = f"Message-ID: {mid}\r\n".encode() + dsn
            out.append(("", book.address(Box.BOUNCE, rng.choice(contact_ids)), raw))
        elif pick == 2:
            raw = (f"From: person{i}@people.bench\r\nSubject: unsubscribe\r\nMessage-ID: {mid}\r\n"
                   f"\r\nunsubscribe\r\n{PAD}").encode()
            out.append((f"person{i}@people.bench",
                        book.address(Box.UNSUBSCRIBE, rng.choice(contact_ids)), raw))
        elif pick == 3:
            raw = (f"From: boss@dealer.bench\r\nSubject: Re: New lead\r\nMessage-ID: {mid}\r\n"
                   f"\r\nSPAM\r\n\r\n> {PAD}").encode()
            out.append(("boss@dealer.bench", book.address(Box.REPLY, rng.choice(lead_ids)), raw))
        else:
            raw = (f"From: x{i}@else.bench\r\nSubject: hello {i}\r\nMessage-ID: {mid}\r\n\r\n"
                   f"{PAD}").encode()
            out.append((f"x{i}@else.bench", f"fbl@{DOMAIN}", raw))
    return out


async def _reply(reader: asyncio.StreamReader) -> bytes:
    while True:
        line = await reader.readline()
        if not line:
            raise ConnectionError("closed")
        if line[3:4] != b"-":
            return line


async def session_worker(port: int, queue: asyncio.Queue, latencies: list[float],
                         codes: dict[str, int], reuse: bool) -> None:
    reader = writer = None
    while True:
        try:
            item = queue.get_nowait()
        except asyncio.QueueEmpty:
            break
        mail_from, rcpt, raw = item
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
                await _reply(reader)
                writer.write(b"EHLO bench\r\n")
                await _reply(reader)
            writer.write(f"MAIL FROM:<{mail_from}>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n".encode())
            await _reply(reader)
            await _reply(reader)
            await _reply(reader)
            body = raw.replace(b"\r\n.", b"\r\n..")
            writer.write(body + (b"" if body.endswith(b"\r\n") else b"\r\n"))
            started = time.perf_counter()
            writer.write(b".\r\n")
            line = await _reply(reader)
            latencies.append(time.perf_counter() - started)
            codes[line[:3].decode()] = codes.get(line[:3].decode(), 0) + 1
            if not reuse:
                writer.write(b"QUIT\r\n")
                await _reply(reader)
                writer.close()
                reader = writer = None
        except (ConnectionError, OSError):
            codes["conn-error"] = codes.get("conn-error", 0) + 1
            writer = None
    if writer is not None:
        writer.write(b"QUIT\r\n")
        writer.close()


async def drive(port: int, messages, concurrency: int, reuse: bool):
    queue: asyncio.Queue = asyncio.Queue()
    for m in messages:
        queue.put_nowait(m)
    latencies: list[float] = []
    codes: dict[str, int] = {}
    started = time.perf_counter()
    await asyncio.gather(*(session_worker(port, queue, latencies, codes, reuse)
                           for _ in range(concurrency)))
    return time.perf_counter() - started, sorted(latencies), codes


def pct(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    return values[min(len(values) - 1, int(len(values) * p))] * 1000


def start(argv: list[str], ready: str | None = None, env=None) -> tuple[subprocess.Popen, int]:
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env,
                            cwd=ROOT, text=True)
    for line in proc.stdout:
        if ready is None:
            return proc, int(line)
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if event.get("event") == ready:
            # keep draining its log so the pipe never blocks the server
            threading.Thread(target=lambda: [None for _ in proc.stdout], daemon=True).start()
            return proc, event["port"]
    raise RuntimeError(f"{argv} did not start")


def seed(cfg, contacts: int, leads: int) -> tuple[list[int], list[int]]:
    engine = db.create_engine(cfg.database)
    db.upgrade(engine)
    book = AddressBook.from_config(cfg)
    with unit_of_work(engine, CLI) as act:
        account = act.add_account("Bench Dealer")
        act.add_user(account.id, "boss@dealer.bench", ["contact-admin"])
        lead_ids = [act.add_lead(book, account.id, f"lead{i}@people.bench", "Ann", "Lee").id
                    for i in range(leads)]
    from feedback_mta.models import Contact, utcnow

    now = utcnow()
    rows = [{"account_id": account.id, "email": f"c{i}@people.bench", "first_name": "C",
             "last_name": f"N{i}", "status": "active", "created_at": now, "updated_at": now}
            for i in range(contacts)]
    with engine.begin() as conn:
        for chunk in range(0, len(rows), 5000):
            conn.execute(sa.insert(Contact.__table__), rows[chunk:chunk + 5000])
        contact_ids = list(conn.execute(sa.select(Contact.id)).scalars())
    engine.dispose()
    return contact_ids, lead_ids


def wait_processed(cfg, expected: int, timeout: float) -> float:
    engine = db.create_engine(cfg.database)
    t = InboundMessage.__table__
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            with engine.connect() as conn:
                total = conn.execute(sa.select(sa.func.count()).select_from(t)).scalar()
                waiting = conn.execute(sa.select(sa.func.count()).select_from(t)
                                       .where(t.c.state == "received")).scalar()
            if total >= expected and waiting == 0:
                return time.perf_counter()
            time.sleep(0.05)
    finally:
        engine.dispose()
    raise RuntimeError(f"not all processed within {timeout}s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=3000)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--leads", type=int, default=200)
    parser.add_argument("--reuse", action="store_true", help="several messages per connection")
    parser.add_argument("--profile", metavar="FILE",
                        help="py-spy record the server (collapsed stacks) into FILE")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON")
    args = parser.parse_args()

    logs.configure("warning", "json", stream=sys.stderr)
    rng = random.Random(1)
    work = Path(tempfile.mkdtemp(prefix="fbmta-bench-"))
    config_path = work / "bench.toml"
    config_path.write_text(
        f'[database]\nurl = "sqlite:///{work}/bench.sqlite3"\n'
        f'[smtp]\nhost = "127.0.0.1"\nport = 0\ndomain = "{DOMAIN}"\nlmtp = false\n'
        f'max_message_size = "10MB"\nmax_sessions = 1000\n'
        f'[security]\nsecret_key = "{SECRET}"\n[logging]\nformat = "json"\nlevel = "info"\n')
    cfg = config_mod.load(config_path, env={})
    contact_ids, lead_ids = seed(cfg, args.contacts, args.leads)
    book = AddressBook.from_config(cfg)
    results = {}

    # 1. the bare aiosmtpd ceiling
    bare, port = start([sys.executable, str(ROOT / "bench" / "bare_server.py"), "0"])
    try:
        messages = build_messages(args.messages, book, contact_ids, lead_ids, rng)
        elapsed, lat, codes = asyncio.run(drive(port, messages, args.concurrency, args.reuse))
        results["bare"] = {"messages": len(lat), "seconds": round(elapsed, 3),
                           "rate": round(len(lat) / elapsed, 1), "p50_ms": round(pct(lat, .5), 2),
                           "p99_ms": round(pct(lat, .99), 2), "codes": codes,
                           "peak_rss_mb": round(peak_rss_mb(bare.pid), 1)}
    finally:
        bare.kill()

    # 2. feedback-mta serve, whole path
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    serve, port = start([sys.executable, "-m", "feedback_mta", "serve", "--config",
                         str(config_path)], ready="server.started", env=env)
    spy = None
    if args.profile:
        spy = subprocess.Popen(["py-spy", "record", "--pid", str(serve.pid), "--format", "raw",
                                "--threads", "--gil", "--rate", "200", "-o", args.profile],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(1)
    try:
        messages = build_messages(args.messages, book, contact_ids, lead_ids, rng)
        t0 = time.perf_counter()
        elapsed, lat, codes = asyncio.run(drive(port, messages, args.concurrency, args.reuse))
        done = wait_processed(cfg, codes.get("250", 0), timeout=600)
        whole = done - t0
        results["feedback-mta"] = {
            "messages": len(lat), "seconds_to_250": round(elapsed, 3),
            "accept_rate": round(len(lat) / elapsed, 1),
            "seconds_to_processed": round(whole, 3),
            "rate": round(codes.get("250", 0) / whole, 1),
            "p50_ms": round(pct(lat, .5), 2), "p99_ms": round(pct(lat, .99), 2),
            "codes": codes, "peak_rss_mb": round(peak_rss_mb(serve.pid), 1)}
    finally:
        if spy is not None:
            spy.send_signal(2)
            spy.wait(60)
        serve.terminate()
        serve.wait(30)
    results["ratio"] = round(results["feedback-mta"]["rate"] / results["bare"]["rate"], 3)
    results["setup"] = {"messages": args.messages, "concurrency": args.concurrency,
                        "contacts": len(contact_ids), "reuse": args.reuse,
                        "cpus": os.cpu_count(), "database": "sqlite (WAL, synchronous=FULL)"}
    if args.json:
        print(json.dumps(results))
        return
    b, f = results["bare"], results["feedback-mta"]
    print(f"load: {args.messages} messages, {args.concurrency} sessions, "
          f"{'reused' if args.reuse else 'one per'} connection, {len(contact_ids)} contacts")
    print(f"{'server':<28}{'msg/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'peak RSS MB':>13}")
    print(f"{'bare aiosmtpd (no-op)':<28}{b['rate']:>9}{b['p50_ms']:>9}{b['p99_ms']:>9}"
          f"{b['peak_rss_mb']:>13}")
    print(f"{'feedback-mta (to 250)':<28}{f['accept_rate']:>9}{f['p50_ms']:>9}{f['p99_ms']:>9}"
          f"{f['peak_rss_mb']:>13}")
    print(f"{'feedback-mta (processed)':<28}{f['rate']:>9}")
    print(f"ratio, whole path / bare: {results['ratio']}x   codes: {f['codes']}")


if __name__ == "__main__":
    main()
