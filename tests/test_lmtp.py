"""LMTP (RFC 2033) for Postfix's lmtp transport: one reply per recipient after DATA."""

from __future__ import annotations

import smtplib

from feedback_mta.edge import smtp as codes
from tests.conftest import write_config
from tests.support import inbound_rows, lmtp_data, message, seed


def test_lmtp_replies_once_per_recipient(server_factory, tmp_path, database_url, engine, cfg):
    s = seed(engine, cfg)
    server = server_factory(write_config(tmp_path / "lmtp.toml", database_url,
                                         smtp={"lmtp": True, "fbl_aliases": ["abuse-reports"]}))
    client = smtplib.LMTP("127.0.0.1", server.port)
    assert client.docmd("EHLO", "mx.test")[0] == 500  # LMTP speaks LHLO, not EHLO
    assert client.ehlo("mx.test")[0] == 250  # smtplib.LMTP sends LHLO
    client.mail("")
    rcpts = [s.unsubscribe(s.contact_ids[0]), "abuse-reports@fb.test",
             s.unsubscribe(s.contact_ids[1])]
    for rcpt in rcpts:
        assert client.rcpt(rcpt)[0] == 250
    assert client.rcpt("nobody@fb.test")[0] == 550  # refused ones get no DATA reply
    replies = lmtp_data(client, message(), len(rcpts))
    client.quit()
    assert [code for code, _ in replies] == [250, 250, 250]
    stored = int(replies[0][1].split(b"stored as ")[1].split()[0])
    for (_, text), rcpt in zip(replies, rcpts, strict=True):
        assert text.endswith(f"<{rcpt}>".encode())  # in RCPT order
    row = next(r for r in inbound_rows(engine) if r["id"] == stored)
    assert row["rcpt_tos"] == rcpts
    assert row["state"] in ("received", "processed")


def test_lmtp_store_failure_is_451_per_recipient():
    """The per-recipient form of a failure reply (pure: the handler's formatting)."""
    from aiosmtpd.smtp import Envelope

    from feedback_mta.edge.smtp import FeedbackHandler

    handler = FeedbackHandler.__new__(FeedbackHandler)
    handler.lmtp = True
    env = Envelope()
    env.rcpt_tos = ["a@fb.test", "b@fb.test"]
    lines = handler._reply(codes.STORE_FAILED, env).split("\r\n")
    assert lines == [f"{codes.STORE_FAILED} <a@fb.test>", f"{codes.STORE_FAILED} <b@fb.test>"]
