"""The SMTP edge against the real server process: who is refused, with which code."""

from __future__ import annotations

import smtplib
import socket
import time

import pytest

from feedback_mta.edge import smtp as codes
from tests.support import (
    inbound_rows,
    message,
    open_data,
    reply_code,
    reply_text,
    seed,
    send,
    wait_until,
)


def test_accepts_our_boxes_and_stores_before_250(server, engine, cfg):
    s = seed(engine, cfg)
    for rcpt in (s.reply, "fbl@fb.test", "FBL@FB.TEST",
                 s.bounce(s.contact_ids[1]), s.unsubscribe(s.contact_ids[2])):
        code, text = send(server.port, "sender@isp.test", [rcpt], message())
        assert code == 250, (rcpt, code, text)
        assert text.startswith(b"2.0.0 Ok: stored as ")
        stored_id = int(text.rsplit(b" ", 1)[1])
        # The 250 came after the commit: the row is there the moment we read the reply.
        assert stored_id in {r["id"] for r in inbound_rows(engine)}


@pytest.mark.parametrize("rcpt", [
    "nobody@fb.test",                      # not a box we own
    "postmaster@other.test",               # postmaster@ of our domain only
    "abuse+x@fb.test",                     # no plus addressing on the admin boxes
    "fbl@other.test",                      # foreign domain: never a relay
    "someone@gmail.com",
    "reply+1-aaaaaaaaaaaaaaaa@fb.test",    # forged token
    "reply@fb.test",                       # token missing
    "reply+@fb.test",
    "bounce+1@fb.test",                    # mac missing
    "fbl+x@fb.test",
])
def test_refuses_what_is_not_ours(shared_server, rcpt):
    client = smtplib.SMTP("127.0.0.1", shared_server.port)
    client.ehlo()
    client.mail("a@b.test")
    code, text = client.rcpt(rcpt)
    client.quit()
    assert (code, text) == (reply_code(codes.NO_SUCH_USER), reply_text(codes.NO_SUCH_USER))


def test_token_is_bound_to_its_purpose_and_id(server, engine, cfg):
    s = seed(engine, cfg)
    reply_token = s.reply.split("+")[1].split("@")[0]
    lead_id, mac = reply_token.split("-")
    client = smtplib.SMTP("127.0.0.1", server.port)
    client.ehlo()
    client.mail("a@b.test")
    # A genuine reply token moved to another box, or to another id, is refused.
    assert client.rcpt(f"unsubscribe+{reply_token}@fb.test")[0] == 550
    assert client.rcpt(f"reply+{int(lead_id) + 1}-{mac}@fb.test")[0] == 550
    # Case changes by mail systems do not matter.
    assert client.rcpt(s.reply.upper())[0] == 250
    client.quit()


def test_size_limit_advertised_and_enforced(server):
    client = smtplib.SMTP("127.0.0.1", server.port)
    client.ehlo()
    assert client.has_extn("size")
    assert int(client.esmtp_features["size"]) == 1024 * 1024
    # Declared too big in MAIL FROM:
    code, text = client.docmd("MAIL FROM:<a@b.test> SIZE=2000000")
    assert (code, text) == (reply_code(codes.SIZE_TOO_BIG), reply_text(codes.SIZE_TOO_BIG))
    # Undeclared, and too big once sent:
    client.mail("a@b.test")
    assert client.rcpt("fbl@fb.test")[0] == 250
    big = message(body=("x" * 76 + "\r\n") * 16000)
    assert len(big) > 1024 * 1024
    code, text = client.data(big)
    assert (code, text) == (reply_code(codes.TOO_BIG), reply_text(codes.TOO_BIG))
    # The session is still usable afterwards.
    assert client.noop()[0] == 250
    client.quit()


def test_too_many_recipients(server_factory, tmp_path, engine, database_url):
    from tests.conftest import write_config

    server = server_factory(write_config(tmp_path / "c.toml", database_url,
                                         smtp={"max_recipients": 2}))
    client = smtplib.SMTP("127.0.0.1", server.port)
    client.ehlo()
    client.mail("a@b.test")
    assert client.rcpt("fbl@fb.test")[0] == 250
    assert client.rcpt("fbl@fb.test")[0] == 250
    assert client.rcpt("fbl@fb.test") == (reply_code(codes.TOO_MANY_RCPTS),
                                          reply_text(codes.TOO_MANY_RCPTS))
    client.quit()


def test_null_sender_is_accepted_and_stored_as_empty(server, engine):
    code, _ = send(server.port, "", ["fbl@fb.test"], message())
    assert code == 250
    assert inbound_rows(engine)[-1]["mail_from"] == ""


def test_session_cap_answers_421(server_factory, tmp_path, database_url, engine):
    from tests.conftest import write_config

    server = server_factory(write_config(tmp_path / "c.toml", database_url,
                                         smtp={"max_sessions": 2}))
    held = [smtplib.SMTP("127.0.0.1", server.port) for _ in range(2)]
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        assert sock.recv(200).startswith(codes.TOO_MANY_SESSIONS.encode())
        assert sock.recv(200) == b""  # and hung up
    held[0].quit()

    def a_slot_is_free_again() -> smtplib.SMTP | None:
        try:  # the slot is let go when the server sees the connection close
            return smtplib.SMTP("127.0.0.1", server.port)
        except smtplib.SMTPConnectError:
            return None

    again = wait_until(a_slot_is_free_again, timeout=10, what="the quit session's slot")
    assert again.noop()[0] == 250
    again.quit()
    held[1].quit()


def test_idle_client_is_disconnected(server_factory, tmp_path, sqlite_url):
    from tests.conftest import write_config

    server = server_factory(write_config(tmp_path / "c.toml", sqlite_url,
                                         smtp={"idle_timeout": "1s"}))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(200).startswith(b"220 ")
        started = time.monotonic()
        # Told why, then closed by the server, without a word from us.
        assert sock.recv(200) == codes.TIMEOUT.encode() + b"\r\n"
        assert sock.recv(200) == b""
        assert 0.5 < time.monotonic() - started < 5


def test_data_timeout_cuts_a_slow_sender(server_factory, tmp_path, sqlite_url):
    from tests.conftest import write_config

    server = server_factory(write_config(tmp_path / "c.toml", sqlite_url,
                                         smtp={"idle_timeout": "30s", "data_timeout": "1s"}))
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        f = open_data(sock)
        started = time.monotonic()
        sock.sendall(b"Subject: slow\r\n")
        # Cut off; nothing stored, nothing acknowledged.
        assert f.readline() == codes.TIMEOUT.encode() + b"\r\n"
        assert f.readline() == b""
        assert time.monotonic() - started < 5


def test_server_output_is_json_lines_only(server, engine, cfg):
    """A DSN makes mail-parser warn through stdlib logging; none of it may reach stdout."""
    from tests.conftest import FIXTURES

    s = seed(engine, cfg)
    raw = (FIXTURES / "messages" / "dsn-postfix-hard.eml").read_bytes()
    assert send(server.port, "", [s.bounce(s.contact_ids[0])], raw)[0] == 250
    processed = server.wait_for("message.processed")
    assert processed["kind"] == "bounce"
    assert [e for e in server.events if e.get("event") == "raw"] == []
    assert all({"ts", "level", "event"} <= e.keys() for e in server.events)
