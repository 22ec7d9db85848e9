"""The outbox: queued in the deciding transaction, delivered after it, retried, never lost."""

from __future__ import annotations

import email
import time

import sqlalchemy as sa

from feedback_mta.actions import CLI, unit_of_work
from feedback_mta.actions.mail import compose
from feedback_mta.config import OutboundConfig
from feedback_mta.handlers.commands import ACK_REFUSED
from feedback_mta.reading import authres
from feedback_mta.service import outbox as outbound
from feedback_mta.store.models import OutboundMessage
from tests.conftest import Relay
from tests.support import free_port

T = OutboundMessage.__table__


def _queue(engine, n: int = 1) -> list[int]:
    raw = compose(text="Lead #7 marked as spam. Reply NOT SPAM to undo.", to="boss@dealer.test",
                           reply_address="reply+7-x@fb.test", from_name="Lead feedback",
                           domain="fb.test", subject="New lead", in_reply_to="m1@dealer.test",
                           references=("lead.7-x@fb.test",))
    with unit_of_work(engine, CLI) as uow:
        return [uow.mail.queue("ack.flagged", "boss@dealer.test", raw).id for _ in range(n)]


def _queue_raw(engine, raw: bytes) -> int:
    with unit_of_work(engine, CLI) as uow:
        return uow.mail.queue("ack.flagged", "boss@dealer.test", raw).id


def _row(engine, mail_id):
    with engine.connect() as conn:
        return conn.execute(sa.select(T).where(T.c.id == mail_id)).one()




def test_compose_is_an_rfc3834_auto_reply_threaded_to_the_reply():
    raw = compose(text=ACK_REFUSED.format(lead=3, sender="clerk@dealer.test"),
                  to="clerk@dealer.test",
                           reply_address="reply+3-x@fb.test", from_name="Lead feedback",
                           domain="fb.test", subject="Re: New lead", in_reply_to="r@d.test",
                           references=("lead.3-x@fb.test",))
    msg = email.message_from_bytes(raw)
    assert msg["Auto-Submitted"] == "auto-replied"
    assert msg["Subject"] == "Re: New lead"
    assert msg["In-Reply-To"] == "<r@d.test>"
    assert msg["References"] == "<lead.3-x@fb.test> <r@d.test>"
    assert msg["Message-ID"].endswith("@fb.test>")
    assert "clerk@dealer.test may not flag" in msg.get_payload()


def test_delivered_once_then_marked_sent(engine):
    relay = Relay().start()
    try:
        cfg = OutboundConfig(relay=f"127.0.0.1:{relay.port}")
        (mail_id,) = _queue(engine)
        assert outbound.due_ids(engine) == [mail_id]
        assert outbound.deliver_one(engine, cfg, mail_id) == "sent"
        assert outbound.deliver_one(engine, cfg, mail_id) is None  # not queued any more
        assert len(relay.wait(1)) == 1
        row = _row(engine, mail_id)
        assert (row.state, row.attempts, row.last_error) == ("sent", 1, None)
        assert outbound.due_ids(engine) == []
    finally:
        relay.stop()


def test_relay_down_is_retried_then_left_failed_with_the_error(engine):
    cfg = OutboundConfig(relay=f"127.0.0.1:{free_port()}", max_attempts=2,
                         retry_interval=0.2, timeout=5)
    (mail_id,) = _queue(engine)
    assert outbound.deliver_one(engine, cfg, mail_id) == "queued"
    row = _row(engine, mail_id)
    assert row.attempts == 1 and "ConnectionRefused" in row.last_error
    assert outbound.deliver_one(engine, cfg, mail_id) is None  # not due yet
    time.sleep(0.3)
    assert outbound.due_ids(engine) == [mail_id]
    assert outbound.deliver_one(engine, cfg, mail_id) == "failed"
    assert _row(engine, mail_id).state == "failed"


class _Refusing(Relay):
    async def handle_RCPT(self, server, session, envelope, address, options):
        return "550 5.1.1 no such user"


def test_permanent_refusal_fails_at_once(engine):
    relay = _Refusing().start()
    try:
        cfg = OutboundConfig(relay=f"127.0.0.1:{relay.port}", max_attempts=5)
        (mail_id,) = _queue(engine)
        assert outbound.deliver_one(engine, cfg, mail_id) == "failed"
        assert "550" in _row(engine, mail_id).last_error
    finally:
        relay.stop()


def test_authentication_results_parsing():
    values = [
        "mx.fb.test; spf=pass smtp.mailfrom=dealer.test; dkim=pass header.d=dealer.test;\n"
        " dmarc=fail (p=reject dis=none) header.from=dealer.test",
        "mx.fb.test 1; dmarc=pass header.from=other.test",
    ]
    assert authres.dmarc(values, ["mx.fb.test"], "dealer.test") == "fail"
    assert authres.dmarc(values, ["mx.fb.test"], "other.test") == "pass"
    assert authres.dmarc(values, ["MX.FB.TEST."], "Dealer.Test") == "fail"
    assert authres.dmarc(values, ["elsewhere.test"], "dealer.test") is None
    assert authres.dmarc(["mx.fb.test; none"], ["mx.fb.test"], "dealer.test") is None
    assert authres.dmarc(["mx.fb.test (comment; with=semicolon); dmarc=pass"],
                         ["mx.fb.test"], "dealer.test") == "pass"
    assert authres.parse("") is None
    assert authres.parse(";;;===") is None  # no authserv-id: ignored, never raises


def test_folded_subjects_and_bare_line_feeds_never_break_an_answer(engine):
    """A reply's folded Subject (a digest's long one, say) is copied onto the answer as one
    line; and what we send has CRLF line ends, so a strict relay takes mail over 1,000 bytes."""
    from feedback_mta.reading.parse import parse

    parsed = parse(b"From: a@dealer.test\r\nSubject: Re: a long subject\r\n that was folded\r\n"
                   b"\r\nSPAM\r\n", "a@dealer.test", ["x@fb.test"])
    assert parsed.subject == "Re: a long subject that was folded"
    raw = compose( to="a@dealer.test",
                           reply_address="reply+1-x@fb.test", from_name="F", domain="fb.test",
                           subject="Re: folded\r\n subject", in_reply_to=None,
                           text="x" * 70 + "\n" + "y\n" * 600)
    assert b"Subject: Re: folded subject\n" in raw
    relay = Relay().start()
    try:
        mail_id = _queue_raw(engine, raw)
        cfg = OutboundConfig(relay=f"127.0.0.1:{relay.port}")
        assert outbound.deliver_one(engine, cfg, mail_id) == "sent"
        assert b"\r\ny\r\ny\r\n" in relay.wait(1)[0][2]
    finally:
        relay.stop()
