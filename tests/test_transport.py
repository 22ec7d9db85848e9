"""Transport: STARTTLS with a configured certificate, the PROXY protocol, per-client limits.

The certificate is a throwaway one from a throwaway CA (trustme); the client verifies it
against that CA, hostname included, as a careful MTA would.
"""

from __future__ import annotations

import ipaddress
import os
import smtplib
import socket
import ssl
import struct
import time

import pytest
import sqlalchemy as sa
import trustme

from feedback_mta.edge import smtp as codes
from feedback_mta.edge.limits import Limits, Refusal
from feedback_mta.edge.tls import TlsFiles
from tests.cli import run
from tests.conftest import write_config
from tests.support import inbound_rows, message, reply_code, reply_text


@pytest.fixture
def ca():
    return trustme.CA()


def _cert_files(ca, tmp_path, name="cert"):
    cert = ca.issue_cert("127.0.0.1", "mx.fb.test")
    cert_path, key_path = tmp_path / f"{name}.pem", tmp_path / f"{name}.key"
    cert.private_key_and_cert_chain_pem.write_to_path(str(cert_path))  # key + chain
    cert.private_key_pem.write_to_path(str(key_path))
    return cert_path, key_path


def _client_context(ca) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    return ctx


def test_starttls_with_the_configured_certificate(server_factory, tmp_path, database_url,
                                                  engine, ca):
    cert, key = _cert_files(ca, tmp_path)
    server = server_factory(write_config(tmp_path / "c.toml", database_url,
                                         smtp={"tls_cert": str(cert), "tls_key": str(key)}))
    assert server.wait_for("server.started")["starttls"] is True
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    client.ehlo()
    assert client.has_extn("starttls")
    assert client.starttls(context=_client_context(ca))[0] == 220
    assert client.sock.version() in ("TLSv1.2", "TLSv1.3")
    client.ehlo()
    assert not client.has_extn("starttls")  # RFC 3207 4.2: not offered twice
    client.mail("a@isp.test")
    client.rcpt("fbl@fb.test")
    code, text = client.data(message())
    client.quit()
    assert code == 250, text
    assert server.wait_for("message.accepted")["tls"] is True
    # A client that does not ask for TLS is still served (no require_starttls: feedback
    # from an old MTA is worth more than its transport).
    plain = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    plain.ehlo()
    plain.mail("a@isp.test")
    plain.rcpt("fbl@fb.test")
    assert plain.data(message())[0] == 250
    plain.quit()
    server.wait_for("message.accepted", tls=False)
    assert server.count("message.accepted") == 2
    assert len(inbound_rows(engine)) == 2


def test_no_starttls_without_a_certificate(server):
    client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
    client.ehlo()
    assert not client.has_extn("starttls")
    client.quit()


def test_a_multi_line_reply_arrives_whole_and_in_order(server):
    """EHLO's lines are held and written with its last one; each line intact, then the
    next command's reply on its own."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"220 ")
        sock.sendall(b"EHLO client.test\r\nNOOP\r\n")
        lines = [reader.readline() for _ in range(6)]
    assert lines[0].startswith(b"250-") and lines[0].endswith(b"\r\n")
    assert lines[1:] == [b"250-SIZE 1048576\r\n", b"250-8BITMIME\r\n", b"250-SMTPUTF8\r\n",
                         b"250 HELP\r\n", b"250 OK\r\n"]


def test_a_renewed_certificate_is_picked_up_and_a_broken_one_kept_out(tmp_path, ca):
    cert, key = _cert_files(ca, tmp_path)
    files = TlsFiles(str(cert), str(key))
    assert files.reload_if_changed() is False  # nothing changed
    new_cert, new_key = _cert_files(trustme.CA(), tmp_path, "new")
    cert.write_bytes(new_cert.read_bytes())
    key.write_bytes(new_key.read_bytes())
    os.utime(cert, (time.time() + 5, time.time() + 5))
    assert files.reload_if_changed() is True
    key.write_text("half-written during a renewal")
    os.utime(key, (time.time() + 10, time.time() + 10))
    assert files.reload_if_changed() is False  # the old pair stays in use
    assert files.context() is files.ctx


def test_check_config_names_a_missing_key(tmp_path, sqlite_url, ca):
    cert, _key = _cert_files(ca, tmp_path)
    path = write_config(tmp_path / "c.toml", sqlite_url,
                        smtp={"tls_cert": str(cert), "tls_key": str(tmp_path / "nope.key")})
    done = run(path, "check-config")
    assert done.returncode == 3, done.stderr
    assert "nope.key" in done.stderr and "[smtp] tls_cert, tls_key" in done.stderr


# --- PROXY protocol -----------------------------------------------------------------------

def _proxy_v1(src: str, dst: str = "192.0.2.25") -> bytes:
    family = "TCP6" if ":" in src else "TCP4"
    return f"PROXY {family} {src} {dst} 40123 25\r\n".encode()


def _proxy_v2(src: str, dst: str = "192.0.2.25") -> bytes:
    """RFC-less but specified: haproxy.org/download/2.9/doc/proxy-protocol.txt, section 2.2."""
    signature = b"\r\n\r\n\x00\r\nQUIT\n"
    if ":" in src:
        body = (ipaddress.IPv6Address(src).packed + ipaddress.IPv6Address("2001:db8::25").packed
                + struct.pack("!HH", 40123, 25))
        family = 0x21  # AF_INET6, STREAM
    else:
        body = (ipaddress.IPv4Address(src).packed + ipaddress.IPv4Address(dst).packed
                + struct.pack("!HH", 40123, 25))
        family = 0x11  # AF_INET, STREAM
    return signature + bytes([0x21, family]) + struct.pack("!H", len(body)) + body


class ProxiedSMTP(smtplib.SMTP):
    """smtplib, behind a load balancer: the PROXY header goes out before the greeting."""

    def __init__(self, port: int, header: bytes, **kwargs) -> None:
        self._header = header
        super().__init__("127.0.0.1", port, timeout=10, **kwargs)

    def _get_socket(self, host, port, timeout):
        sock = socket.create_connection((host, port), timeout)
        sock.sendall(self._header)
        return sock


@pytest.fixture
def proxied(server_factory, tmp_path, database_url, engine):
    return server_factory(write_config(
        tmp_path / "c.toml", database_url,
        smtp={"proxy_protocol": True, "max_sessions_per_ip": 2,
              "messages_per_minute_per_ip": 3}))


@pytest.mark.parametrize(("header", "client"), [
    (_proxy_v1("203.0.113.7"), "203.0.113.7"),
    (_proxy_v2("203.0.113.8"), "203.0.113.8"),
    (_proxy_v2("2001:db8::8"), "2001:db8::8"),
])
def test_the_proxied_client_address_reaches_logs_and_store(proxied, engine, header, client):
    smtp = ProxiedSMTP(proxied.port, header)
    smtp.ehlo()
    smtp.mail("a@isp.test")
    assert smtp.rcpt("nobody@fb.test")[0] == 550
    smtp.rcpt("fbl@fb.test")
    assert smtp.data(message())[0] == 250
    smtp.quit()
    assert proxied.wait_for("smtp.rcpt_refused")["peer"] == client
    assert proxied.wait_for("message.accepted")["peer"] == client
    with engine.connect() as conn:
        assert conn.execute(sa.text("select peer from inbound_message")).scalar() == client


def test_without_a_proxy_header_nothing_is_said(proxied):
    with socket.create_connection(("127.0.0.1", proxied.port), timeout=10) as sock:
        sock.sendall(b"EHLO mallory\r\n")
        assert sock.recv(100) == b""  # no greeting, no session: closed
    # The server is still there for the next one.
    smtp = ProxiedSMTP(proxied.port, _proxy_v1("203.0.113.9"))
    assert smtp.noop()[0] == 250
    smtp.quit()


def test_limits_apply_to_the_proxied_client(proxied, engine):
    held = [ProxiedSMTP(proxied.port, _proxy_v1("203.0.113.20")) for _ in range(2)]
    for client in held:
        assert client.noop()[0] == 250
    # The third session from the same client is refused; another client is not.
    with socket.create_connection(("127.0.0.1", proxied.port), timeout=10) as sock:
        sock.sendall(_proxy_v1("203.0.113.20"))
        assert sock.recv(200) == codes.TOO_MANY_FROM_IP.encode() + b"\r\n"
        assert sock.recv(200) == b""
    other = ProxiedSMTP(proxied.port, _proxy_v1("203.0.113.21"))
    assert other.noop()[0] == 250
    limited = proxied.wait_for("smtp.limited")
    assert (limited["peer"], limited["limit"]) == ("203.0.113.20", "sessions_per_ip")
    # A freed slot is usable again.
    held.pop().quit()
    time.sleep(0.3)  # its slot is let go when the server sees the connection close
    again = ProxiedSMTP(proxied.port, _proxy_v1("203.0.113.20"))
    assert again.noop()[0] == 250
    # Three messages a minute per client: the fourth MAIL is deferred (450), not refused.
    again.ehlo()
    other.ehlo()
    for _ in range(3):
        assert again.mail("a@isp.test")[0] == 250
        again.rset()
    code, text = again.mail("a@isp.test")
    assert (code, text) == (reply_code(codes.MESSAGE_RATE), reply_text(codes.MESSAGE_RATE))
    assert other.mail("a@isp.test")[0] == 250  # its own budget
    for client in [*held, other, again]:
        client.quit()


def test_direct_clients_are_limited_unless_exempt(server_factory, tmp_path, sqlite_url):
    server = server_factory(write_config(
        tmp_path / "c.toml", sqlite_url,
        smtp={"limit_exempt": [], "max_sessions_per_ip": 5, "connections_per_minute_per_ip": 3}))
    for _ in range(3):
        client = smtplib.SMTP("127.0.0.1", server.port, timeout=10)
        client.quit()
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
        assert sock.recv(200) == codes.CONNECTION_RATE.encode() + b"\r\n"
    assert server.wait_for("smtp.limited")["limit"] == "connections_per_minute_per_ip"
    # With the default exemption, loopback (Postfix in front) is never limited.
    exempt = server_factory(write_config(
        tmp_path / "d.toml", sqlite_url, smtp={"connections_per_minute_per_ip": 3}))
    for _ in range(6):
        client = smtplib.SMTP("127.0.0.1", exempt.port, timeout=10)
        assert client.noop()[0] == 250
        client.quit()


# --- the limits themselves (pure) ---------------------------------------------------------

class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_rates_are_buckets_that_refill_evenly():
    clock = Clock()
    limits = Limits(sessions_per_ip=100, connections_per_minute=6, messages_per_minute=60,
                    exempt=["10.0.0.0/8"], clock=clock)
    assert [limits.open("192.0.2.1") for _ in range(7)] == [None] * 6 + [Refusal.CONNECTION_RATE]
    assert limits.open("192.0.2.2") is None  # another client has its own bucket
    clock.now += 10  # 6 a minute: one more every 10 s
    assert limits.open("192.0.2.1") is None
    assert limits.open("192.0.2.1") is Refusal.CONNECTION_RATE
    assert all(limits.open("10.1.2.3") is None for _ in range(50))  # exempt
    assert all(limits.open("::ffff:10.1.2.3") is None for _ in range(50))  # mapped, exempt
    assert [limits.message("192.0.2.9") for _ in range(61)][-2:] == [None, Refusal.MESSAGE_RATE]
    clock.now += 1
    assert limits.message("192.0.2.9") is None


def test_session_counts_are_released():
    limits = Limits(sessions_per_ip=2)
    assert limits.open("192.0.2.1") is None and limits.open("192.0.2.1") is None
    assert limits.open("192.0.2.1") is Refusal.SESSIONS
    limits.close("192.0.2.1")
    assert limits.open("192.0.2.1") is None
    limits.close("192.0.2.1")
    limits.close("192.0.2.1")
    assert limits.open_sessions == {}


def test_buckets_are_forgotten_under_a_flood_of_addresses():
    clock = Clock()
    limits = Limits(sessions_per_ip=1, connections_per_minute=10, clock=clock)
    for i in range(30000):
        limits.open(str(ipaddress.IPv4Address(0xC6120000 + i)))
        limits.close(str(ipaddress.IPv4Address(0xC6120000 + i)))
        clock.now += 0.01
    # 30,000 addresses over 5 minutes: only the last minute's are remembered.
    assert len(limits._connections.buckets) <= 10001
    assert limits.open_sessions == {}


# -- what FeedbackSMTP does once that aiosmtpd does per connection or command ----------------

_PATHS = ["<a@b.c>", "<a@b.c> SIZE=100 BODY=8BITMIME", " <a.b+c@d-e.f>", "<a..b@c>", "<.a@b>",
          "<a@b..c>", "<a@[1.2.3.4]>", '<"q x"@b>', "<>", "< a@b>", "<a@b >", "<a@b>x",
          "<a@b>  ", "<a@-b.c>", "<a@b.c.>", "a@b", "<@x:a@b>", "<a@b> SMTPUTF8", "<ü@b>",
          "<a@bü>", "\t<a@b>", "<a@b>\tX=1", "<a (c) @b>", "<a@b> <c@d>", "<a@b.c>\r\n",
          "<a@b> (comment) SIZE=1", "<bounce+AbC_12-x@fb.test> NOTIFY=NEVER", "",
          "<>", "<> SIZE=100", "<>  BODY=8BITMIME", " <>", "<>x", "<>(c)", "\x0b<a@b>",
          "\x0b<>", "\n<a@b>", "<\n>"]


def _both(arg: str, local_part_limit: int = 0):
    import asyncio

    from aiosmtpd.smtp import SMTP

    async def make():
        ours = codes.FeedbackSMTP(object(), hostname="x")
        theirs = SMTP(object(), hostname="x")
        ours.local_part_limit = theirs.local_part_limit = local_part_limit
        return ours, theirs

    ours, theirs = asyncio.run(make())
    results = []
    for proto, method in ((ours, ours._getaddr), (theirs, theirs._getaddr)):
        try:
            results.append(method(arg))
        except Exception as exc:  # aiosmtpd's own reader raises on some garbage
            results.append(type(exc))
    return results


@pytest.mark.parametrize("arg", _PATHS)
def test_address_reader_agrees_with_aiosmtpd(arg):
    ours, theirs = _both(arg)
    assert ours == theirs


def test_address_reader_keeps_the_local_part_limit():
    ours, theirs = _both("<abcdefgh@b.c>", local_part_limit=4)
    assert ours == theirs == (None, None)


def test_address_reader_agrees_on_generated_paths():
    from hypothesis import given, settings
    from hypothesis import strategies as st

    chars = st.sampled_from([*'ab.@<> -+"()[]\\:;,_=!#\t', "Z", "ü"])

    @settings(max_examples=400, deadline=None)
    @given(st.text(chars, max_size=14), st.sampled_from(["", " SIZE=1", "x", " (c)"]))
    def check(inner, tail):
        ours, theirs = _both(f"<{inner}>{tail}")
        assert ours == theirs

    check()


def test_each_protocol_has_aiosmtpd_command_tables():
    import asyncio

    from aiosmtpd.smtp import SMTP

    from feedback_mta.edge.smtp import FeedbackLMTP

    class Hooks:
        async def handle_DATA(self, *args):
            return "250"

    async def make(cls):
        return cls(Hooks(), hostname="x")

    for cls in (codes.FeedbackSMTP, FeedbackLMTP):
        ours, theirs = asyncio.run(make(cls)), asyncio.run(make(SMTP))
        handler = codes.FeedbackHandler.__new__(codes.FeedbackHandler)
        assert set(dir(handler)) == {"handle_PROXY", "handle_MAIL", "handle_RCPT",
                                     "handle_DATA"}
        assert set(ours._smtp_methods) == set(theirs._smtp_methods) | (
            {"LHLO"} if cls is FeedbackLMTP else set())
        assert set(ours._auth_methods) == set(theirs._auth_methods)
        assert set(ours._handle_hooks) == {"DATA"}
