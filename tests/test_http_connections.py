"""HTTP connections cannot be used to deny service: idle and half-sent sockets are closed at
``[http] header_timeout``, a keep-alive one silent after its response at ``idle_timeout``,
and HTTP's own caps (``max_connections``, ``max_connections_per_ip``) refuse the next
connection cheaply while the open ones go on. Every answer the connection layer gives is
problem+json.

Held sockets come from 127.0.0.2 ... 127.0.0.31 (all loopback on Linux), so several
client addresses are real peers of the server; the requests that must still be answered
come from 127.0.0.1.
"""

from __future__ import annotations

import json
import selectors
import shutil
import socket
import time

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from feedback_mta import config, counters
from feedback_mta.config import ConfigError
from feedback_mta.http.connections import Gate, Refusal, whole_request
from tests.conftest import write_config
from tests.support import wait_until
from tests.test_cli import ok_json

PROBLEM = "application/problem+json"


class Http:
    def __init__(self, server, path) -> None:
        self.server, self.path = server, path
        self.port = server.wait_for("http.started")["port"]
        self.url = f"http://127.0.0.1:{self.port}"

    def hold(self, count: int, addresses: int = 1, first: int = 2) -> list[socket.socket]:
        """``count`` connected sockets that send nothing, spread over ``addresses``
        loopback addresses from 127.0.0.``first``."""
        held = []
        for n in range(count):
            sock = socket.socket()
            sock.bind((f"127.0.0.{first + n % addresses}", 0))
            sock.connect(("127.0.0.1", self.port))
            held.append(sock)
        return held

    def open(self, source: str = "127.0.0.1") -> socket.socket:
        return self.hold(1, first=int(source.rsplit(".", 1)[1]))[0]


@pytest.fixture
def serve_http(tmp_path, sqlite_template, server_factory):
    """A server with an HTTP listener and these ``[http]`` settings, on SQLite."""
    def make(**http) -> Http:
        database = tmp_path / "feedback.sqlite3"
        shutil.copyfile(sqlite_template, database)
        path = write_config(tmp_path / "http.toml", f"sqlite:///{database}",
                            http={"listen": "127.0.0.1:0", **http})
        return Http(server_factory(path, args=("--no-smtp",)), path)
    return make


def _read_answer(sock: socket.socket, timeout: float = 5) -> tuple[int, dict, bytes, bytes]:
    """One response on ``sock``: status, headers, body, and whatever followed it before
    the server closed the socket (the socket is read to its end only after a
    ``connection: close``)."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"closed without an answer: {data!r}"
        data += chunk
    head, _, rest = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(rest) < length:
        chunk = sock.recv(65536)
        assert chunk, "closed in the middle of the body"
        rest += chunk
    after = rest[length:]
    if headers.get("connection") == "close":
        while chunk := sock.recv(65536):
            after += chunk
    return int(lines[0].split()[1]), headers, rest[:length], after


def _problem(status: int, headers: dict, body: bytes, expected: int) -> dict:
    assert status == expected, body
    assert headers["content-type"] == PROBLEM
    document = json.loads(body)
    assert document["status"] == expected and document["title"] and document["detail"]
    return document


def _closes(held: list[socket.socket], since: float, timeout: float) -> list[tuple[float, bytes]]:
    """For each held socket: seconds from ``since`` until the server closed it, and what it
    sent before closing."""
    selector = selectors.DefaultSelector()
    for sock in held:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_READ, [b""])
    closed: dict[socket.socket, tuple[float, bytes]] = {}
    deadline = time.monotonic() + timeout
    while len(closed) < len(held) and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.05):
            try:
                chunk = key.fileobj.recv(65536)
            except ConnectionResetError:
                chunk = b""
            if chunk:
                key.data[0] += chunk
                continue
            closed[key.fileobj] = (time.monotonic() - since, key.data[0])
            selector.unregister(key.fileobj)
    selector.close()
    assert len(closed) == len(held), f"{len(held) - len(closed)} sockets still open"
    return [closed[sock] for sock in held]


def _open_connections() -> float | None:
    """The server's count of open HTTP connections (it runs in this process)."""
    return counters.REGISTRY.get_sample_value("feedback_mta_http_connections")


def _request(sock: socket.socket, path: str = "/healthz", extra: str = "") -> None:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: fb.test\r\n{extra}\r\n".encode())


def _served_soon(http: Http, source: str) -> bool:
    """A new connection from ``source`` is served within 5 s (the server has seen the
    slots freed by the sockets the test closed)."""
    def served() -> bool:
        sock = http.open(source)
        _request(sock)
        return _read_answer(sock)[0] == 200
    return wait_until(served, timeout=5, what=f"a connection from {source} served")


# --- idle and slow sockets ---------------------------------------------------------------------


def test_300_idle_sockets_from_30_addresses_leave_the_routes_answering_and_are_closed(
        serve_http):
    """The finding: 200 sockets that send nothing had every route answer 503. Now the
    routes answer at once while 300 are held, and each idle one is closed, unanswered, at
    the header timeout from its start."""
    http = serve_http(header_timeout="2s", idle_timeout="1s")
    account = ok_json(http.path, "account", "add", "Dealer One")["id"]
    key = ok_json(http.path, "key", "add", "--account", str(account))["key"]
    client = httpx.Client(base_url=http.url, timeout=10,
                          headers={"Authorization": f"Bearer {key}"})

    connected = time.monotonic()
    held = http.hold(300, addresses=30)
    started = time.perf_counter()
    health = client.get("/healthz")
    healthz_s = time.perf_counter() - started
    started = time.perf_counter()
    lead = client.post("/v1/leads", json={"email": "ann.lee@people.test", "first": "Ann",
                                          "last": "Lee"})
    lead_s = time.perf_counter() - started
    still_open = selectors.DefaultSelector()
    for sock in held:
        still_open.register(sock, selectors.EVENT_READ)
    assert not still_open.select(timeout=0), "a held socket was closed before the requests"
    still_open.close()

    assert health.status_code == 200, health.text
    assert lead.status_code == 201, lead.text
    assert healthz_s < 1 and lead_s < 1, (healthz_s, lead_s)
    closes = _closes(held, connected, timeout=10)
    assert all(sent == b"" for _, sent in closes)  # closed silently: nothing was asked
    times = sorted(t for t, _ in closes)
    assert times[0] >= 1.9 and times[-1] <= 3.0, times[::30]
    assert http.server.count("http.header_timeout") >= 300
    client.close()
    wait_until(lambda: _open_connections() == 0, timeout=5, what="every connection uncounted")


def test_a_half_sent_header_is_answered_408_and_closed_at_the_header_timeout(serve_http):
    http = serve_http(header_timeout="1s", idle_timeout="1s")
    sock = http.open("127.0.0.2")
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: fb.test\r\n")
    sock.settimeout(0.2)
    answer = b""
    while not answer and time.monotonic() - started < 5:  # a slowloris: a byte at a time
        try:
            sock.sendall(b"X")
            answer = sock.recv(65536)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            break
    waited = time.monotonic() - started
    sock.settimeout(5)
    while chunk := sock.recv(65536):
        answer += chunk
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 408 "), answer
    assert b"content-type: application/problem+json" in head.lower()
    assert json.loads(body)["status"] == 408
    assert 0.9 <= waited <= 2.0, waited
    event = http.server.wait_for("http.header_timeout", peer="127.0.0.2")
    assert event["received"] > 0


def test_a_keep_alive_connection_is_closed_when_silent_or_slow_after_its_response(serve_http):
    http = serve_http(header_timeout="2s", idle_timeout="1s")
    # Used again within the idle timeout: it goes on.
    sock = http.open()
    _request(sock)
    assert _read_answer(sock)[0] == 200
    time.sleep(0.2)
    _request(sock)
    assert _read_answer(sock)[0] == 200
    answered = time.monotonic()
    # Then silent: closed, unanswered, at the idle timeout.
    (closed, sent), = _closes([sock], answered, timeout=5)
    assert sent == b"" and 0.9 <= closed <= 2.0, closed

    # A next request begun in time but never finished: 408 at the header timeout, counted
    # from the end of the response before it.
    sock = http.open()
    _request(sock)
    assert _read_answer(sock)[0] == 200
    answered = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    (closed, sent), = _closes([sock], answered, timeout=5)
    assert sent.startswith(b"HTTP/1.1 408 ") and 1.9 <= closed <= 3.0, (closed, sent)


# --- the caps ----------------------------------------------------------------------------------


def test_one_address_cannot_take_the_slots_of_others(serve_http):
    """Loopback is not exempt: 127.0.0.2 holding its five slots gets 429 for a sixth, while
    127.0.0.3 and 127.0.0.1 are served."""
    http = serve_http(max_connections_per_ip=5, header_timeout="5s", idle_timeout="5s")
    held = http.hold(5, first=2)
    refused = http.open("127.0.0.2")
    _request(refused)
    status, headers, body, _ = _read_answer(refused)
    assert "max_connections_per_ip" in _problem(status, headers, body, 429)["detail"]
    assert headers["connection"] == "close" and int(headers["retry-after"]) >= 1
    assert refused.recv(1) == b""  # and closed
    http.server.wait_for("http.limited", peer="127.0.0.2", limit=Refusal.PER_IP.value)

    other = http.open("127.0.0.3")
    _request(other)
    assert _read_answer(other)[0] == 200
    assert httpx.get(f"{http.url}/healthz", timeout=5).status_code == 200
    held[0].close()  # a slot freed is a slot again
    assert _served_soon(http, "127.0.0.2")


def test_past_max_connections_new_ones_are_refused_and_the_open_ones_go_on(serve_http):
    http = serve_http(max_connections=20, header_timeout="5s", idle_timeout="5s")
    established = http.open()
    _request(established)
    assert _read_answer(established)[0] == 200
    held = http.hold(19, addresses=10)
    wait_until(lambda: _open_connections() == 20, timeout=5, what="20 connections open")

    refused = http.open("127.0.0.1")
    started = time.perf_counter()
    _request(refused)
    status, headers, body, _ = _read_answer(refused)
    assert time.perf_counter() - started < 1
    assert "max_connections" in _problem(status, headers, body, 503)["detail"]
    assert int(headers["retry-after"]) >= 1
    http.server.wait_for("http.limited", limit=Refusal.TOTAL.value)

    _request(established)  # the keep-alive connection opened before is still served
    assert _read_answer(established)[0] == 200
    for sock in held:
        sock.close()
    assert _served_soon(http, "127.0.0.1")


def test_what_uvicorn_answered_in_plain_text_is_problem_json(serve_http):
    http = serve_http()
    # Garbage; a head still incomplete past h11's 16 KiB.
    for garbage in (b"NOT HTTP AT ALL\r\n\r\n",
                    b"GET / HTTP/1.1\r\nHost: fb.test\r\nX-Big: " + b"a" * 20000):
        sock = http.open()
        sock.sendall(garbage)
        _problem(*_read_answer(sock)[:3], 400)


# --- the bookkeeping and the keys ----------------------------------------------------------------


def test_the_gate_counts_by_address_an_ipv6_64_as_one_and_skips_the_exempt():
    gate = Gate(max_connections=4, per_ip=2, header_timeout=10, idle_timeout=5,
                exempt=["10.0.0.0/8"])
    assert gate.client("2001:db8::1") == gate.client("2001:db8::ffff:2") == "2001:db8::/64"
    assert gate.client("::ffff:192.0.2.7") == "192.0.2.7"
    assert gate.client("10.1.2.3") is None and gate.client(None) is None
    a, b = gate.client("2001:db8::1"), gate.client("2001:db8::2")
    assert gate.admit(a) is None and gate.admit(b) is None
    assert gate.admit(gate.client("2001:db8::3")) is Refusal.PER_IP
    assert gate.admit(gate.client("10.0.0.1")) is None
    assert gate.admit(gate.client("10.0.0.2")) is None
    assert gate.admit(gate.client("192.0.2.1")) is Refusal.TOTAL
    gate.release(a)
    assert gate.admit(gate.client("2001:db8::3")) is None
    assert gate.by_client == {"2001:db8::/64": 2} and gate.open == 4


def test_the_idle_timeout_cannot_outlast_the_header_timeout():
    base = {"database": {"url": "sqlite:///x.db"},
            "smtp": {"host": "127.0.0.1", "port": 25, "domain": "fb.example.com",
                     "lmtp": False, "max_message_size": "10MB"},
            "security": {"secret_key": "0123456789abcdef0123"}}
    with pytest.raises(ConfigError, match=r"\[http\] idle_timeout: cannot be longer"):
        config.from_mapping({**base, "http": {"header_timeout": "5s", "idle_timeout": "6s"}},
                            env={})
    with pytest.raises(ConfigError, match=r"\[http\] max_connections_per_ip: expected"):
        config.from_mapping({**base, "http": {"max_connections_per_ip": 0}}, env={})


# --- what a response costs the wire ------------------------------------------------------------


def _data_segments_in(sock: socket.socket) -> int:
    """Linux's count of segments carrying data that this socket received
    (``tcpi_data_segs_in`` of ``struct tcp_info``)."""
    info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 160)
    return int.from_bytes(info[152:156], "little")


def test_a_small_answer_leaves_in_one_segment(serve_http):
    """The head and the body of an answer go out in one write: one segment on the wire
    (and one send for the server, one wake-up for the client) instead of two."""
    http = serve_http()
    sock = http.open()
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(3):
        before = _data_segments_in(sock)
        _request(sock)
        status, _, body, _ = _read_answer(sock)
        assert status == 200 and json.loads(body)["database"]
        time.sleep(0.2)  # anything still on its way would arrive and be counted
        assert _data_segments_in(sock) - before == 1
    sock.close()


# --- requests read whole by the connection -------------------------------------------------


def _whole(head: str, body: bytes = b"{}", after: bytes = b"") -> bytes:
    return head.replace("\n", "\r\n").encode() + b"\r\n" + body + after


PLAIN = "POST /hooks/mailgun HTTP/1.1\nHost: fb.test\nContent-Length: 2\n"


@pytest.mark.parametrize("data", [
    _whole(PLAIN, after=b"POST"),                                   # something after it
    _whole(PLAIN, body=b"{"),                                       # the body not all here
    _whole(PLAIN.replace("2", "3")),                                # nor as declared
    _whole(PLAIN.replace("mailgun", "ses")),                        # a path not answered
    _whole(PLAIN.replace("mailgun", "mailgun?x=1")),
    _whole(PLAIN.replace("POST", "PUT")),
    _whole(PLAIN.replace("1.1", "1.0")),
    _whole(PLAIN.replace("Host: fb.test\n", "")),                  # no Host, or two
    _whole(PLAIN + "Host: other.test\n"),
    _whole(PLAIN + "Content-Length: 2\n"),                         # two lengths
    _whole(PLAIN.replace("2", "+2")),
    _whole(PLAIN + "Transfer-Encoding: chunked\n"),
    _whole(PLAIN + "Expect: 100-continue\n"),
    _whole(PLAIN + "Connection: close\n"),
    _whole(PLAIN + "X-Folded: a\n b\n"),                          # obsolete folding
    _whole(PLAIN + "Bad Name: x\n"),
    _whole(PLAIN + "X-Nul: a\x00b\n"),
    _whole(PLAIN.replace("Content-Length: 2", "Content-Length: 99999999"),
           body=b"x" * 99999999)[:200],
    _whole(PLAIN.replace("Content-Length: 2", "Content-Length: " + "0" * 5000 + "2")),
])
def test_only_one_plain_whole_request_is_read_by_the_connection(data):
    """Anything but one plain request, whole, to a path ``Direct`` answers, is left to h11."""
    assert whole_request(data, frozenset({"/hooks/mailgun"}), 1024) is None


_FIELD_LINES = st.tuples(
    st.sampled_from([b"Host", b"Content-Length", b"Transfer-Encoding", b"X-Sid", b"Bad Name",
                     b""]),
    st.sampled_from([b": ", b":", b" :", b":\t"]),
    st.one_of(st.sampled_from([b"fb.test", b"2", b"chunked", b"", b"+2", b"\xff"]),
              st.sampled_from([19, 20, 4300, 5000]).map(lambda n: b"0" * n + b"2"),
              st.binary(max_size=8)),
).map(b"".join)
#: A request to the path answered, its fields drawn (where a mistake would be).
_REQUESTS = st.tuples(st.lists(_FIELD_LINES, max_size=6), st.binary(max_size=4)).map(
    lambda r: b"POST /hooks/mailgun HTTP/1.1\r\n" + b"".join(f + b"\r\n" for f in r[0])
    + b"\r\n" + r[1])


@settings(max_examples=500, deadline=None)
@given(st.one_of(_REQUESTS, st.binary(max_size=64)))
def test_whatever_arrives_the_connection_s_reading_never_raises(data):
    """It runs inside ``data_received``: an exception there resets the connection with no
    answer (h11 answers what it refuses with a 400)."""
    found = whole_request(data, frozenset({"/hooks/mailgun"}), 1024)
    assert found is None or found[0] == "/hooks/mailgun"


def test_a_plain_whole_request_is_read_with_its_fields():
    data = _whole(PLAIN + "X-Mailgun-Sid:  a b\t\n", body=b"{}")
    assert whole_request(data, frozenset({"/hooks/mailgun"}), 1024) == (
        "/hooks/mailgun",
        [(b"host", b"fb.test"), (b"content-length", b"2"), (b"x-mailgun-sid", b"a b")],
        b"{}")
    over = _whole(PLAIN.replace("2", "2000"), body=b"x" * 2000)
    assert whole_request(over, frozenset({"/hooks/mailgun"}), 1024) is None  # BodyLimit's 413
