"""The ESP webhooks as HTTP meets them, on a real server over loopback: a signed request is
answered ``{"stored": N}`` in one log line (``hook.stored``, with the request's fields) and
counted once, however its body arrives (in pieces, pipelined behind another, chunked, past
the size verified on the loop); one over the size limit, cut off or refused stores nothing
and gets the problem+json it always got. ``hooks.Fast`` answers most of these before
FastAPI, and the rest go on to it: both must behave the same.
"""

from __future__ import annotations

import json
import socket
import time

from feedback_mta import counters
from tests.test_hooks import _mailgun, _unsubscribe_url, hooks  # noqa: F401 (the fixture)

ROUTE = "/hooks/{provider}"


def _value(name: str, **labels: str) -> float:
    return counters.REGISTRY.get_sample_value(name, labels) or 0.0


def _figures() -> dict[str, float]:
    return {"ok": _value("feedback_mta_http_requests_total", route=ROUTE, status="200"),
            "refused": _value("feedback_mta_http_requests_total", route=ROUTE, status="401"),
            "stored": _value("feedback_mta_hooks_total", provider="mailgun", outcome="stored"),
            "accepted": _value("feedback_mta_messages_accepted_total", protocol="http")}


def _head(path: str, length: int | None = None, chunked: bool = False) -> bytes:
    framing = ("Transfer-Encoding: chunked\r\n" if chunked
               else f"Content-Length: {length}\r\n")
    return (f"POST {path} HTTP/1.1\r\nHost: fb.test\r\nContent-Type: application/json\r\n"
            f"{framing}\r\n").encode()


def _request(body: bytes, path: str = "/hooks/mailgun") -> bytes:
    return _head(path, len(body)) + body


class Raw:
    """One keep-alive connection that sends bytes as given and reads whole answers."""

    def __init__(self, port: int) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        self.buffer = b""

    def send(self, *parts: bytes, pause: float = 0.0) -> None:
        for part in parts:
            self.sock.sendall(part)
            if pause:
                time.sleep(pause)

    def answer(self) -> tuple[int, dict[str, str], bytes]:
        while b"\r\n\r\n" not in self.buffer:
            self._read()
        head, self.buffer = self.buffer.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        headers = dict(line.lower().split(": ", 1) for line in lines[1:])
        length = int(headers.get("content-length", "0"))
        while len(self.buffer) < length:
            self._read()
        body, self.buffer = self.buffer[:length], self.buffer[length:]
        return int(lines[0].split()[1]), headers, body

    def _read(self) -> None:
        data = self.sock.recv(65536)
        assert data, f"closed; had {self.buffer!r}"
        self.buffer += data

    def close(self) -> None:
        self.sock.close()


def _port(hooks) -> int:  # noqa: F811
    return int(hooks.url.rsplit(":", 1)[1])


def test_a_stored_webhook_is_one_line_and_counted_once(hooks):  # noqa: F811
    hooks.contact("ida@people.test")
    before = _figures()
    answer = hooks.client.post("/hooks/mailgun", content=_mailgun(
        "failed-permanent.json", recipient="ida@people.test", event_id="one-line"))
    assert answer.status_code == 200
    assert answer.content == b'{"stored":1}'
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["content-length"] == "12"
    [row] = hooks.done(1)
    line = hooks.server.wait_for("hook.stored", provider="mailgun")
    assert {k: line[k] for k in ("method", "route", "path", "status", "client", "events",
                                 "ids")} == {
        "method": "POST", "route": ROUTE, "path": "/hooks/mailgun", "status": 200,
        "client": "127.0.0.1", "events": 1, "ids": [row["id"]]}
    assert isinstance(line["duration_ms"], float | int) and line["duration_ms"] >= 0
    assert not [e for e in hooks.server.events
                if e.get("event") == "http.request" and e.get("path") == "/hooks/mailgun"]
    after = _figures()
    assert {k: after[k] - before[k] for k in after} == {
        "ok": 1, "refused": 0, "stored": 1, "accepted": 1}

    # A one-click unsubscribe (through FastAPI) is one such line too.
    contact = hooks.contact("jo@people.test")
    path = _unsubscribe_url(hooks, contact)
    assert hooks.client.post(path, content=b"List-Unsubscribe=One-Click", headers={
        "content-type": "application/x-www-form-urlencoded"}).status_code == 200
    line = hooks.server.wait_for("hook.stored", provider="one-click")
    assert (line["route"], line["status"], line["events"]) == ("/u/{token}", 200, 1)
    assert not [e for e in hooks.server.events
                if e.get("event") == "http.request" and e.get("route") == "/u/{token}"]


def test_bodies_in_pieces_pipelined_chunked_or_large_are_read_whole(hooks):  # noqa: F811
    for n in range(6):
        hooks.contact(f"piece{n}@people.test")

    def body(n: int, pad: int = 0) -> bytes:
        signed = json.loads(_mailgun("unsubscribed.json", recipient=f"piece{n}@people.test",
                                     event_id=f"piece-{n}"))
        if pad:  # outside the signature (Mailgun signs timestamp and token only)
            signed["event-data"]["padding"] = "x" * pad
        return json.dumps(signed).encode()

    raw = Raw(_port(hooks))
    try:
        # The head, then the body in three pieces, a moment apart.
        first = _request(body(0))
        raw.send(first[:40], first[40:200], first[200:], pause=0.05)
        assert raw.answer()[::2] == (200, b'{"stored":1}')
        # Two requests in one write: two answers, in order.
        raw.send(_request(body(1)) + _request(body(2)))
        assert [raw.answer()[0] for _ in range(2)] == [200, 200]
        # Chunked (no Content-Length): FastAPI's path, the same answer.
        data = body(3)
        raw.send(_head("/hooks/mailgun", chunked=True),
                 b"%x\r\n%s\r\n" % (100, data[:100]),
                 b"%x\r\n%s\r\n0\r\n\r\n" % (len(data) - 100, data[100:]), pause=0.05)
        assert raw.answer()[::2] == (200, b'{"stored":1}')
        # Past the size verified on the event loop: verified in a thread.
        raw.send(_request(body(4, pad=100_000)))
        assert raw.answer()[::2] == (200, b'{"stored":1}')
        # And the connection still serves the next one.
        raw.send(_request(body(5)))
        assert raw.answer()[0] == 200
    finally:
        raw.close()
    rows = hooks.done(6)
    assert [r["reason"] for r in rows] == ["opted out"] * 6
    assert hooks.server.count("hook.stored") == 6


def test_webhooks_sent_whole_in_one_write_are_answered_as_any_other(hooks):  # noqa: F811
    """A request that arrives whole in one read is answered by the connection itself
    (``connections.whole_request``): the same answers, lines and rows as through h11, on a
    connection that goes on as after any response; anything unusual goes to h11."""
    for n in range(4):
        hooks.contact(f"one{n}@people.test")
    raw = Raw(_port(hooks))
    try:
        first = _mailgun("failed-permanent.json", recipient="one0@people.test",
                         event_id="one-0")
        raw.send(_request(first))
        status, headers, body = raw.answer()
        assert (status, body) == (200, b'{"stored":1}')
        assert headers["content-type"] == "application/json"
        # Hostile input gets the same problems: forged (401), not the provider's (400).
        raw.send(_request(_mailgun("complained.json", recipient="one1@people.test",
                                   key="not-the-key")))
        status, headers, body = raw.answer()
        assert status == 401 and headers["content-type"] == "application/problem+json"
        assert json.loads(body)["status"] == 401
        junk = json.loads(_mailgun("complained.json", recipient="one1@people.test"))
        del junk["event-data"]
        raw.send(_request(json.dumps(junk).encode()))
        status, headers, _ = raw.answer()
        assert status == 400 and headers["content-type"] == "application/problem+json"
        # The same connection then goes through h11: another route, two pipelined hooks.
        raw.send(b"GET /healthz HTTP/1.1\r\nHost: fb.test\r\n\r\n")
        assert raw.answer()[0] == 200
        raw.send(b"".join(_request(_mailgun("failed-permanent.json",
                                            recipient=f"one{n}@people.test",
                                            event_id=f"one-{n}")) for n in (2, 3)))
        assert [raw.answer()[::2] for _ in range(2)] == [(200, b'{"stored":1}')] * 2
        # A field h11 refuses: its 400, problem+json too.
        raw.send(_request(first).replace(b"Host:", b"Bad Name: x\r\nHost:"))
        status, headers, _ = raw.answer()
        assert status == 400 and headers["content-type"] == "application/problem+json"
    finally:
        raw.close()
    rows = hooks.done(3)
    assert [r["provider"] for r in rows] == ["mailgun"] * 3
    stored = [e for e in hooks.server.events if e.get("event") == "hook.stored"]
    assert [(e["route"], e["status"], e["events"]) for e in stored] == [(ROUTE, 200, 1)] * 3
    assert hooks.server.count("hook.refused") == 1


def test_a_content_length_of_thousands_of_digits_whole_in_one_write_gets_a_400(
        hooks):  # noqa: F811
    """More digits than a length has (5,000: past int()'s own limit) are h11's 400, not an
    error in the connection that resets it without an answer."""
    raw = Raw(_port(hooks))
    try:
        body = _mailgun("failed-permanent.json", recipient="long@people.test")
        raw.send(_request(body).replace(b"Content-Length: ",
                                        b"Content-Length: " + b"0" * 5000))
        status, headers, _ = raw.answer()
        assert status == 400 and headers["content-type"] == "application/problem+json"
    finally:
        raw.close()
    assert hooks.server.count("hook.stored") == 0


def test_oversized_cut_off_and_refused_webhooks_store_nothing(hooks):  # noqa: F811
    port = _port(hooks)
    signed = _mailgun("complained.json", recipient="kim@people.test")
    raw = Raw(port)
    try:
        # Over [smtp] max_message_size by its Content-Length: 413 before the body is read.
        raw.send(_head("/hooks/mailgun", 2 * 1024 * 1024))
        status, headers, answer = raw.answer()
        assert status == 413 and headers["content-type"] == "application/problem+json"
        assert json.loads(answer)["status"] == 413
    finally:
        raw.close()
    raw = Raw(port)
    try:
        # Chunked past the limit: 413 once it has streamed past it.
        raw.send(_head("/hooks/mailgun", chunked=True))
        piece = b"x" * 65536
        status = None
        for _ in range(20):
            try:
                raw.send(b"%x\r\n%s\r\n" % (len(piece), piece))
            except OSError:
                break
            raw.sock.settimeout(0.01)
            try:
                raw._read()
                break
            except TimeoutError:
                continue
            finally:
                raw.sock.settimeout(10)
        status, headers, _ = raw.answer()
        assert status == 413 and headers["content-type"] == "application/problem+json"
    finally:
        raw.close()
    # Cut off: half the body, then the client goes away: nobody to answer, and no server
    # error either (499, "client closed request"), on the fast path and through FastAPI.
    for path in ("/hooks/mailgun", "/v1/leads"):
        raw = Raw(port)
        raw.send(_head(path, len(signed)) + signed[: len(signed) // 2])
        time.sleep(0.1)
        raw.close()
        assert hooks.server.wait_for("http.request", path=path)["status"] == 499
    # Refused, each its problem and its line; then a good one is still served.
    before = _figures()
    raw = Raw(port)
    try:
        forged = _mailgun("complained.json", recipient="kim@people.test", key="not-the-key")
        raw.send(_request(forged))
        status, headers, answer = raw.answer()
        assert status == 401 and headers["content-type"] == "application/problem+json"
        assert json.loads(answer) == {"type": "about:blank", "title": "Unauthorized",
                                      "status": 401, "detail": "bad signature"}
        no_event = json.loads(signed)
        del no_event["event-data"]
        raw.send(_request(json.dumps(no_event).encode()))
        status, headers, answer = raw.answer()
        assert status == 400 and json.loads(answer)["detail"] == "no event-data object"
        raw.send(_request(signed))
        assert raw.answer()[0] == 200
    finally:
        raw.close()
    line = hooks.server.wait_for("http.request", route=ROUTE, status=401)
    assert (line["method"], line["path"]) == ("POST", "/hooks/mailgun")
    assert hooks.server.wait_for("hook.refused", provider="mailgun")["reason"] == "bad signature"
    hooks.server.wait_for("hook.stored", provider="mailgun")  # counted, then written
    after = _figures()
    assert {k: after[k] - before[k] for k in after} == {
        "ok": 1, "refused": 1, "stored": 1, "accepted": 1}
    assert len(hooks.done(1)) == 1  # only the good one
    # Not POST: FastAPI's 405, as before.
    assert hooks.client.get("/hooks/mailgun").status_code == 405
