"""Floods and slow clients: limits answer with the right codes, memory stays bounded, and a
well-behaved client keeps being served while all of it goes on at once."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest

from feedback_mta.edge import smtp as codes
from tests.conftest import write_config
from tests.support import inbound_rows, message, send, wait_until

TIMEOUT_LINE = codes.TIMEOUT.encode() + b"\r\n"


def _rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def _read_all(sock: socket.socket, timeout: float = 15) -> bytes:
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except (ConnectionResetError, TimeoutError):
            return data
        if not chunk:
            return data
        data += chunk


def _greeted(port: int) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", port), timeout=10)
    assert sock.recv(200).startswith(b"220 ")
    return sock


def _to_data(sock: socket.socket) -> None:
    sock.sendall(b"EHLO flood\r\nMAIL FROM:<a@isp.test>\r\nRCPT TO:<fbl@fb.test>\r\nDATA\r\n")
    got = b""
    while b"354 " not in got:
        chunk = sock.recv(4096)
        assert chunk, got
        got += chunk


@pytest.mark.process
def test_everything_at_once(server_factory, tmp_path, database_url, engine):
    server = server_factory(write_config(
        tmp_path / "c.toml", database_url,
        smtp={"max_sessions": 400, "idle_timeout": "2s", "data_timeout": "3s",
              "max_message_size": "1MB"}))
    pid = server.proc.pid
    rss_before = _rss_kb(pid)
    results: dict[str, object] = {}
    peak = [rss_before]
    stop = threading.Event()

    def watch_memory():
        while not stop.is_set():
            peak[0] = max(peak[0], _rss_kb(pid))
            time.sleep(0.05)

    # 1. Many sessions that open and never speak.
    silent = [socket.create_connection(("127.0.0.1", server.port), timeout=10)
              for _ in range(150)]

    # 2. A client that sends one byte at a time, never finishing a command line.
    def trickle():
        sock = _greeted(server.port)
        started = time.monotonic()
        try:
            for byte in b"EHLO " + b"x" * 100:
                sock.sendall(bytes([byte]))
                time.sleep(0.25)
        except OSError:
            pass
        results["trickle"] = (_read_all(sock, 5), time.monotonic() - started)

    # 3. A line of a megabyte in DATA.
    def long_line():
        sock = _greeted(server.port)
        _to_data(sock)
        sock.sendall(b"Subject: x\r\n\r\n" + b"y" * 1024 * 1024 + b"\r\n.\r\nQUIT\r\n")
        results["long_line"] = _read_all(sock)

    # 4. Headers without end, past the size limit and the DATA timeout.
    def endless_headers():
        sock = _greeted(server.port)
        _to_data(sock)
        started = time.monotonic()
        sent = 0
        try:
            while time.monotonic() - started < 10:
                sock.sendall(b"X-Endless-%d: %s\r\n" % (sent, b"z" * 200))
                sent += 1
        except OSError:
            pass
        results["endless"] = (_read_all(sock, 5), time.monotonic() - started, sent)

    # 5. Commands pipelined in one write (PIPELINING is not advertised; clients do it anyway).
    def pipeline():
        sock = _greeted(server.port)
        sock.sendall(b"EHLO pipe\r\nMAIL FROM:<>\r\nRCPT TO:<fbl@fb.test>\r\nDATA\r\n"
                     + message(subject="pipelined") + b".\r\nQUIT\r\n")
        results["pipeline"] = _read_all(sock)

    threads = [threading.Thread(target=f) for f in
               (watch_memory, trickle, long_line, endless_headers, pipeline)]
    for t in threads:
        t.start()
    # Meanwhile a well-behaved client sends twenty messages, one after the other.
    latencies = []
    for i in range(20):
        started = time.monotonic()
        code, _ = send(server.port, "a@isp.test", ["fbl@fb.test"], message(subject=f"ok {i}"))
        latencies.append(time.monotonic() - started)
        assert code == 250
        time.sleep(0.1)
    for t in threads[1:]:
        t.join(30)
    stop.set()
    threads[0].join()

    assert max(latencies) < 2.0, latencies
    reply, seconds = results["trickle"]
    assert reply == TIMEOUT_LINE and seconds < 6  # cut at idle_timeout, told why
    assert codes.LINE_TOO_LONG.encode() in results["long_line"]
    reply, seconds, sent = results["endless"]
    assert reply.endswith(TIMEOUT_LINE) and 2.5 < seconds < 6, (reply, seconds)
    assert sent * 220 > 1024 * 1024  # it really did send more than the size limit
    lines = results["pipeline"].split(b"\r\n")
    # (the greeting was read before): EHLO, MAIL, RCPT, DATA, end of data, QUIT, in order
    assert [line[:3] for line in lines if line[:3].isdigit() and line[3:4] == b" "] == [
        b"250", b"250", b"250", b"354", b"250", b"221"], lines
    # The silent sessions were told and closed at idle_timeout, none hangs on.
    for sock in silent:
        greeting, _, rest = _read_all(sock, 5).partition(b"\r\n")
        assert greeting.startswith(b"220 ") and rest == TIMEOUT_LINE
        sock.close()
    # Memory: a megabyte line and megabytes of headers are discarded as they come.
    assert peak[0] - rss_before < 60 * 1024, (rss_before, peak[0])
    stored = inbound_rows(engine)
    assert len(stored) == 21  # the twenty and the pipelined one; nothing of the rest
    wait_until(lambda: server.count("message.processed") == 21, what="all processed")
